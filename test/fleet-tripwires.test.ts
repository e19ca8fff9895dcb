/**
 * Fleet tripwires on central (SQLite and PostgreSQL), through ShipEvents as sidecars call it:
 * the KPI outcomes two sidecars ship land in one fleet stream, whose wire trips when their sum
 * crosses though each alone is below min_events_to_enforce; the trip is one TripwireTrip
 * change (never a second), THROTTLE or the kill switch; dry run acts on nothing; a re-arm
 * restarts the fleet evaluation; GetState answers from the fleet stream and says how far
 * behind each sidecar is; streams keep only what their wire reads.
 */
import { afterEach, describe, expect, it } from "vitest";
import { GoLiveService } from "../gen/governance/v1/golive_pb.js";
import {
  RegressionService,
  TripwireAction,
  TripwireStatus,
} from "../gen/governance/v1/regression_pb.js";
import { SyncService } from "../gen/governance/v1/sync_pb.js";
import { GENESIS_HASH, linkHash } from "../src/store/audit-log.js";
import { decode, Kind } from "../src/sync/central/central-entities.js";
import { shippedEventOf } from "../src/sync/shipped-event.js";
import {
  inProcessCentralStores,
  postgresReachable,
  type RunningCentral,
  startCentral,
  tempPostgres,
} from "./support/central.js";
import { TOKEN } from "./support/sidecar.js";

const pgUp = await postgresReachable();
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const stores = inProcessCentralStores(pgUp);

/** One sidecar's audit trail of KPI outcomes (as RecordKpi appends them), shipped in order. */
class KpiTrail {
  private seq = 0;
  private prev = GENESIS_HASH;
  constructor(
    readonly sidecarId: string,
    private readonly c: RunningCentral,
  ) {}

  /** Ships one batch: a KPI event per outcome of `series` (and one risk event first). */
  async ship(series: string, outcomes: boolean[], to: RunningCentral = this.c) {
    const prevHash = this.prev === GENESIS_HASH ? "" : this.prev;
    const rows = [
      { lever: "risk", action: "DENY", subject: "WHOLESALE", ok: 0 },
      ...outcomes.map((ok) => ({
        lever: "kpi",
        action: "KPI",
        subject: series,
        ok: ok ? 1 : 0,
      })),
    ];
    const events = rows.map((r) => {
      this.seq++;
      const row = {
        ...r,
        seq: this.seq,
        time_ms: Date.now(),
        amount: null,
        reason: "",
        actor: "engine",
        correlation_id: `${this.sidecarId}-${this.seq}`,
        reservation_id: "",
        metadata: JSON.stringify({ value: "1" }),
      };
      const hash = linkHash(this.prev, row);
      this.prev = hash;
      return shippedEventOf({ ...row, hash });
    });
    return to.caller.call(SyncService, "shipEvents", {
      sidecarId: this.sidecarId,
      events,
      prevHash,
      headSeq: BigInt(this.seq),
      headHash: this.prev,
    });
  }
}

const SERIES = "WHOLESALE/contract_rate";
const ok = (n: number) => Array<boolean>(n).fill(true);
const failed = (n: number) => Array<boolean>(n).fill(false);

