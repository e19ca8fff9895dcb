/**
 * The fleet Heimdall scorecard on central (SQLite and PostgreSQL): the sandbox trials of
 * shipped events (made by the sidecar's own trial event maker on a real sidecar store) are
 * booked per (day, domain, sidecar) in the ingest transaction, once (a replay books nothing);
 * GetScorecardToday answers the fleet's day with each sidecar's lag; and each sidecar's Watch
 * stream carries the other sidecars' evidence, sent at its start and when it changes, also
 * when another replica of the same PostgreSQL store ingested the trials.
 */
import { Code } from "@connectrpc/connect";
import { afterEach, describe, expect, it } from "vitest";
import { HeimdallService } from "../gen/governance/v1/heimdall_pb.js";
import { SyncService, type WatchResponse } from "../gen/governance/v1/sync_pb.js";
import { trialEntry } from "../src/levers/heimdall/trial-event.js";
import { type AuditEntry, AuditLog } from "../src/store/audit-log.js";
import { shippedEventOf } from "../src/sync/shipped-event.js";
import {
  inProcessCentralStores,
  postgresReachable,
  type RunningCentral,
  startCentral,
  type WatchClient,
  watch,
} from "./support/central.js";
import { rejects } from "./support/expect-error.js";
import { openTempStore, type TempStore } from "./support/temp-store.js";

const pgUp = await postgresReachable();
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const DAY_MS = 86_400_000;
const today = () => new Date().toISOString().slice(0, 10);
const yesterday = () => new Date(Date.now() - DAY_MS).toISOString().slice(0, 10);

/** A sidecar's store, its trail written by the levers' own event makers. */
class SidecarTrail {
  readonly audit: AuditLog;
  shipped = 0;
  constructor(
    readonly id: string,
    readonly store: TempStore,
  ) {
    this.audit = new AuditLog(store.db);
  }
  trial(domain: string, success: boolean, confidence: number, atMs = Date.now()) {
    this.audit.append(
      trialEntry(domain, success, confidence, "engine", `t-${Math.random()}`),
      atMs,
    );
  }
  other() {
    const entry: AuditEntry = {
      lever: "heimdall",
      action: "PROD_ELIGIBLE",
      subject: "BUYER_MATCH",
      ok: true,
      reason: "allowed",
      actor: "engine",
      correlationId: `p-${Math.random()}`,
      metadata: { recommendation_id: "r-1", failed_gates: "" },
    };
    this.audit.append(entry, Date.now());
  }
  rows(after: number) {
    return this.store.db
      .prepare("SELECT * FROM audit_event WHERE seq > ? ORDER BY seq")
      .all(after) as Parameters<typeof shippedEventOf>[0][];
  }
  /** Ships every event after `from` (default: what was shipped) in one batch. */
  async ship(c: RunningCentral, from = this.shipped) {
    const rows = this.rows(from);
    const prev = from === 0 ? "" : (this.rows(from - 1)[0]?.hash ?? "");
    const last = rows.at(-1);
    const ack = await c.caller.call(SyncService, "shipEvents", {
      sidecarId: this.id,
      events: rows.map(shippedEventOf),
      prevHash: prev,
      headSeq: BigInt(last?.seq ?? from),
      headHash: last?.hash ?? "",
    });
    this.shipped = Number(ack.ackedSeq);
    return ack;
  }
}

/** The next FleetEvidence message of a Watch stream, heartbeats and policy skipped. */
async function nextEvidence(w: WatchClient) {
  for (;;) {
    const m: WatchResponse = await w.next(5000);
    if (m.message.case === "fleetEvidence") return m.message.value;
  }
}

const stores = inProcessCentralStores(pgUp);

