/**
 * Money stays exact past 2^53 micro-units (issue 14, item 5), and a booking that would take a
 * ledger sum or open risk past int64 is refused with RESOURCE_EXHAUSTED, booking nothing.
 */
import { Code } from "@connectrpc/connect";
import fc from "fast-check";
import { afterAll, beforeAll, expect, it } from "vitest";
import { RiskAction, type RiskEvent, RiskService } from "../gen/governance/v1/risk_pb.js";
import { utcDay } from "../src/clock.js";
import type { Db } from "../src/store/database.js";
import { rejects } from "./support/expect-error.js";
import { enableGoLive, type RunningSidecar, startSidecar, T0, TOKEN } from "./support/sidecar.js";

const MAX = "999999999.999999";
const INT64_MAX = 9_223_372_036_854_775_807n;
/** Contract decimal to micro-units, independent of src/money.ts. */
const exact = (text: string): bigint => {
  const [whole = "", fraction = ""] = text.split(".");
  return BigInt(whole) * 1_000_000n + BigInt(fraction.padEnd(6, "0"));
};

let s: RunningSidecar;
let n = 0;
const cid = () => `x-${++n}`;

/** A policy that is not enforced (only logged), with the largest caps the contract allows. */
async function unenforced(engine: string) {
  await s.grpc.call(
    RiskService,
    "upsertPolicy",
    {
      engine,
      maxDailyLoss: MAX,
      maxDailyExposure: MAX,
      maxOpenRisk: MAX,
      maxActionsPerDay: 1_000_000,
      enabled: false,
      actor: "ops",
      reason: "exact money test",
    },
    { token: TOKEN },
  );
}

async function reserveAndSettle(engine: string, amount: string, loss: string) {
  const r = await s.grpc.call(RiskService, "reserve", { engine, amount, correlationId: cid() });
  expect(r.allowed).toBe(true);
  await s.grpc.call(RiskService, "settle", {
    reservationId: r.reservationId,
    realizedLoss: loss,
    correlationId: cid(),
  });
}

async function ledgerOf(engine: string) {
  const ledger = await s.grpc.call(RiskService, "getLedgerToday", { engine });
  return ledger.entries[0];
}

async function events(engine: string): Promise<RiskEvent[]> {
  const all: RiskEvent[] = [];
  for (let after = 0n; ; ) {
    const page = await s.grpc.call(RiskService, "listEvents", {
      engine,
      afterSeq: after,
      limit: 1000,
    });
    all.push(...page.events);
    const last = page.events.at(-1);
    if (!last || page.events.length < 1000) return all;
    after = last.seq;
  }
}

const sum = (list: RiskEvent[], action: RiskAction) =>
  list.filter((e) => e.action === action).reduce((t, e) => t + exact(e.amount), 0n);

beforeAll(async () => {
  s = await startSidecar();
  await enableGoLive(s.grpc);
  await unenforced("GLOBAL");
});
afterAll(async () => {
  await s.stop();
});

it("books ten settles of 999999999.999999 and one of 0.000001 exactly (the issue's reproduction)", async () => {
  await unenforced("WHOLESALE");
  for (let i = 0; i < 10; i++) await reserveAndSettle("WHOLESALE", MAX, MAX);
  await reserveAndSettle("WHOLESALE", "0.000001", "0.000001");
  const entry = await ledgerOf("WHOLESALE");
  const trail = await events("WHOLESALE");
  expect(sum(trail, RiskAction.SETTLE)).toBe(9_999_999_999_999_991n);
  expect(entry?.realizedLoss).toBe("9999999999.999991");
  // Exposure on the unenforced policy: exact too, and its headroom is 0, not negative.
  expect(entry?.exposureUsed).toBe("9999999999.999991");
  expect(exact(entry?.exposureUsed ?? "")).toBe(sum(trail, RiskAction.RESERVE));
  expect(entry?.remaining?.exposure).toBe("0.00");
});

