/**
 * Retention of a connected sidecar's trail (`--retain-shipped`): only events central acked,
 * folded into the risk tables and older than the retention are pruned, in a contiguous run from
 * the horizon; the chain still verifies locally and against central's anchor; shipping goes on
 * after pruning; and a central that lost acked events is told so instead of being sent a gap.
 */
import { Writable } from "node:stream";
import pino from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { RiskService } from "../gen/governance/v1/risk_pb.js";
import { SyncService } from "../gen/governance/v1/sync_pb.js";
import { ManualClock } from "../src/clock.js";
import { AuditLog } from "../src/store/audit-log.js";
import { verifyChain } from "../src/store/audit-trail.js";
import type { Db } from "../src/store/database.js";
import { GroupCommit } from "../src/store/group-commit.js";
import { pruneCeiling, TrailPruning, trailHorizon } from "../src/store/trail-horizon.js";
import { checkAgainstAnchor } from "../src/sync/follower/anchor-check.js";
import { EventShipper } from "../src/sync/follower/event-shipper.js";
import { SyncClient } from "../src/sync/follower/sync-client.js";
import { AckHistory, TrailRetention } from "../src/sync/follower/trail-retention.js";
import { clientCredentials } from "../src/sync/tls/client-credentials.js";
import { startCentral, tempSqlite } from "./support/central.js";
import { eventually } from "./support/eventually.js";
import { startSidecar } from "./support/sidecar.js";
import { openTempStore } from "./support/temp-store.js";

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const MIN = 60_000;
/** Store-level tests: every persisted ack counts as long since seen. */
const LONG_AGO_ACKED = Number.MAX_SAFE_INTEGER;

/** Appends events at the given times (one each). */
function appendAt(db: Db, times: readonly number[]): void {
  const audit = new AuditLog(db);
  for (const [i, t] of times.entries()) {
    audit.append(
      {
        lever: "golive",
        action: "ENABLE",
        subject: "",
        ok: true,
        reason: `e${i}`,
        actor: "t",
        correlationId: `c${i}`,
      },
      t,
    );
  }
}

function setMeta(db: Db, key: string, value: number): void {
  db.prepare("UPDATE meta SET value = ? WHERE key = ?").run(value, key);
}

/** Every table derived from the trail (risk, KPI series, scorecards) folded up to `seq`. */
function setFolded(db: Db, seq: number): void {
  for (const key of ["risk_folded_seq", "kpi_folded_seq", "scorecard_folded_seq"]) {
    setMeta(db, key, seq);
  }
}

describe("what may be pruned", () => {
  it("stays below the shipped event, within the fold, short of the head, one chunk at a time", () => {
    const b = { shippedSeq: 50, foldedSeq: 100, headSeq: 80, horizonSeq: 0, chunk: 1000 };
    expect(pruneCeiling(b)).toBe(49);
    expect(pruneCeiling({ ...b, foldedSeq: 20 })).toBe(20);
    expect(pruneCeiling({ ...b, shippedSeq: 200 })).toBe(79);
    expect(pruneCeiling({ ...b, chunk: 10, horizonSeq: 5 })).toBe(15);
    // Nothing acked, or central behind the horizon: nothing goes, and the horizon never moves back.
    expect(pruneCeiling({ ...b, shippedSeq: 0 })).toBe(0);
    expect(pruneCeiling({ ...b, shippedSeq: 10, horizonSeq: 30 })).toBe(30);
  });
});

