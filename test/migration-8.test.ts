/**
 * Migration 8 (one row per decision): a store of version 7 migrates up with its ledgers, open
 * risk and reservations intact in the book; decisions made at version 8 write only audit
 * events; down folds them into the tables, so version 7 finds every decision booked; and up
 * again gives the same book.
 */
import { create } from "@bufbuild/protobuf";
import { Code, type ConnectError } from "@connectrpc/connect";
import { afterEach, expect, it } from "vitest";
import {
  ReleaseRequestSchema,
  ReserveRequestSchema,
  SettleRequestSchema,
} from "../gen/governance/v1/risk_pb.js";
import { ManualClock, utcDay } from "../src/clock.js";
import { createLeverContext, type LeverContext } from "../src/levers/context.js";
import { releaseExpired } from "../src/levers/risk/reservations.js";
import { riskService } from "../src/levers/risk/service.js";
import { verifyChain } from "../src/store/audit-trail.js";
import { type Db, migrateTo, schemaVersion } from "../src/store/database.js";
import { openTempStore, type TempStore } from "./support/temp-store.js";

const T0 = Date.UTC(2026, 2, 2, 12);
const DAY = utcDay(T0);
const M = 1_000_000;

let store: TempStore | undefined;
afterEach(() => {
  store?.remove();
  store = undefined;
});

type Handler = (req: unknown) => { reservationId?: string; allowed?: boolean };

function handlers(ctx: LeverContext): Record<string, Handler> {
  return riskService(ctx).handlers as unknown as Record<string, Handler>;
}

/** What the book says of the seeded engines and GLOBAL today. */
function book(ctx: LeverContext) {
  return ["WHOLESALE", "CAPITAL", "GLOBAL"].map((e) => ({ engine: e, ...ctx.risk.usage(DAY, e) }));
}

/** What the version-7 tables say of the same engines. */
function tables(db: Db) {
  return ["WHOLESALE", "CAPITAL", "GLOBAL"].map((engine) => {
    const row = db
      .prepare(
        "SELECT exposure, realized_loss, actions, denials FROM risk_ledger WHERE day = ? AND engine = ?",
      )
      .safeIntegers(true)
      .get(DAY, engine) as
      | { exposure: bigint; realized_loss: bigint; actions: bigint; denials: bigint }
      | undefined;
    const open = db
      .prepare("SELECT open_risk FROM risk_open WHERE engine = ?")
      .pluck()
      .safeIntegers(true)
      .get(engine) as bigint | undefined;
    return {
      engine,
      exposure: row?.exposure ?? 0n,
      realizedLoss: row?.realized_loss ?? 0n,
      actions: Number(row?.actions ?? 0n),
      denials: Number(row?.denials ?? 0n),
      openRisk: open ?? 0n,
    };
  });
}

const statusOf = (db: Db, id: string) =>
  db.prepare("SELECT status FROM risk_reservation WHERE id = ?").pluck().get(id);

it("keeps every ledger and reservation across up, decisions at 8, down and up again", () => {
  store = openTempStore(7);
  const db = store.db;
  // Version 7 state (risk tables as version 6 made them): a version-7 sidecar booked two open
  // reservations and one settled.
  const reserve6 = db.prepare(
    `INSERT INTO risk_reservation (id, engine, amount, day, status, realized_loss, created_ms, expires_ms)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  reserve6.run("v6-open", "WHOLESALE", 10 * M, DAY, "OPEN", 0, T0 - 1000, T0 + 600_000);
  reserve6.run("v6-expiring", "CAPITAL", 3 * M, DAY, "OPEN", 0, T0 - 1000, T0 + 30_000);
  reserve6.run("v6-settled", "WHOLESALE", 4 * M, DAY, "SETTLED", 2 * M, T0 - 2000, T0 + 600_000);
  const ledger6 = db.prepare(
    "INSERT INTO risk_ledger (day, engine, exposure, realized_loss, actions, denials) VALUES (?, ?, ?, ?, ?, ?)",
  );
  ledger6.run(DAY, "WHOLESALE", 14 * M, 2 * M, 2, 1);
  ledger6.run(DAY, "CAPITAL", 3 * M, 0, 1, 0);
  ledger6.run(DAY, "GLOBAL", 17 * M, 2 * M, 3, 1);
  const open6 = db.prepare("INSERT INTO risk_open (engine, open_risk) VALUES (?, ?)");
  open6.run("WHOLESALE", 10 * M);
  open6.run("CAPITAL", 3 * M);
  open6.run("GLOBAL", 13 * M);
  const before = tables(db);

  migrateTo(db, 8);
  const clock = new ManualClock(T0);
  let ctx = createLeverContext(db, clock);
  expect(book(ctx)).toEqual(before);
  ctx.goLive.set({ goLiveEnabled: true, killSwitchEngaged: false }, "ops", "test", T0);
  const h = handlers(ctx);
  const commit = <T>(work: () => T): T => db.transaction(work)();

  // A reservation from version 7 settles; a settled one stays settled.
  commit(() =>
    h.settle?.(
      create(SettleRequestSchema, {
        reservationId: "v6-open",
        realizedLoss: "1.50",
        correlationId: "s1",
      }),
    ),
  );
  expect(() =>
    commit(() =>
      h.release?.(
        create(ReleaseRequestSchema, { reservationId: "v6-settled", correlationId: "r0" }),
      ),
    ),
  ).toThrow(expect.objectContaining({ code: Code.FailedPrecondition }) as unknown as ConnectError);
  // New decisions: reserve, release, a denial (past CAPITAL's exposure cap), and the v6 reservation expiring.
  const reserve = (engine: string, amount: string, cid: string) =>
    commit(() => h.reserve?.(create(ReserveRequestSchema, { engine, amount, correlationId: cid })));
  const kept = reserve("CAPITAL", "7.25", "n1");
  const released = reserve("WHOLESALE", "2.00", "n2");
  commit(() =>
    h.release?.(
      create(ReleaseRequestSchema, {
        reservationId: released?.reservationId ?? "",
        correlationId: "n3",
      }),
    ),
  );
  expect(reserve("CAPITAL", "5000.00", "n4")?.allowed).toBe(false);
  clock.advance(60_000);
  expect(commit(() => releaseExpired(ctx, 10))).toBe(1);
  const atSeven = book(ctx);
  expect(atSeven).not.toEqual(before);
  // Nothing of that is in the tables yet: the decisions wrote their audit events only.
  expect(statusOf(db, "v6-open")).toBe("OPEN");
  expect(statusOf(db, kept?.reservationId ?? "")).toBeUndefined();

  migrateTo(db, 7);
  expect(schemaVersion(db)).toBe(7);
  expect(tables(db)).toEqual(atSeven);
  expect(statusOf(db, "v6-open")).toBe("SETTLED");
  expect(statusOf(db, "v6-expiring")).toBe("EXPIRED");
  expect(statusOf(db, "v6-settled")).toBe("SETTLED");
  expect(statusOf(db, kept?.reservationId ?? "")).toBe("OPEN");
  expect(statusOf(db, released?.reservationId ?? "")).toBe("RELEASED");
  expect(verifyChain(db).ok).toBe(true);

  migrateTo(db, 8);
  ctx = createLeverContext(db, clock);
  expect(book(ctx)).toEqual(atSeven);
  expect(ctx.risk.reservation(kept?.reservationId ?? "")?.status).toBe("OPEN");
  expect(ctx.risk.reservation("v6-expiring")?.status).toBe("EXPIRED");
});
