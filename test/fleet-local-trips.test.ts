/**
 * Tripwires that trip on a connected sidecar, with real processes on loopback: `govd central`
 * (SQLite, and PostgreSQL when reachable) and two `govd serve --central` sidecars. A THROTTLE
 * wire tripped by one sidecar's own KPI outcomes throttles that sidecar at once (before central
 * answers), is reported to central, which records it naming the sidecar and sends it to every
 * sidecar, and stays tripped through central's later changes; a re-arm on central reaches every
 * sidecar and lifts the throttle; a tripped KILL_SWITCH wire stays tripped on every sidecar when
 * central releases only the kill switch, until central re-arms the wire.
 */
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import { DenyReason, ExecutionClass } from "../gen/governance/v1/common_pb.js";
import { GoLiveService } from "../gen/governance/v1/golive_pb.js";
import {
  RegressionService,
  TripwireAction,
  TripwireStatus,
} from "../gen/governance/v1/regression_pb.js";
import { RiskService } from "../gen/governance/v1/risk_pb.js";
import { SyncService } from "../gen/governance/v1/sync_pb.js";
import { centralStores, postgresReachable } from "./support/central.js";
import { eventually } from "./support/eventually.js";
import {
  FLEET_TOKEN,
  type FleetProcess,
  startCentral,
  startFollower,
  stopAll,
} from "./support/fleet-processes.js";

const auth = { token: FLEET_TOKEN };
const pgUp = await postgresReachable();
const drops: (() => Promise<void>)[] = [];
afterEach(async () => {
  await stopAll();
  for (const d of drops.splice(0)) await d();
});

const WIRE = { domain: "WHOLESALE", metric: "contract_rate" };

/** The wire's policy on central: 10 outcomes to enforce, throttling WHOLESALE when it trips. */
const WIRE_POLICY = {
  ...WIRE,
  windowEvents: 5,
  baselineEvents: 5,
  minEventsToEnforce: 10,
  throttleTargets: ["WHOLESALE"],
  enabled: true,
};

const op = (reason: string) => ({
  actor: "ops",
  reason,
  correlationId: `${reason}-${Math.random()}`,
});

/** The wire as a node (sidecar or central) states it. */
async function wireOn(node: FleetProcess) {
  const state = await node.grpc.call(RegressionService, "getState", { domain: WIRE.domain });
  const wire = state.states.find((s) => s.metric === WIRE.metric);
  if (!wire) throw new Error(`${node.grpcAddress} holds no ${WIRE.domain}/${WIRE.metric} wire`);
  return { wire, throttled: state.throttled };
}

const names = new WeakMap<FleetProcess, string>();
const nameOf = (s: FleetProcess) => names.get(s) ?? s.grpcAddress;

let reservations = 0;
const reserve = (s: FleetProcess) =>
  s.grpc.call(RiskService, "reserve", {
    engine: "WHOLESALE",
    amount: "1.00",
    actor: "engine",
    reason: "work",
    correlationId: `r-${++reservations}-${Math.random()}`,
  });

const prodExec = (s: FleetProcess) =>
  s.grpc.call(GoLiveService, "checkGoLive", { executionClass: ExecutionClass.PROD_EXEC });

/** Records outcomes in order; returns the last RecordKpi answer. */
async function record(s: FleetProcess, outcomes: boolean[]) {
  let last: Awaited<ReturnType<typeof recordOne>> | undefined;
  for (const success of outcomes) last = await recordOne(s, success);
  if (!last) throw new Error("no outcome recorded");
  return last;
}
const recordOne = (s: FleetProcess, success: boolean) =>
  s.grpc.call(RegressionService, "recordKpi", { ...WIRE, success, value: success ? 1 : 0 });

/** The trips a sidecar acted on and reported that central has not answered yet. */
function unrecordedReports(s: FleetProcess): number {
  const db = new Database(join(s.dataDir, "sidecar.db"), { readonly: true });
  try {
    const row = db
      .prepare("SELECT count(*) AS n FROM central_trip_report WHERE recorded_revision IS NULL")
      .get() as { n: number };
    return row.n;
  } finally {
    db.close();
  }
}

/** Waits until every sidecar acked central's newest revision. */
async function everyApplied(central: FleetProcess, sidecars: number) {
  await eventually("every sidecar to ack central's head", async () => {
    const view = await central.grpc.call(SyncService, "listSidecars", {});
    return (
      view.sidecars.length === sidecars &&
      view.sidecars.every((s) => s.appliedRevision === view.revision)
    );
  });
}