describe.each(stores)("the fleet scorecard on central ($name)", ({ name, up, location }) => {
  if (!up) return void it.skip("PostgreSQL at 127.0.0.1:5432 is unreachable", () => undefined);

  async function central(): Promise<RunningCentral> {
    const db = await location();
    cleanups.push(db.drop);
    const c = await startCentral(db.url, { evidenceCheckMs: 50 });
    cleanups.push(c.close);
    return c;
  }

  function sidecar(id: string): SidecarTrail {
    const store = openTempStore();
    cleanups.push(async () => store.remove());
    return new SidecarTrail(id, store);
  }

  async function booked(c: RunningCentral) {
    const rows = await c.store.db
      .selectFrom("central_fleet_scorecard")
      .selectAll()
      .orderBy("sidecar_id")
      .orderBy("day")
      .orderBy("domain")
      .execute();
    return rows.map(
      (r) => `${r.sidecar_id} ${r.day} ${r.domain} ${r.trials}/${r.successes} ${r.confidence_sum}`,
    );
  }

  it("books shipped trials once per (day, domain, sidecar) and answers the fleet's day", async () => {
    const c = await central();
    const a = sidecar("sc-a");
    const b = sidecar("sc-b");
    a.trial("BUYER_MATCH", true, 0.5, Date.now() - DAY_MS);
    a.trial("BUYER_MATCH", true, 0.75);
    a.other();
    a.trial("BUYER_MATCH", false, 0.25);
    a.trial("CAPITAL_ROUTE", true, 1);
    expect((await a.ship(c)).ackedSeq).toBe(5n);
    b.trial("BUYER_MATCH", true, 0.5);
    await b.ship(c);
    const want = [
      `sc-a ${yesterday()} BUYER_MATCH 1/1 0.5`,
      `sc-a ${today()} BUYER_MATCH 2/1 1`,
      `sc-a ${today()} CAPITAL_ROUTE 1/1 1`,
      `sc-b ${today()} BUYER_MATCH 1/1 0.5`,
    ];
    expect(await booked(c)).toEqual(want);
    // A replay is refused and books nothing; the next batch books only its own trial.
    await rejects(a.ship(c, 0), Code.FailedPrecondition, /a replay/);
    expect(await booked(c)).toEqual(want);
    a.trial("BUYER_MATCH", true, 1);
    await a.ship(c);
    const card = await c.caller.call(HeimdallService, "getScorecardToday", {});
    expect(card.day).toBe(today());
    const buyer = card.scorecards.find((s) => s.domain === "BUYER_MATCH");
    expect(buyer).toMatchObject({ trials: 4, successes: 3, successRate: 0.75 });
    expect(buyer?.avgConfidence).toBeCloseTo((0.75 + 0.25 + 0.5 + 1) / 4, 12);
    // Every seeded domain is listed, with nothing where nothing was shipped.
    expect(card.scorecards.find((s) => s.domain === "WHOLESALE_OFFER")?.trials).toBe(0);
    const one = await c.caller.call(HeimdallService, "getScorecardToday", {
      domain: "CAPITAL_ROUTE",
    });
    expect(one.scorecards).toMatchObject([{ domain: "CAPITAL_ROUTE", trials: 1, successes: 1 }]);
    // How far behind: each sidecar's shipped seq and its outbox as it reported it.
    expect(card.behind.map((l) => [l.sidecarId, l.shippedSeq]).sort()).toEqual([
      ["sc-a", 6n],
      ["sc-b", 1n],
    ]);
  });

  it("sends each sidecar's Watch stream the other sidecars' evidence, at its start and when it changes", async () => {
    const c = await central();
    const a = sidecar("sc-a");
    const b = sidecar("sc-b");
    const wa = watch(c.grpcAddress, { sidecarId: "sc-a" }, { evidence: true });
    cleanups.push(async () => wa.cancel());
    const first = await nextEvidence(wa);
    expect(first.otherSidecars).toEqual([]);
    // 30 days back (no seeded policy gives a longer lookback), today included.
    expect(first.fromDay).toBe(new Date(Date.now() - 29 * DAY_MS).toISOString().slice(0, 10));
    for (let i = 0; i < 3; i++) b.trial("BUYER_MATCH", i < 2, 0.9);
    await b.ship(c);
    const fromB = await nextEvidence(wa);
    expect(fromB.otherSidecars).toMatchObject([
      { day: today(), domain: "BUYER_MATCH", trials: 3, successes: 2 },
    ]);
    // A's own shipped trials are not sent back to it, but to B (at B's stream start).
    a.trial("BUYER_MATCH", true, 0.9);
    a.trial("BUYER_MATCH", true, 0.9);
    await a.ship(c);
    const wb = watch(c.grpcAddress, { sidecarId: "sc-b" }, { evidence: true });
    cleanups.push(async () => wb.cancel());
    expect((await nextEvidence(wb)).otherSidecars).toMatchObject([
      { domain: "BUYER_MATCH", trials: 2, successes: 2 },
    ]);
    b.trial("CAPITAL_ROUTE", false, 0.5);
    await b.ship(c);
    const next = await nextEvidence(wa);
    expect(next.otherSidecars.map((s) => [s.domain, s.trials, s.successes])).toEqual([
      ["BUYER_MATCH", 3, 2],
      ["CAPITAL_ROUTE", 1, 0],
    ]);
  });

  // Replicas share a PostgreSQL store (one SQLite file has one central).
  it.runIf(name === "PostgreSQL")(
    "reaches a sidecar on another replica of the same store",
    async () => {
      const db = await location();
      cleanups.push(db.drop);
      const one = await startCentral(db.url, { replica: "replica-a", evidenceCheckMs: 50 });
      cleanups.push(one.close);
      const two = await startCentral(db.url, { replica: "replica-b", evidenceCheckMs: 50 });
      cleanups.push(two.close);
      const wa = watch(two.grpcAddress, { sidecarId: "sc-a" }, { evidence: true });
      cleanups.push(async () => wa.cancel());
      expect((await nextEvidence(wa)).otherSidecars).toEqual([]);
      const b = sidecar("sc-b");
      b.trial("FOLLOWUP_ACTION", true, 0.8);
      await b.ship(one);
      expect((await nextEvidence(wa)).otherSidecars).toMatchObject([
        { domain: "FOLLOWUP_ACTION", trials: 1, successes: 1 },
      ]);
    },
  );
});