describe("pruning a store", () => {
  it("removes acked events older than the cutoff, and the chain verifies from the horizon", () => {
    const store = openTempStore();
    cleanups.push(() => store.remove());
    const db = store.db;
    appendAt(
      db,
      [1, 2, 3, 4, 5, 6, 7, 8, 9, 10].map((m) => m * MIN),
    );
    setMeta(db, "shipped_seq", 8);
    setFolded(db, 100);
    const pruning = new TrailPruning(db);
    // Older than minute 5.5: events 1-5.
    expect(pruning.pruneOlderThan(5.5 * MIN, 11 * MIN, 1000, LONG_AGO_ACKED)).toBe(5);
    expect(trailHorizon(db)).toMatchObject({ seq: 5, prunedMs: 11 * MIN });
    expect(verifyChain(db)).toMatchObject({ ok: true, events: 5, prunedSeq: 5 });
    // Everything old: only up to the event before the shipped one (8 stays).
    expect(pruning.pruneOlderThan(100 * MIN, 100 * MIN, 1000, LONG_AGO_ACKED)).toBe(2);
    expect(db.prepare("SELECT min(seq) AS s FROM audit_event").get()).toEqual({ s: 8 });
    // Appending goes on from the head, and the chain holds.
    appendAt(db, [11 * MIN]);
    expect(verifyChain(db)).toMatchObject({ ok: true, events: 4, prunedSeq: 7 });
  });

  it("never removes what the KPI or scorecard folds have not reached, however far the risk fold is", () => {
    const store = openTempStore();
    cleanups.push(() => store.remove());
    const db = store.db;
    appendAt(
      db,
      [1, 2, 3, 4, 5, 6].map((m) => m * MIN),
    );
    setMeta(db, "shipped_seq", 6);
    setFolded(db, 100);
    // The risk book folded itself far ahead, while the KPI fold stopped at event 2 and the
    // scorecard fold at event 3: the events after them are the only copy of those outcomes.
    setMeta(db, "kpi_folded_seq", 2);
    setMeta(db, "scorecard_folded_seq", 3);
    const pruning = new TrailPruning(db);
    expect(pruning.pruneOlderThan(100 * MIN, 100 * MIN, 1000, LONG_AGO_ACKED)).toBe(2);
    setMeta(db, "kpi_folded_seq", 100);
    expect(pruning.pruneOlderThan(100 * MIN, 100 * MIN, 1000, LONG_AGO_ACKED)).toBe(1);
    setMeta(db, "scorecard_folded_seq", 100);
    expect(pruning.pruneOlderThan(100 * MIN, 100 * MIN, 1000, LONG_AGO_ACKED)).toBe(2);
    expect(db.prepare("SELECT seq FROM audit_event").all()).toEqual([{ seq: 6 }]);
  });

  it("never removes what the risk tables have not folded, nor the head", () => {
    const store = openTempStore();
    cleanups.push(() => store.remove());
    const db = store.db;
    appendAt(
      db,
      [1, 2, 3, 4].map((m) => m * MIN),
    );
    setMeta(db, "shipped_seq", 4);
    setFolded(db, 2);
    const pruning = new TrailPruning(db);
    expect(pruning.pruneOlderThan(100 * MIN, 100 * MIN, 1000, LONG_AGO_ACKED)).toBe(2);
    setFolded(db, 100);
    setMeta(db, "shipped_seq", 1000);
    // Central's ack of event 2 only was seen long enough ago: nothing past it goes.
    expect(pruning.pruneOlderThan(100 * MIN, 100 * MIN, 1000, 2)).toBe(0);
    expect(pruning.pruneOlderThan(100 * MIN, 100 * MIN, 1000, LONG_AGO_ACKED)).toBe(1);
    // The horizon itself moves only forward, and never to what central has not acked.
    expect(() => db.prepare("UPDATE audit_horizon SET seq = 1").run()).toThrow(
      /only moves forward/,
    );
    expect(() => db.prepare("UPDATE audit_horizon SET seq = 1000").run()).toThrow(
      /below the newest event central acked/,
    );
    expect(db.prepare("SELECT seq FROM audit_event").all()).toEqual([{ seq: 4 }]);
  });

  it("prunes a contiguous run: an event with a later time stops it, even if older ones follow", () => {
    const store = openTempStore();
    cleanups.push(() => store.remove());
    const db = store.db;
    // The wall clock stepped: event 3 is stamped later than event 4.
    appendAt(db, [1 * MIN, 2 * MIN, 50 * MIN, 3 * MIN, 4 * MIN]);
    setMeta(db, "shipped_seq", 5);
    setFolded(db, 100);
    expect(new TrailPruning(db).pruneOlderThan(10 * MIN, 60 * MIN, 1000, LONG_AGO_ACKED)).toBe(2);
    expect(verifyChain(db)).toMatchObject({ ok: true, prunedSeq: 2 });
  });

  it("still catches an edited event, and a removed one just after the horizon", () => {
    const store = openTempStore();
    cleanups.push(() => store.remove());
    const db = store.db;
    appendAt(
      db,
      [1, 2, 3, 4, 5, 6].map((m) => m * MIN),
    );
    setMeta(db, "shipped_seq", 6);
    setFolded(db, 100);
    new TrailPruning(db).pruneOlderThan(2.5 * MIN, 10 * MIN, 1000, LONG_AGO_ACKED);
    db.exec("DROP TRIGGER audit_event_no_update");
    db.prepare("UPDATE audit_event SET reason = 'x' WHERE seq = 5").run();
    expect(verifyChain(db).firstBroken).toMatchObject({ seq: 5 });
    // Above the horizon the store itself refuses; a tamperer drops the guard first.
    expect(() => db.prepare("DELETE FROM audit_event WHERE seq = 3").run()).toThrow(/immutable/);
    db.exec("DROP TRIGGER audit_event_no_delete");
    db.prepare("DELETE FROM audit_event WHERE seq = 3").run();
    expect(verifyChain(db).firstBroken).toMatchObject({ seq: 4 });
  });
});

