/**
 * ShipEvents on central (SQLite and PostgreSQL), through a raw client: a chain-linked batch is
 * stored and booked on the fleet ledger once; replayed, out-of-order, gapped, tampered,
 * malformed and oversized batches are refused with a clear error and change nothing; a
 * sidecar whose history diverged (another event under an acked seq) is refused and named in
 * the fleet view, and central keeps what it held.
 */
import { Code } from "@connectrpc/connect";
import { afterEach, describe, expect, it } from "vitest";
import { RiskService } from "../gen/governance/v1/risk_pb.js";
import { SyncService } from "../gen/governance/v1/sync_pb.js";
import { GENESIS_HASH, linkHash } from "../src/store/audit-log.js";
import { readTrail } from "../src/sync/central/central-trail.js";
import { shippedEventOf } from "../src/sync/shipped-event.js";
import {
  inProcessCentralStores,
  postgresReachable,
  type RunningCentral,
  startCentral,
} from "./support/central.js";
import { rejects } from "./support/expect-error.js";

const pgUp = await postgresReachable();
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A chain of risk events: RESERVE `amount` then SETTLE `loss`, alternating, from `first`. */
function chain(count: number, opts: { first?: number; prev?: string; salt?: string } = {}) {
  let prev = opts.prev ?? GENESIS_HASH;
  const first = opts.first ?? 1;
  const now = Date.now();
  return Array.from({ length: count }, (_, i) => {
    const seq = first + i;
    const reserve = seq % 2 === 1;
    const row = {
      seq,
      time_ms: now,
      lever: "risk",
      action: reserve ? "RESERVE" : "SETTLE",
      subject: "WHOLESALE",
      amount: reserve ? 10_000_000n : 2_500_000n,
      ok: 1,
      reason: `${opts.salt ?? "r"}-${seq}`,
      actor: "engine",
      correlation_id: `c-${seq}`,
      reservation_id: `res-${Math.ceil(seq / 2)}`,
      metadata: "{}",
    };
    const hash = linkHash(prev, row);
    const before = prev === GENESIS_HASH ? "" : prev;
    prev = hash;
    const event = shippedEventOf({ ...row, hash });
    prevOf.set(event, before);
    return event;
  });
}

type Shipped = ReturnType<typeof chain>;

/** The hash each event links to (what the sidecar sends as prev_hash for a batch's first). */
const prevOf = new WeakMap<object, string>();

const stores = inProcessCentralStores(pgUp);