it("ledger sums equal the exact sum of events for random amounts near the largest", async () => {
  let run = 0;
  const amounts = fc.array(
    fc
      .tuple(
        fc.bigInt({ min: 990_000_000_000_000n, max: 999_999_999_999_999n }),
        fc.bigInt({ min: 0n, max: 1_000_000_000_000n }),
      )
      .map(([amount, less]) => [amount, amount - less] as const),
    { minLength: 1, maxLength: 6 },
  );
  const micros = (m: bigint) => `${m / 1_000_000n}.${(m % 1_000_000n).toString().padStart(6, "0")}`;
  await fc.assert(
    fc.asyncProperty(amounts, async (pairs) => {
      const engine = `NEAR_MAX_${++run}`;
      await unenforced(engine);
      for (const [amount, loss] of pairs)
        await reserveAndSettle(engine, micros(amount), micros(loss));
      const entry = await ledgerOf(engine);
      const trail = await events(engine);
      expect(exact(entry?.exposureUsed ?? "")).toBe(sum(trail, RiskAction.RESERVE));
      expect(exact(entry?.realizedLoss ?? "")).toBe(sum(trail, RiskAction.SETTLE));
      expect(exact(entry?.realizedLoss ?? "")).toBe(pairs.reduce((t, [, loss]) => t + loss, 0n));
    }),
    { numRuns: 15 },
  );
  const global = await ledgerOf("GLOBAL");
  const all = await events("");
  expect(exact(global?.exposureUsed ?? "")).toBe(sum(all, RiskAction.RESERVE));
  expect(exact(global?.realizedLoss ?? "")).toBe(sum(all, RiskAction.SETTLE));
});

/**
 * Runs `body` against a sidecar started over a store whose risk tables `set` left near the
 * int64 limit (the book is rebuilt from the store at start), then goes back to the shared one.
 */
async function nearLimit(set: (db: Db, day: string) => void, body: () => Promise<void>) {
  const shared = s;
  s = await startSidecar({ storeBefore: (db) => set(db, utcDay(T0)) });
  try {
    await enableGoLive(s.grpc);
    await unenforced("GLOBAL");
    await unenforced("CAPITAL");
    await body();
  } finally {
    await s.stop();
    s = shared;
  }
}

/** Sets one column of a day's ledger row in the store. */
function setLedger(db: Db, day: string, engine: string, column: string, value: bigint) {
  db.prepare(
    `INSERT INTO risk_ledger (day, engine, ${column}) VALUES (?, ?, ?)
     ON CONFLICT (day, engine) DO UPDATE SET ${column} = excluded.${column}`,
  ).run(day, engine, value);
}

it("refuses a booking past int64 with RESOURCE_EXHAUSTED and books nothing; up to it is exact", async () => {
  await nearLimit(
    (db, day) => setLedger(db, day, "GLOBAL", "exposure", INT64_MAX - 10n),
    async () => {
      const before = await ledgerOf("CAPITAL");
      const eventsBefore = (await events("CAPITAL")).length;
      await rejects(
        s.grpc.call(RiskService, "reserve", {
          engine: "CAPITAL",
          amount: "0.000011",
          correlationId: cid(),
        }),
        Code.ResourceExhausted,
        /daily exposure of GLOBAL past 9223372036854\.775807.*nothing was booked/,
      );
      expect(await ledgerOf("CAPITAL")).toEqual(before);
      expect(await events("CAPITAL")).toHaveLength(eventsBefore);
      await reserveAndSettle("CAPITAL", "0.00001", "0");
      expect((await ledgerOf("GLOBAL"))?.exposureUsed).toBe("9223372036854.775807");
    },
  );

  // Open risk, which is not daily.
  await nearLimit(
    (db) =>
      db
        .prepare("INSERT INTO risk_open (engine, open_risk) VALUES ('GLOBAL', ?)")
        .run(INT64_MAX - 1n),
    async () => {
      await rejects(
        s.grpc.call(RiskService, "reserve", {
          engine: "CAPITAL",
          amount: "0.000002",
          correlationId: cid(),
        }),
        Code.ResourceExhausted,
        /open risk of GLOBAL past 9223372036854\.775807/,
      );
    },
  );

  // A Settle whose loss would pass it: refused, the reservation stays open and can be released.
  await nearLimit(
    (db, day) => setLedger(db, day, "CAPITAL", "realized_loss", INT64_MAX - 4_000_000n),
    async () => {
      const r = await s.grpc.call(RiskService, "reserve", {
        engine: "CAPITAL",
        amount: "5.00",
        correlationId: cid(),
      });
      await rejects(
        s.grpc.call(RiskService, "settle", {
          reservationId: r.reservationId,
          realizedLoss: "5.00",
          correlationId: cid(),
        }),
        Code.ResourceExhausted,
        /daily realized loss of CAPITAL past 9223372036854\.775807/,
      );
      const released = await s.grpc.call(RiskService, "release", {
        reservationId: r.reservationId,
        correlationId: cid(),
      });
      expect(released.reservation?.realizedLoss).toBe("0.00");
      expect((await ledgerOf("CAPITAL"))?.realizedLoss).toBe("9223372036850.775807");
    },
  );
});