/**
 * Central with the wire armed (window 5, baseline 5, 10 outcomes to enforce) and go-live on,
 * and two sidecars serving WHOLESALE, both allowing Reserve.
 */
async function startFleet(store: string | undefined, action: TripwireAction) {
  const central = await startCentral({ store, heartbeatMs: 200 });
  await central.grpc.call(
    RegressionService,
    "upsertPolicy",
    { ...WIRE_POLICY, maxDropFraction: 0.2, action, ...op("arm") },
    auth,
  );
  await central.grpc.call(GoLiveService, "enable", op("open"), auth);
  const [tripper, bystander] = (await Promise.all(
    ["tripper", "bystander"].map((id) =>
      startFollower({ central: central.grpcAddress, sidecarId: id, engines: ["WHOLESALE"] }),
    ),
  )) as [FleetProcess, FleetProcess];
  names.set(tripper, "tripper").set(bystander, "bystander");
  for (const s of [tripper, bystander]) {
    await eventually(`${nameOf(s)} to allow Reserve`, async () => (await reserve(s)).allowed);
  }
  return { central, tripper, bystander };
}

/**
 * Trips the wire on `s` with its own outcomes: 5 successes and 4 failures (one outcome short
 * of min events, here and on central's fleet stream), then, once central holds those 9, the
 * failure that trips it. The report leaves at once, that outcome ships a linger later (100 ms
 * at least), so central's trip is the sidecar's report, not its fleet stream's. Returns that
 * RecordKpi answer.
 */
async function tripOn(central: FleetProcess, s: FleetProcess) {
  await record(s, [...Array(5).fill(true), ...Array(4).fill(false)]);
  expect((await wireOn(s)).wire.status).toBe(TripwireStatus.INSUFFICIENT_DATA);
  await eventually(
    "central's fleet stream to hold the 9 outcomes",
    async () => (await wireOn(central)).wire.eventsSeen === 9n,
  );
  return record(s, [false]);
}

/** Whether go-live's checklist on `node` counts a tripped wire (the wire's trip flag itself). */
async function wireTripped(node: FleetProcess): Promise<boolean> {
  const checks = await node.grpc.call(GoLiveService, "getChecklist", {});
  const check = checks.checks.find((c) => c.name === "no_tripwire_triggered");
  if (!check) throw new Error(`${nameOf(node)} has no no_tripwire_triggered check`);
  return !check.ok;
}

/**
 * Waits until central answered the tripper's report, both sidecars hold the trip, and central's
 * fleet stream holds the tripper's `outcomes` (so none lands after a re-arm to count again).
 */
async function tripRecorded(
  central: FleetProcess,
  tripper: FleetProcess,
  bystander: FleetProcess,
  outcomes: number,
) {
  await eventually(
    "central to answer the tripper's report",
    () => unrecordedReports(tripper) === 0,
  );
  for (const s of [tripper, bystander]) {
    await eventually(`${nameOf(s)} to hold the trip`, () => wireTripped(s));
  }
  await eventually(
    `central's fleet stream to hold the ${outcomes} outcomes`,
    async () => (await wireOn(central)).wire.eventsSeen >= BigInt(outcomes),
  );
}

/**
 * 10 successes on the tripper: its window is healthy again (a RELATIVE_DROP wire's figures
 * slide over every outcome, a re-arm on a sidecar does not restart them), and the wire stays
 * tripped all the same. Status TRIPPED from here on means the trip, not the figures.
 */
async function heal(tripper: FleetProcess) {
  const healed = await record(tripper, Array(10).fill(true));
  expect(healed.trippedNow).toBe(false);
  expect(healed.state?.drop).toBe(0);
  expect(healed.state?.status).toBe(TripwireStatus.TRIPPED);
}

