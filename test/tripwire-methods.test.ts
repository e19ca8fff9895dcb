import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { DenyReason } from "../gen/governance/v1/common_pb.js";
import {
  RegressionService,
  TripwireAction,
  TripwireMethod,
  TripwireStatus,
} from "../gen/governance/v1/regression_pb.js";
import { RiskService } from "../gen/governance/v1/risk_pb.js";
import type { Caller } from "./support/callers.js";
import { enableGoLive, type RunningSidecar, startSidecar, TOKEN } from "./support/sidecar.js";

let s: RunningSidecar;
beforeEach(async () => {
  s = await startSidecar();
});
afterEach(async () => {
  await s.stop();
});

let n = 0;
const cid = () => `m-${++n}`;

function arm(c: Caller, extra: object) {
  return c.call(
    RegressionService,
    "upsertPolicy",
    {
      domain: "WHOLESALE",
      metric: "contract_rate",
      windowEvents: 10,
      baselineEvents: 40,
      maxDropFraction: 0.2,
      action: TripwireAction.THROTTLE,
      method: TripwireMethod.SEQUENTIAL,
      expectedEventsBetweenFalseAlarms: 1000,
      enabled: true,
      actor: "alice",
      reason: "arm",
      correlationId: cid(),
      ...extra,
    },
    { token: TOKEN },
  );
}

async function feed(c: Caller, outcomes: boolean[]) {
  let last: Awaited<ReturnType<typeof record>> | undefined;
  for (const success of outcomes) last = await record(c, success);
  return last;
}

function record(c: Caller, success: boolean) {
  return c.call(RegressionService, "recordKpi", {
    domain: "WHOLESALE",
    metric: "contract_rate",
    success,
    value: success ? 1 : 0,
    correlationId: cid(),
  });
}

/** 9 successes in 10, in a fixed order. */
const inControl = (k: number) => Array.from({ length: k }, (_, i) => i % 10 !== 3);

describe.each(["grpc", "connect-json"])("SEQUENTIAL tripwires over %s", (port) => {
  const caller = () => (port === "grpc" ? s.grpc : s.connect);

  it("with an operator's baseline, shows its figures and trips on a run of failures", async () => {
    await enableGoLive(caller());
    await arm(caller(), { baselineRate: 0.9 });
    const calm = await feed(caller(), inControl(30));
    expect(calm?.state).toMatchObject({
      status: TripwireStatus.OK,
      method: TripwireMethod.SEQUENTIAL,
      baselineFrozen: true,
      baselineRate: 0.9,
      detectRate: expect.closeTo(0.72, 12),
      currentRate: 0.9,
    });
    expect(calm?.state?.threshold).toBeGreaterThan(0);
    expect(calm?.state?.expectedEventsBetweenFalseAlarms).toBeGreaterThanOrEqual(1000);
    let tripped = false;
    let failures = 0;
    while (!tripped && failures < 50) {
      const res = await record(caller(), false);
      tripped = res.trippedNow;
      failures++;
      if (!tripped) expect(res.state?.statistic).toBeLessThan(res.state?.threshold ?? 0);
    }
    expect(tripped).toBe(true);
    const state = await caller().call(RegressionService, "getState", { domain: "WHOLESALE" });
    const wire = state.states.find((x) => x.metric === "contract_rate");
    expect(wire?.status).toBe(TripwireStatus.TRIPPED);
    expect(wire?.statistic).toBeGreaterThanOrEqual(wire?.threshold ?? Infinity);
    expect(wire?.lastTripReason).toMatch(
      /CUSUM .* reached its threshold .* frozen baseline 0\.9000/,
    );
    const res = await caller().call(RiskService, "reserve", {
      engine: "WHOLESALE",
      amount: "1",
      correlationId: cid(),
    });
    expect(res.reason).toBe(DenyReason.TRIPWIRE_THROTTLED);
  });

  it("is INSUFFICIENT_DATA until it can freeze a measured baseline, which a drift cannot move", async () => {
    await arm(caller(), {});
    const early = await feed(caller(), inControl(39));
    expect(early?.state).toMatchObject({
      status: TripwireStatus.INSUFFICIENT_DATA,
      baselineFrozen: false,
    });
    const frozen = await record(caller(), true);
    expect(frozen.state).toMatchObject({ status: TripwireStatus.OK, baselineFrozen: true });
    const baseline = frozen.state?.baselineRate ?? 0;
    // Guarded: below the measured 37/40 = 0.925.
    expect(baseline).toBeGreaterThan(0.6);
    expect(baseline).toBeLessThan(0.925);
    // A slow slide: the frozen baseline stays where it was armed.
    const later = await feed(
      caller(),
      Array.from({ length: 30 }, (_, i) => i % 6 !== 0),
    );
    expect(later?.state?.baselineRate).toBe(baseline);
  });

  it("in dry run records what it would do, acts on nothing, and is re-armed by a reset", async () => {
    await enableGoLive(caller());
    await arm(caller(), { baselineRate: 0.9, dryRun: true });
    await feed(
      caller(),
      Array.from({ length: 40 }, () => false),
    );
    const state = await caller().call(RegressionService, "getState", {});
    const wire = state.states.find((x) => x.metric === "contract_rate");
    expect(wire).toMatchObject({ status: TripwireStatus.DRY_RUN_TRIPPED, dryRun: true });
    expect(wire?.lastTripReason).toMatch(/^dry run, nothing done: /);
    expect(state.throttled).toEqual([]);
    const res = await caller().call(RiskService, "reserve", {
      engine: "WHOLESALE",
      amount: "1",
      correlationId: cid(),
    });
    expect(res.allowed).toBe(true);
    const { events } = await caller().call(RegressionService, "listTripwireEvents", {
      domain: "WHOLESALE",
    });
    expect(events.map((e) => e.action)).toEqual(["POLICY_UPSERT", "DRY_RUN_TRIP"]);
    expect(events[1]).toMatchObject({ domain: "WHOLESALE", metric: "contract_rate" });
    const reset = await caller().call(
      RegressionService,
      "resetTripwire",
      {
        domain: "WHOLESALE",
        metric: "contract_rate",
        actor: "alice",
        reason: "reviewed",
        correlationId: cid(),
      },
      { token: TOKEN },
    );
    expect(reset.state).toMatchObject({ status: TripwireStatus.OK, statistic: 0 });
  });

  it("keeps RELATIVE_DROP as the default method of the seed rows", async () => {
    const { policies } = await caller().call(RegressionService, "listPolicies", {});
    expect(policies.every((p) => p.method === TripwireMethod.RELATIVE_DROP)).toBe(true);
  });
});