/** A sidecar store shipping to a real central, with retention on a manual clock. */
async function shippingStore() {
  const clock = new ManualClock(Date.UTC(2026, 11, 1, 12));
  const store = openTempStore();
  cleanups.push(() => store.remove());
  setFolded(store.db, 1_000_000);
  const commits = new GroupCommit(store.db);
  const lines: string[] = [];
  const logger = pino(
    { level: "info" },
    new Writable({
      write(chunk, _enc, done) {
        lines.push(String(chunk));
        done();
      },
    }),
  );
  const centrals = [await centralOn()];
  let client = centrals[0]?.client as SyncClient;
  const retention = new TrailRetention(
    { db: store.db, clock, logger, retainMs: 10 * MIN },
    (work) => commits.runNow(work),
  );
  const shipper = new EventShipper(
    {
      db: store.db,
      clock,
      logger,
      sidecarId: "keep-1",
      lingerMs: 0,
      idleMs: 50,
      onAcked: (seq) => retention.acked(seq),
    },
    () => client,
    (work) => commits.runNow(work),
  );
  commits.afterCommit = () => shipper.committed();
  cleanups.push(() => shipper.stop());
  const append = (n: number) =>
    commits.runNow(() => appendAt(store.db, Array(n).fill(clock.now())));
  const held = async (c = centrals.at(-1)) => {
    const view = await c?.central.caller.call(SyncService, "listSidecars", {});
    return view?.sidecars.find((s) => s.sidecarId === "keep-1");
  };
  const moveTo = async () => {
    const next = await centralOn();
    centrals.push(next);
    client = next.client;
  };
  return { clock, store, shipper, retention, append, held, moveTo, lines };
}

async function centralOn() {
  const db = tempSqlite();
  cleanups.push(() => db.drop());
  const central = await startCentral(db.url);
  cleanups.push(() => central.close());
  const connection = clientCredentials({ central: central.grpcAddress, allowRemote: false });
  const client = new SyncClient(connection);
  cleanups.push(() => {
    client.close();
    connection.close();
  });
  return { central, client };
}

describe("when central acked what", () => {
  it("counts the retention from the ack: an old backlog acked now stays the whole retention", () => {
    const acks = new AckHistory();
    const t = 1_000 * MIN;
    acks.acked(100, t);
    // Seen again and again within a minute: the newest is timed at its latest sighting.
    acks.acked(150, t + 10_000);
    acks.acked(180, t + 50_000);
    expect(acks.ackedBy(t - 1)).toBe(0);
    expect(acks.ackedBy(t + 30_000)).toBe(100);
    expect(acks.ackedBy(t + 50_000)).toBe(180);
    acks.acked(300, t + 2 * MIN);
    acks.acked(400, t + 3 * MIN + 1);
    expect(acks.ackedBy(t + 2 * MIN)).toBe(300);
    expect(acks.ackedBy(t + 10 * MIN)).toBe(400);
    // An older or equal seq changes nothing.
    acks.acked(350, t + 20 * MIN);
    expect(acks.ackedBy(t + 20 * MIN)).toBe(400);
  });
});