describe.each(stores)("ShipEvents on central ($name)", ({ up, location }) => {
  if (!up) return void it.skip("PostgreSQL at 127.0.0.1:5432 is unreachable", () => undefined);

  async function central(): Promise<RunningCentral> {
    const db = await location();
    cleanups.push(db.drop);
    const c = await startCentral(db.url);
    cleanups.push(c.close);
    return c;
  }

  const ship = (
    c: RunningCentral,
    events: Shipped,
    extra: { headSeq?: bigint; prevHash?: string } = {},
  ) =>
    c.caller.call(SyncService, "shipEvents", {
      sidecarId: "sc-1",
      events,
      prevHash: extra.prevHash ?? (events[0] ? (prevOf.get(events[0]) ?? "") : ""),
      headSeq: extra.headSeq ?? events.at(-1)?.seq ?? 0n,
      headHash: events.at(-1)?.hash ?? "",
    });

  async function held(c: RunningCentral) {
    const ledger = await c.caller.call(RiskService, "getLedgerToday", {});
    const events = await c.store.db
      .selectFrom("central_event")
      .select(["seq", "hash"])
      .orderBy("seq")
      .execute();
    return { ledger: ledger.entries, events: events.map((e) => `${e.seq}:${e.hash}`) };
  }

  it("stores a linked batch once and books it on the fleet ledger, engine and GLOBAL", async () => {
    const c = await central();
    const events = chain(5);
    const first = await c.caller.call(SyncService, "shipEvents", {
      sidecarId: "sc-1",
      events: events.slice(0, 3),
      headSeq: 5n,
      headHash: events[4]?.hash ?? "",
      outboxEvents: 5n,
      outboxOldestMs: 900n,
    });
    expect(first.ackedSeq).toBe(3n);
    expect(first.ackedHash).toBe(events[2]?.hash);
    // The fleet view's outbox is what is left after the shipment: 2 events, as old as reported.
    const mid = (await c.caller.call(SyncService, "listSidecars", {})).sidecars[0];
    expect(mid).toMatchObject({ outboxEvents: 2n, outboxOldestMs: 900n });
    expect((await ship(c, events.slice(3))).ackedSeq).toBe(5n);
    const { ledger, events: stored } = await held(c);
    expect(stored).toHaveLength(5);
    for (const engine of ["WHOLESALE", "GLOBAL"]) {
      const e = ledger.find((x) => x.engine === engine);
      // 3 RESERVEs of 10 and 2 SETTLEs of 2.5.
      expect(e).toMatchObject({ exposureUsed: "30.00", realizedLoss: "5.00", actions: 3 });
    }
    // An empty shipment asks what central holds, and changes nothing.
    expect((await ship(c, [], { headSeq: 5n })).ackedSeq).toBe(5n);
    const view = await c.caller.call(SyncService, "listSidecars", {});
    expect(view.sidecars[0]).toMatchObject({
      sidecarId: "sc-1",
      shippedSeq: 5n,
      shipConflict: "",
      outboxEvents: 0n,
      outboxOldestMs: 0n,
    });
    expect(view.sidecars[0]?.shippedHash).toBe(events[4]?.hash);
  });

  it("stores every field exactly as shipped: quotes, backslashes, braces, commas, NULL as text, non-ASCII, no amount", async () => {
    const c = await central();
    const awkward = ['a "quoted" \\ back\\slash', "{brace,comma}", "NULL", "", "Zürich €, 東京"];
    let prev = GENESIS_HASH;
    const events = awkward.map((text, i) => {
      const row = {
        seq: i + 1,
        time_ms: 1_700_000_000_000 + i,
        lever: "golive",
        action: "SET_MODE",
        subject: text || "s",
        amount: i % 2 === 0 ? null : BigInt(-i),
        ok: i % 2,
        reason: text,
        actor: `ops ${text}`,
        correlation_id: `c-${i}`,
        reservation_id: text,
        metadata: JSON.stringify({ note: text }),
      };
      const hash = linkHash(prev, row);
      prev = hash;
      return { row, event: shippedEventOf({ ...row, hash }) };
    });
    const shipped = events.map((e) => e.event);
    expect((await ship(c, shipped, { prevHash: "" })).ackedSeq).toBe(5n);
    const rows = await readTrail(c.store.db, {
      sidecarId: "sc-1",
      after: { sidecarId: "", seq: 0 },
      limit: 10,
    });
    expect(rows).toHaveLength(5);
    let link = GENESIS_HASH;
    for (const [i, r] of rows.entries()) {
      const { row } = events[i] as (typeof events)[number];
      expect({ ...r, sidecar_id: undefined, hash: undefined }).toEqual({
        ...row,
        sidecar_id: undefined,
        hash: undefined,
      });
      // What central holds hashes to what the sidecar sent: no field changed on the way in.
      expect(linkHash(link, r)).toBe(r.hash);
      link = r.hash;
    }
  });

  it("stores a batch of several insert statements whole: every row, an amount past 2^53, the denial flags", async () => {
    const c = await central();
    // 600 events: more than one statement's rows on SQLite (250), so three statements.
    let prev = GENESIS_HASH;
    const big = 2n ** 60n + 7n;
    const events = Array.from({ length: 600 }, (_, i) => {
      const row = {
        seq: i + 1,
        time_ms: 1_700_000_000_000 + i,
        lever: "risk",
        action: i % 3 === 2 ? "DENY" : "RESERVE",
        subject: "WHOLESALE",
        amount: i === 299 ? big : BigInt(i + 1),
        ok: i % 3 === 2 ? 0 : 1,
        reason: `r-${i}`,
        actor: "engine",
        correlation_id: `c-${i}`,
        reservation_id: `res-${i}`,
        metadata: "{}",
      };
      const hash = linkHash(prev, row);
      prev = hash;
      return shippedEventOf({ ...row, hash, denial_counted: i % 6 === 2 ? 1 : 0 });
    });
    expect((await ship(c, events, { prevHash: "" })).ackedSeq).toBe(600n);
    const rows = await c.store.db
      .selectFrom("central_event")
      .select(["seq", "hash", "denial_counted"])
      .select((eb) => eb.cast<string>("amount", "text").as("amount"))
      .where("sidecar_id", "=", "sc-1")
      .orderBy("seq")
      .execute();
    expect(rows.map((r) => Number(r.seq))).toEqual(events.map((e) => Number(e.seq)));
    expect(rows.map((r) => r.hash)).toEqual(events.map((e) => e.hash));
    expect(rows.map((r) => Number(r.denial_counted))).toEqual(
      events.map((e) => (e.denialCounted ? 1 : 0)),
    );
    expect(rows[299]?.amount).toBe(big.toString());
    expect(rows[0]?.amount).toBe("1");
  });

  it("refuses replayed, gapped, out-of-order, tampered, malformed and oversized batches, changing nothing", async () => {
    const c = await central();
    const events = chain(6);
    await ship(c, events.slice(0, 4));
    const before = await held(c);
    await rejects(
      ship(c, events.slice(0, 4)),
      Code.FailedPrecondition,
      /a replay.*ship from seq 5/,
    );
    await rejects(ship(c, events.slice(2, 6)), Code.FailedPrecondition, /a replay/);
    await rejects(ship(c, events.slice(5)), Code.FailedPrecondition, /must start at seq 5, not 6/);
    await rejects(
      ship(c, [events[4], events[5], events[4]] as Shipped),
      Code.InvalidArgument,
      /consecutive and in seq order/,
    );
    const tampered = events.slice(4).map((e) => ({ ...e, amount: 1n }));
    prevOf.set(tampered[0] as object, events[3]?.hash ?? "");
    await rejects(ship(c, tampered), Code.InvalidArgument, /event 5 .*does not match its hash/);
    const malformed = events.slice(4).map((e) => ({ ...e, hash: "xyz" }));
    prevOf.set(malformed[0] as object, events[3]?.hash ?? "");
    await rejects(ship(c, malformed), Code.InvalidArgument, /invalid request: .*hash/);
    const oversized = chain(1001, { first: 5, prev: events[3]?.hash });
    await rejects(ship(c, oversized), Code.InvalidArgument, /invalid request: .*events/);
    await rejects(
      ship(c, events.slice(4), { headSeq: 5n }),
      Code.InvalidArgument,
      /head_seq 5 is below the newest event shipped \(6\)/,
    );
    expect(await held(c)).toEqual(before);
    expect((await ship(c, events.slice(4))).ackedSeq).toBe(6n);
  });

  it("refuses a diverged history (another event under an acked seq), says so, keeps what it held", async () => {
    const c = await central();
    await ship(c, chain(4));
    const before = await held(c);
    // A sidecar restored from an old backup: its head is behind what central holds.
    await rejects(ship(c, [], { headSeq: 2n }), Code.FailedPrecondition, /history diverged/);
    // A store replaced under the same id: other events under seqs central acked.
    await rejects(
      ship(c, chain(4, { salt: "other" })),
      Code.FailedPrecondition,
      /event 1 .*diverged/,
    );
    // Or new events that do not link to the newest event central holds.
    await rejects(
      ship(c, chain(2, { first: 5, salt: "other" })),
      Code.FailedPrecondition,
      /does not link to event 4.*diverged/,
    );
    expect(await held(c)).toEqual(before);
    const view = await c.caller.call(SyncService, "listSidecars", {});
    expect(view.sidecars[0]?.shipConflict).toMatch(/does not link to event 4/);
    expect(view.sidecars[0]?.shippedSeq).toBe(4n);
  });
});