describe.each(stores)("fleet tripwires on central ($name)", ({ up, location }) => {
  if (!up) return void it.skip("PostgreSQL at 127.0.0.1:5432 is unreachable", () => undefined);

  async function central(wire: Record<string, unknown> = {}): Promise<RunningCentral> {
    const db = await location();
    cleanups.push(db.drop);
    const c = await startCentral(db.url);
    cleanups.push(c.close);
    await c.caller.call(
      RegressionService,
      "upsertPolicy",
      {
        domain: "WHOLESALE",
        metric: "contract_rate",
        windowEvents: 5,
        baselineEvents: 5,
        minEventsToEnforce: 12,
        maxDropFraction: 0.2,
        action: TripwireAction.THROTTLE,
        throttleTargets: ["WHOLESALE"],
        enabled: true,
        actor: "ops",
        reason: "fleet wire",
        ...wire,
      },
      { token: TOKEN },
    );
    return c;
  }

  const stateOf = async (c: RunningCentral) =>
    (await c.caller.call(RegressionService, "getState", { domain: "WHOLESALE" })).states.find(
      (s) => s.metric === "contract_rate",
    );

  const tripChanges = async (c: RunningCentral) =>
    (
      await c.store.db
        .selectFrom("central_change")
        .select(["entity", "actor"])
        .where("kind", "=", Kind.trip)
        .orderBy("revision")
        .execute()
    ).map((r) => ({ ...decode.trip(r.entity), actor: r.actor }));

  it("trips THROTTLE once when two sidecars' outcomes together cross min events, though neither alone does", async () => {
    const c = await central();
    const a = new KpiTrail("sc-a", c);
    const b = new KpiTrail("sc-b", c);
    await a.ship(SERIES, ok(6));
    const half = await stateOf(c);
    expect(half).toMatchObject({ status: TripwireStatus.INSUFFICIENT_DATA, eventsSeen: 6n });
    const head = (await c.store.head()).revision;
    const shipped = await b.ship(SERIES, failed(6));
    expect(shipped.ackedSeq).toBe(7n);
    expect((await c.store.head()).revision).toBe(head + 1);
    const trips = await tripChanges(c);
    expect(trips).toHaveLength(1);
    expect(trips[0]).toMatchObject({
      tripped: true,
      action: TripwireAction.THROTTLE,
      sidecarId: "",
      actor: "central:fleet-tripwire",
    });
    expect(trips[0]?.reason).toMatch(
      /^fleet stream WHOLESALE\/contract_rate: success rate 0\.0000 over the last 5 events against 0\.8000 over the 5 before: drop 1\.0000 > 0\.2$/,
    );
    const state = await c.caller.call(RegressionService, "getState", { domain: "WHOLESALE" });
    expect(state.throttled).toContain("WHOLESALE");
    expect(state.states.find((s) => s.metric === "contract_rate")).toMatchObject({
      status: TripwireStatus.TRIPPED,
      eventsSeen: 12n,
      currentRate: 0,
      baselineRate: 0.8,
      lastTripReason: trips[0]?.reason,
    });
    expect(state.behind.map((l) => [l.sidecarId, l.shippedSeq]).sort()).toEqual([
      ["sc-a", 7n],
      ["sc-b", 7n],
    ]);
    // Tripped: more failures change no revision, on either sidecar's shipments.
    await a.ship(SERIES, failed(3));
    await b.ship(SERIES, failed(3));
    expect(await tripChanges(c)).toHaveLength(1);
    expect((await c.store.head()).revision).toBe(head + 1);
    // Only what the wire reads is kept (window + baseline).
    const kept = await c.store.db.selectFrom("central_kpi_outcome").select("n").execute();
    expect(kept.map((r) => Number(r.n)).sort((x, y) => x - y)).toEqual([
      9, 10, 11, 12, 13, 14, 15, 16, 17, 18,
    ]);

    // Re-armed on central: the fleet wire starts again on outcomes after the re-arm.
    const reset = await c.caller.call(
      RegressionService,
      "resetTripwire",
      { domain: "WHOLESALE", metric: "contract_rate", actor: "ops", reason: "fixed" },
      { token: TOKEN },
    );
    expect(reset.state).toMatchObject({ status: TripwireStatus.INSUFFICIENT_DATA, eventsSeen: 0n });
    await a.ship(SERIES, ok(6));
    await b.ship(SERIES, ok(5));
    expect(await stateOf(c)).toMatchObject({
      status: TripwireStatus.INSUFFICIENT_DATA,
      eventsSeen: 11n,
    });
    await b.ship(SERIES, ok(1));
    expect(await stateOf(c)).toMatchObject({ status: TripwireStatus.OK, eventsSeen: 12n, drop: 0 });
    await a.ship(SERIES, failed(5));
    const again = await tripChanges(c);
    expect(again.map((t) => t.tripped)).toEqual([true, false, true]);
  });

  it("a KILL_SWITCH wire engages the fleet's kill switch with the fleet stream in the reason", async () => {
    const c = await central({ action: TripwireAction.KILL_SWITCH, throttleTargets: [] });
    await new KpiTrail("sc-a", c).ship(SERIES, ok(7));
    await new KpiTrail("sc-b", c).ship(SERIES, failed(5));
    const golive = await c.caller.call(GoLiveService, "getState", {});
    expect(golive.state?.killSwitchEngaged).toBe(true);
    expect(golive.state?.reason).toMatch(
      /^tripwire WHOLESALE\/contract_rate \(KILL_SWITCH\) tripped on the fleet stream: fleet stream WHOLESALE\/contract_rate: success rate 0\.0000/,
    );
    expect(await stateOf(c)).toMatchObject({ status: TripwireStatus.TRIPPED });
  });

  it("a dry-run wire only notes what it would do; disabled wires and series without a policy only record", async () => {
    const c = await central({ dryRun: true });
    const head = (await c.store.head()).revision;
    await new KpiTrail("sc-a", c).ship(SERIES, ok(7));
    await new KpiTrail("sc-b", c).ship(SERIES, failed(5));
    expect((await c.store.head()).revision).toBe(head);
    const state = await stateOf(c);
    expect(state?.status).toBe(TripwireStatus.DRY_RUN_TRIPPED);
    expect(state?.lastTripReason).toMatch(
      /^dry run, nothing done: fleet stream WHOLESALE\/contract_rate/,
    );
    // Re-armed on central like a trip.
    await c.caller.call(
      RegressionService,
      "resetTripwire",
      { domain: "WHOLESALE", metric: "contract_rate", actor: "ops", reason: "seen" },
      { token: TOKEN },
    );
    expect(await stateOf(c)).toMatchObject({
      status: TripwireStatus.INSUFFICIENT_DATA,
      eventsSeen: 0n,
    });
    // The seed's CAPITAL/roi_event wire is disabled: outcomes are recorded, nothing trips.
    const d = new KpiTrail("sc-d", c);
    await d.ship("CAPITAL/roi_event", [...ok(300), ...failed(100)]);
    await d.ship("NO_POLICY/some_metric", failed(10));
    expect((await c.store.head()).revision).toBe(head + 1);
    const capital = (await c.caller.call(RegressionService, "getState", { domain: "CAPITAL" }))
      .states;
    expect(capital.find((s) => s.metric === "roi_event")).toMatchObject({
      status: TripwireStatus.DISABLED,
      eventsSeen: 400n,
    });
  });
});

