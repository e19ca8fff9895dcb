/**
 * Fleet tripwires with real processes on loopback: `govd central` (SQLite, PostgreSQL) and two
 * `govd serve --central` sidecars. Each records too few KPI outcomes for its own wire to reach
 * min_events_to_enforce; together they cross it on central's fleet stream, whose trip reaches
 * both sidecars through Watch: THROTTLE denies Reserve for the target engine on both, a
 * KILL_SWITCH wire stops the whole fleet; central's GetState shows the trip with its reason.
 */
import { afterEach, describe, expect, it } from "vitest";
import { DenyReason, ExecutionClass } from "../gen/governance/v1/common_pb.js";
import { GoLiveService } from "../gen/governance/v1/golive_pb.js";
import {
  RegressionService,
  TripwireAction,
  TripwireStatus,
} from "../gen/governance/v1/regression_pb.js";
import { RiskService } from "../gen/governance/v1/risk_pb.js";
import { centralStores, postgresReachable } from "./support/central.js";
import { eventually } from "./support/eventually.js";
import {
  FLEET_TOKEN,
  type FleetProcess,
  startCentral,
  startFollower,
  stopAll,
} from "./support/fleet-processes.js";
import { govctl } from "./support/govctl.js";

const auth = { token: FLEET_TOKEN };
const pgUp = await postgresReachable();
const drops: (() => Promise<void>)[] = [];
afterEach(async () => {
  await stopAll();
  for (const d of drops.splice(0)) await d();
});

const op = (reason: string) => ({
  actor: "ops",
  reason,
  correlationId: `${reason}-${Math.random()}`,
});

async function record(sidecar: FleetProcess, outcomes: boolean[]) {
  for (const success of outcomes) {
    await sidecar.grpc.call(RegressionService, "recordKpi", {
      domain: "WHOLESALE",
      metric: "contract_rate",
      success,
      value: success ? 1 : 0,
    });
  }
}

async function fleetWire(central: FleetProcess) {
  const state = await central.grpc.call(RegressionService, "getState", { domain: "WHOLESALE" });
  return state.states.find((s) => s.metric === "contract_rate");
}

const reserve = (s: FleetProcess, i: number) =>
  s.grpc.call(RiskService, "reserve", {
    engine: "WHOLESALE",
    amount: "1.00",
    actor: "engine",
    reason: "work",
    correlationId: `r-${i}-${Math.random()}`,
  });

const cases = centralStores(pgUp, drops).flatMap((store) =>
  [TripwireAction.THROTTLE, TripwireAction.KILL_SWITCH].map((action) => ({
    ...store,
    action,
    actionName: TripwireAction[action],
  })),
);

describe.each(cases)(
  "a fleet tripwire ($actionName, central on $name)",
  ({ up, store, action }) => {
    if (!up) return void it.skip("PostgreSQL at 127.0.0.1:5432 is unreachable", () => undefined);
    it("trips on the fleet stream when the sidecars' outcomes together cross min events, and acts on every sidecar", async () => {
      const central = await startCentral({ store: await store(), heartbeatMs: 200 });
      await central.grpc.call(
        RegressionService,
        "upsertPolicy",
        {
          domain: "WHOLESALE",
          metric: "contract_rate",
          windowEvents: 5,
          baselineEvents: 5,
          minEventsToEnforce: 16,
          maxDropFraction: 0.2,
          action,
          throttleTargets: ["WHOLESALE"],
          enabled: true,
          ...op("arm"),
        },
        auth,
      );
      await central.grpc.call(GoLiveService, "enable", op("open"), auth);
      const sidecars = await Promise.all(
        ["left", "right"].map((id) =>
          startFollower({ central: central.grpcAddress, sidecarId: id, engines: ["WHOLESALE"] }),
        ),
      );
      const [left, right] = sidecars as [FleetProcess, FleetProcess];
      for (const [i, s] of sidecars.entries()) {
        await eventually(
          `${s.grpcAddress} to allow Reserve`,
          async () => (await reserve(s, i)).allowed,
        );
      }
      // 5 successes each, shipped, then 4 failures each: 9 outcomes per sidecar (its own wire
      // needs 16), 18 on the fleet stream.
      await Promise.all([record(left, Array(5).fill(true)), record(right, Array(5).fill(true))]);
      await eventually(
        "central to hold 10 outcomes",
        async () => (await fleetWire(central))?.eventsSeen === 10n,
      );
      expect((await fleetWire(central))?.status).toBe(TripwireStatus.INSUFFICIENT_DATA);
      await Promise.all([record(left, Array(4).fill(false)), record(right, Array(4).fill(false))]);

      const tripped = await eventually("the fleet wire to trip on central", async () => {
        const w = await fleetWire(central);
        return w?.status === TripwireStatus.TRIPPED ? w : undefined;
      });
      expect(tripped.lastTripReason).toMatch(
        /^fleet stream WHOLESALE\/contract_rate: success rate 0\.0000 over the last 5 events against 0\.8000 over the 5 before/,
      );
      expect(tripped.eventsSeen).toBeGreaterThanOrEqual(16n);
      const view = await central.grpc.call(RegressionService, "getState", { domain: "WHOLESALE" });
      expect(view.behind.map((b) => b.sidecarId).sort()).toEqual(["left", "right"]);
      const printed = await govctl([
        "--addr",
        central.grpcAddress,
        "regression",
        "state",
        "--domain",
        "WHOLESALE",
      ]);
      expect(printed.stdout).toMatch(
        /fleet streams lag each sidecar by its outbox:\n {2}left: shipped to seq \d+/,
      );

      for (const [i, s] of sidecars.entries()) {
        // Neither sidecar's own wire could trip: the trip is central's, applied from Watch.
        const own = (
          await s.grpc.call(RegressionService, "getState", { domain: "WHOLESALE" })
        ).states.find((w) => w.metric === "contract_rate");
        await eventually(`${s.grpcAddress} to hold the fleet trip`, async () => {
          const w = (
            await s.grpc.call(RegressionService, "getState", { domain: "WHOLESALE" })
          ).states.find((x) => x.metric === "contract_rate");
          return (
            w?.status === TripwireStatus.TRIPPED && w.lastTripReason.startsWith("fleet stream")
          );
        });
        expect(own?.eventsSeen).toBe(9n);
        if (action === TripwireAction.THROTTLE) {
          const denied = await eventually(`${s.grpcAddress} to deny Reserve`, async () => {
            const r = await reserve(s, 100 + i);
            return r.allowed ? undefined : r;
          });
          expect(denied.reason).toBe(DenyReason.TRIPWIRE_THROTTLED);
        } else {
          await eventually(`${s.grpcAddress} to stop on the kill switch`, async () => {
            const r = await s.grpc.call(GoLiveService, "checkGoLive", {
              executionClass: ExecutionClass.PROD_EXEC,
            });
            return r.reason === DenyReason.KILL_SWITCH_ENGAGED;
          });
        }
      }
      if (action === TripwireAction.KILL_SWITCH) {
        const golive = await central.grpc.call(GoLiveService, "getState", {});
        expect(golive.state?.reason).toMatch(/tripped on the fleet stream: fleet stream WHOLESALE/);
      }
    });
  },
);