describe("retention on a connected sidecar", () => {
  it("prunes what central acked past the retention; shipping and the anchor check go on", async () => {
    const s = await shippingStore();
    s.shipper.start();
    s.append(20);
    await eventually("20 events shipped", async () => Number((await s.held())?.shippedSeq) === 20);
    await eventually("the ack persisted", () => s.shipper.status().shippedSeq === 20);
    // Younger than the retention: nothing goes.
    expect(await s.retention.pruneNow()).toBe(0);
    s.clock.advance(11 * MIN);
    expect(await s.retention.pruneNow()).toBe(19);
    expect(verifyChain(s.store.db)).toMatchObject({ ok: true, events: 1, prunedSeq: 19 });
    // New events link to the kept head and central takes them: the chains agree.
    s.append(5);
    await eventually("25 events shipped", async () => Number((await s.held())?.shippedSeq) === 25);
    const row = await s.held();
    const anchor = {
      shippedSeq: Number(row?.shippedSeq),
      shippedHash: row?.shippedHash ?? "",
      headSeq: Number(row?.headSeq),
      headHash: row?.headHash ?? "",
    };
    expect(checkAgainstAnchor(s.store.db, anchor)).toEqual([]);
    // An anchor older than the horizon is a central that lost acked events.
    expect(checkAgainstAnchor(s.store.db, { ...anchor, shippedSeq: 3 })[0]).toMatch(
      /pruned events up to 19 after central had acked them/,
    );
  });

  it("keeps a backlog central acks late for the whole retention after the ack", async () => {
    const s = await shippingStore();
    // Written two hours before central hears of them (a partition), then shipped.
    s.append(10);
    s.clock.advance(120 * MIN);
    s.shipper.start();
    await eventually("10 events shipped", () => s.shipper.status().shippedSeq === 10);
    s.clock.advance(MIN);
    // Old enough by their own time, but acked a minute ago: nothing goes.
    expect(await s.retention.pruneNow()).toBe(0);
    s.clock.advance(10 * MIN);
    expect(await s.retention.pruneNow()).toBe(9);
  });

  it("tells a central that lost acked events what happened, and sends it no gap", async () => {
    const s = await shippingStore();
    s.shipper.start();
    s.append(10);
    await eventually("10 events shipped", () => s.shipper.status().shippedSeq === 10);
    s.clock.advance(11 * MIN);
    expect(await s.retention.pruneNow()).toBe(9);
    // A central restored without this sidecar's events.
    await s.moveTo();
    // Its next shipment finds the gap; asked what it holds, the new central says nothing.
    s.append(1);
    await eventually("the refusal logged", () =>
      s.lines.some((l) => l.includes("central lost events it had acked")),
    );
    expect(Number((await s.held())?.shippedSeq ?? 0)).toBe(0);
  });
});

describe("a sidecar started with a retention", () => {
  it("prunes its shipped, folded trail once the retention has passed, and keeps deciding", async () => {
    const { central } = await centralOn();
    const s = await startSidecar({
      follow: {
        endpoints: [clientCredentials({ central: central.grpcAddress, allowRemote: false })],
        sidecarId: "keep-2",
        engines: ["WHOLESALE"],
        staleAfterMs: 30_000,
        shipLingerMs: 0,
        retainShippedMs: 10 * MIN,
        retainEveryMs: 50,
      },
    });
    cleanups.push(() => s.stop());
    const held = async () => {
      const view = await central.caller.call(SyncService, "listSidecars", {});
      return Number(view.sidecars.find((r) => r.sidecarId === "keep-2")?.shippedSeq ?? 0n);
    };
    const head = () =>
      Number(s.db.prepare("SELECT coalesce(max(seq), 0) AS h FROM audit_event").pluck().get());
    await eventually("the snapshot applied", () => head() > 0);
    for (let i = 0; i < 5; i++) {
      await s.grpc.call(RiskService, "reserve", {
        engine: "WHOLESALE",
        amount: "1.00",
        correlationId: `keep-${i}`,
      });
    }
    // Shipped, and the ack taken here (it is persisted after the retention noted its time):
    // central's view alone can show the events before the sidecar has its answer, and an ack
    // noted after the clock's jump below would keep them the whole retention again.
    const persisted = () =>
      Number(s.db.prepare("SELECT value FROM meta WHERE key = 'shipped_seq'").pluck().get());
    await eventually(
      "every event shipped and acked here",
      async () => (await held()) === head() && persisted() === head(),
    );
    await s.sidecar.sweep();
    const before = head();
    s.clock.advance(11 * MIN);
    await eventually("the trail pruned", () => verifyChain(s.db).prunedSeq > 0);
    const report = verifyChain(s.db);
    expect(report).toMatchObject({ ok: true });
    expect(report.prunedSeq).toBeLessThan(before);
    // Decisions go on and ship, linking to the kept trail.
    await s.grpc.call(RiskService, "reserve", {
      engine: "WHOLESALE",
      amount: "1.00",
      correlationId: "keep-after",
    });
    await eventually("the new event shipped", async () => (await held()) === head());
    expect(verifyChain(s.db).ok).toBe(true);
  });
});