describe.skipIf(!pgUp)("fleet tripwires on two central replicas (PostgreSQL)", () => {
  it("trips a wire once when shipments that each cross it land on both replicas at once", async () => {
    const db = await tempPostgres();
    cleanups.push(db.drop);
    const [a, b] = [
      await startCentral(db.url, { replica: "replica-a" }),
      await startCentral(db.url, { replica: "replica-b" }),
    ];
    cleanups.push(a.close, b.close);
    await a.caller.call(
      RegressionService,
      "upsertPolicy",
      {
        domain: "WHOLESALE",
        metric: "contract_rate",
        windowEvents: 5,
        baselineEvents: 5,
        minEventsToEnforce: 12,
        maxDropFraction: 0.2,
        action: TripwireAction.KILL_SWITCH,
        enabled: true,
        actor: "ops",
        reason: "fleet wire",
      },
      { token: TOKEN },
    );
    await new KpiTrail("sc-a", a).ship(SERIES, ok(7));
    const head = (await a.store.head()).revision;
    // Each alone would trip the wire (12 outcomes, the last 5 failed).
    await Promise.all([
      new KpiTrail("sc-b", a).ship(SERIES, failed(5)),
      new KpiTrail("sc-c", b).ship(SERIES, failed(5)),
    ]);
    const trips = await a.store.db
      .selectFrom("central_change")
      .select("kind")
      .where("revision", ">", head)
      .execute();
    // One trip and one kill switch change, from whichever shipment came first.
    expect(trips.map((t) => t.kind).sort()).toEqual([Kind.goLive, Kind.trip]);
    const wire = (
      await b.caller.call(RegressionService, "getState", { domain: "WHOLESALE" })
    ).states.find((s) => s.metric === "contract_rate");
    expect(wire).toMatchObject({ status: TripwireStatus.TRIPPED, eventsSeen: 17n });
  });
});