describe.each(centralStores(pgUp, drops))(
  "a tripwire that trips on a connected sidecar (central on $name)",
  ({ up, store }) => {
    if (!up) return void it.skip("PostgreSQL at 127.0.0.1:5432 is unreachable", () => undefined);

    it("throttles that sidecar at once, is recorded on central naming the sidecar, reaches every sidecar and survives central's later changes", async () => {
      const { central, tripper, bystander } = await startFleet(
        await store(),
        TripwireAction.THROTTLE,
      );
      const tripped = await tripOn(central, tripper);
      expect(tripped.trippedNow).toBe(true);
      // At once: the next Reserve there is throttled, without waiting for central.
      const denied = await reserve(tripper);
      expect(denied.allowed).toBe(false);
      expect(denied.reason).toBe(DenyReason.TRIPWIRE_THROTTLED);
      const own = await wireOn(tripper);
      expect(own.wire.status).toBe(TripwireStatus.TRIPPED);
      expect(own.wire.lastTripReason).toMatch(
        /^WHOLESALE\/contract_rate: success rate 0\.0000 over the last 5 events against 1\.0000/,
      );
      expect(own.throttled).toEqual(["WHOLESALE"]);

      await tripRecorded(central, tripper, bystander, 10);
      // Central holds the sidecar's trip (its reason: not a trip of the fleet stream).
      const atCentral = await wireOn(central);
      expect(atCentral.wire.status).toBe(TripwireStatus.TRIPPED);
      expect(atCentral.wire.lastTripReason).toBe(own.wire.lastTripReason);
      expect(atCentral.throttled).toEqual(["WHOLESALE"]);
      expect(await wireTripped(central)).toBe(true);
      // The other sidecar, which saw no outcome, applied it from Watch, naming the sidecar.
      const other = await wireOn(bystander);
      expect(other.wire.status).toBe(TripwireStatus.TRIPPED);
      expect(other.wire.eventsSeen).toBe(0n);
      expect(other.wire.lastTripReason).toBe(
        `${own.wire.lastTripReason} (tripped on sidecar tripper)`,
      );
      expect(other.throttled).toEqual(["WHOLESALE"]);
      expect((await reserve(bystander)).reason).toBe(DenyReason.TRIPWIRE_THROTTLED);
      // Central's fleet trail names the sidecar whose TRIP it is.
      await eventually("central to list the tripper's TRIP event", async () => {
        const page = await central.grpc.call(RegressionService, "listTripwireEvents", {
          domain: WIRE.domain,
        });
        return page.events.some((e) => e.action === "TRIP" && e.sidecarId === "tripper");
      });

      await heal(tripper);
      // Central's later changes: another engine's caps, another wire, this wire's policy, the
      // kill switch engaged and released. None of them re-arms the wire.
      await central.grpc.call(
        RiskService,
        "upsertPolicy",
        {
          engine: "CAPITAL",
          maxDailyLoss: "150",
          maxDailyExposure: "700",
          maxOpenRisk: "300",
          maxActionsPerDay: 2000,
          enabled: true,
          ...op("caps"),
        },
        auth,
      );
      await central.grpc.call(
        RegressionService,
        "upsertPolicy",
        {
          domain: "BUYER_MATCH",
          metric: "match_success",
          windowEvents: 5,
          baselineEvents: 5,
          maxDropFraction: 0.25,
          action: TripwireAction.THROTTLE,
          enabled: true,
          ...op("other-wire"),
        },
        auth,
      );
      await central.grpc.call(
        RegressionService,
        "upsertPolicy",
        {
          ...WIRE_POLICY,
          maxDropFraction: 0.3,
          action: TripwireAction.THROTTLE,
          ...op("looser"),
        },
        auth,
      );
      await central.grpc.call(GoLiveService, "engageKillSwitch", op("drill"), auth);
      await central.grpc.call(GoLiveService, "releaseKillSwitch", op("drill-over"), auth);
      await everyApplied(central, 2);
      const head = (await central.grpc.call(SyncService, "listSidecars", {})).revision;
      for (const s of [tripper, bystander]) {
        const after = await wireOn(s);
        expect(after.wire.status).toBe(TripwireStatus.TRIPPED);
        expect(after.wire.maxDropFraction).toBe(0.3);
        expect(after.throttled).toEqual(["WHOLESALE"]);
        expect(await wireTripped(s)).toBe(true);
        const r = await reserve(s);
        expect(r.reason).toBe(DenyReason.TRIPWIRE_THROTTLED);
        expect(r.policyRevision).toBe(head);
      }
      expect((await wireOn(central)).wire.status).toBe(TripwireStatus.TRIPPED);
    });

    it("re-arms the wire on every sidecar when central re-arms it, lifting the throttle", async () => {
      const { central, tripper, bystander } = await startFleet(
        await store(),
        TripwireAction.THROTTLE,
      );
      expect((await tripOn(central, tripper)).trippedNow).toBe(true);
      await heal(tripper);
      await tripRecorded(central, tripper, bystander, 20);
      for (const s of [tripper, bystander]) {
        expect((await reserve(s)).reason).toBe(DenyReason.TRIPWIRE_THROTTLED);
      }

      const reset = await central.grpc.call(
        RegressionService,
        "resetTripwire",
        { ...WIRE, ...op("re-arm") },
        auth,
      );
      // Central's fleet wire restarts: it counts only outcomes after the re-arm.
      expect(reset.state?.status).toBe(TripwireStatus.INSUFFICIENT_DATA);
      expect(reset.state?.eventsSeen).toBe(0n);
      await everyApplied(central, 2);
      // The tripper re-arms too, though its report may still be in its store (central recorded
      // it at an older revision than the re-arm's, and no revision came between).
      for (const [s, status] of [
        [tripper, TripwireStatus.OK],
        [bystander, TripwireStatus.INSUFFICIENT_DATA],
      ] as const) {
        const armed = await wireOn(s);
        expect(armed.wire.status, nameOf(s)).toBe(status);
        expect(armed.throttled, nameOf(s)).toEqual([]);
        expect(await wireTripped(s), nameOf(s)).toBe(false);
        const r = await reserve(s);
        expect(r.reason, nameOf(s)).toBe(DenyReason.UNSPECIFIED);
        expect(r.allowed).toBe(true);
      }
      const atCentral = await wireOn(central);
      expect(atCentral.wire.status).toBe(TripwireStatus.INSUFFICIENT_DATA);
      expect(atCentral.throttled).toEqual([]);
      expect(await wireTripped(central)).toBe(false);
    });

    it("keeps a KILL_SWITCH wire tripped on every sidecar when central releases only the kill switch, until central re-arms it", async () => {
      const { central, tripper, bystander } = await startFleet(
        await store(),
        TripwireAction.KILL_SWITCH,
      );
      expect((await tripOn(central, tripper)).trippedNow).toBe(true);
      // At once on the sidecar where it tripped.
      expect((await prodExec(tripper)).reason).toBe(DenyReason.KILL_SWITCH_ENGAGED);
      await tripRecorded(central, tripper, bystander, 10);
      const golive = await central.grpc.call(GoLiveService, "getState", {});
      expect(golive.state?.killSwitchEngaged).toBe(true);
      expect(golive.state?.reason).toMatch(
        /^tripwire WHOLESALE\/contract_rate \(KILL_SWITCH\) tripped on sidecar tripper: /,
      );
      for (const s of [tripper, bystander]) {
        await eventually(
          `${nameOf(s)} to stop on the kill switch`,
          async () => (await prodExec(s)).reason === DenyReason.KILL_SWITCH_ENGAGED,
        );
      }

      await central.grpc.call(GoLiveService, "releaseKillSwitch", op("resume"), auth);
      await everyApplied(central, 2);
      // A tripped wire does not trip again: more failures leave the kill switch released.
      expect((await prodExec(tripper)).allowed).toBe(true);
      const more = await record(tripper, [false, false]);
      expect(more.trippedNow).toBe(false);
      await heal(tripper);
      await eventually(
        "central's fleet stream to hold the 22 outcomes",
        async () => (await wireOn(central)).wire.eventsSeen >= 22n,
      );
      await everyApplied(central, 2);
      for (const s of [tripper, bystander]) {
        const decision = await prodExec(s);
        expect(decision.allowed, nameOf(s)).toBe(true);
        // Released, not re-armed: the wire stays tripped.
        expect((await wireOn(s)).wire.status, nameOf(s)).toBe(TripwireStatus.TRIPPED);
        expect(await wireTripped(s), nameOf(s)).toBe(true);
      }
      expect((await wireOn(central)).wire.status).toBe(TripwireStatus.TRIPPED);
      expect(await wireTripped(central)).toBe(true);

      await central.grpc.call(
        RegressionService,
        "resetTripwire",
        { ...WIRE, ...op("re-arm") },
        auth,
      );
      await everyApplied(central, 2);
      for (const [s, status] of [
        [tripper, TripwireStatus.OK],
        [bystander, TripwireStatus.INSUFFICIENT_DATA],
      ] as const) {
        expect((await wireOn(s)).wire.status, nameOf(s)).toBe(status);
        expect(await wireTripped(s), nameOf(s)).toBe(false);
        expect((await prodExec(s)).allowed, nameOf(s)).toBe(true);
      }
      expect((await wireOn(central)).wire.status).toBe(TripwireStatus.INSUFFICIENT_DATA);
      expect(await wireTripped(central)).toBe(false);
    });
  },
);
