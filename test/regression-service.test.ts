import { Code } from "@connectrpc/connect";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { DenyReason, ExecutionClass } from "../gen/governance/v1/common_pb.js";
import { GoLiveService } from "../gen/governance/v1/golive_pb.js";
import { HeimdallService } from "../gen/governance/v1/heimdall_pb.js";
import {
  RegressionService,
  TripwireAction,
  TripwireStatus,
} from "../gen/governance/v1/regression_pb.js";
import { RiskService } from "../gen/governance/v1/risk_pb.js";
import type { Caller } from "./support/callers.js";
import { rejects } from "./support/expect-error.js";
import { enableGoLive, type RunningSidecar, startSidecar, TOKEN } from "./support/sidecar.js";

let s: RunningSidecar;
beforeEach(async () => {
  s = await startSidecar();
});
afterEach(async () => {
  await s.stop();
});

let n = 0;
const cid = () => `r-${++n}`;

async function wire(
  c: Caller,
  domain: string,
  metric: string,
  action: TripwireAction,
  targets: string[] = [],
) {
  return c.call(
    RegressionService,
    "upsertPolicy",
    {
      domain,
      metric,
      windowEvents: 5,
      baselineEvents: 10,
      maxDropFraction: 0.2,
      action,
      throttleTargets: targets,
      enabled: true,
      actor: "alice",
      reason: "arm",
      correlationId: cid(),
    },
    { token: TOKEN },
  );
}

async function kpis(c: Caller, domain: string, metric: string, outcomes: boolean[]) {
  let last: Awaited<ReturnType<typeof record>> | undefined;
  for (const success of outcomes) last = await record(c, domain, metric, success);
  return last;
}

function record(c: Caller, domain: string, metric: string, success: boolean) {
  return c.call(RegressionService, "recordKpi", {
    domain,
    metric,
    success,
    value: success ? 1 : 0,
    correlationId: cid(),
  });
}

const good = (k: number) => Array.from({ length: k }, () => true);

describe.each(["grpc", "connect-json"])("RegressionService over %s", (port) => {
  const caller = () => (port === "grpc" ? s.grpc : s.connect);

  it("shows insufficient data, then OK, then trips and throttles engines and domains", async () => {
    await enableGoLive(caller());
    await wire(caller(), "WHOLESALE", "contract_rate", TripwireAction.THROTTLE, [
      "WHOLESALE",
      "WHOLESALE_OFFER",
    ]);
    const early = await kpis(caller(), "WHOLESALE", "contract_rate", good(14));
    expect(early?.state?.status).toBe(TripwireStatus.INSUFFICIENT_DATA);
    const ok = await record(caller(), "WHOLESALE", "contract_rate", true);
    expect(ok.state).toMatchObject({ status: TripwireStatus.OK, eventsSeen: 15n, drop: 0 });
    const first = await record(caller(), "WHOLESALE", "contract_rate", false);
    expect(first.trippedNow).toBe(false);
    expect(first.state?.drop).toBeCloseTo(0.2, 10);
    const second = await record(caller(), "WHOLESALE", "contract_rate", false);
    expect(second.trippedNow).toBe(true);
    expect(second.state).toMatchObject({
      status: TripwireStatus.TRIPPED,
      currentRate: 0.6,
      baselineRate: 1,
    });
    expect(second.state?.lastTripReason).toMatch(/drop 0.4000 > 0.2/);

    const res = await caller().call(RiskService, "reserve", {
      engine: "WHOLESALE",
      amount: "1",
      correlationId: cid(),
    });
    expect(res.reason).toBe(DenyReason.TRIPWIRE_THROTTLED);
    expect(
      (
        await caller().call(RiskService, "reserve", {
          engine: "CAPITAL",
          amount: "1",
          correlationId: cid(),
        })
      ).allowed,
    ).toBe(true);
    const state = await caller().call(RegressionService, "getState", { domain: "WHOLESALE" });
    expect(state.throttled).toEqual(["WHOLESALE", "WHOLESALE_OFFER"]);
    const checklist = await caller().call(GoLiveService, "getChecklist", {});
    expect(checklist.checks.find((c) => c.name === "no_tripwire_triggered")?.ok).toBe(false);

    // Stays tripped while good events arrive, until an operator re-arms it.
    await kpis(caller(), "WHOLESALE", "contract_rate", good(20));
    expect(
      (
        await caller().call(RiskService, "reserve", {
          engine: "WHOLESALE",
          amount: "1",
          correlationId: cid(),
        })
      ).allowed,
    ).toBe(false);
    await rejects(
      caller().call(RegressionService, "resetTripwire", {
        domain: "WHOLESALE",
        metric: "contract_rate",
        actor: "a",
        reason: "x",
        correlationId: cid(),
      }),
      Code.Unauthenticated,
      /operator/,
    );
    const reset = await caller().call(
      RegressionService,
      "resetTripwire",
      {
        domain: "WHOLESALE",
        metric: "contract_rate",
        actor: "alice",
        reason: "fixed the feed",
        correlationId: cid(),
      },
      { token: TOKEN },
    );
    expect(reset.state?.status).toBe(TripwireStatus.OK);
    expect(
      (
        await caller().call(RiskService, "reserve", {
          engine: "WHOLESALE",
          amount: "1",
          correlationId: cid(),
        })
      ).allowed,
    ).toBe(true);
  });

  it("throttles Heimdall domains at RequireProdEligible", async () => {
    await enableGoLive(caller());
    await caller().call(
      HeimdallService,
      "upsertPolicy",
      {
        domain: "BUYER_MATCH",
        minConfidenceProd: 0.5,
        minSandboxTrials: 0,
        minSandboxSuccessRate: 0,
        prodUseEnabled: true,
        actor: "a",
        reason: "r",
        correlationId: cid(),
      },
      { token: TOKEN },
    );
    await caller().call(HeimdallService, "recordSandboxTrial", {
      domain: "BUYER_MATCH",
      success: true,
      confidence: 1,
      correlationId: cid(),
    });
    const rec = await caller().call(HeimdallService, "recommend", {
      domain: "BUYER_MATCH",
      confidence: 0.9,
      recommendationJson: "{}",
      correlationId: cid(),
    });
    await wire(caller(), "BUYER_MATCH", "match_success", TripwireAction.THROTTLE);
    await kpis(caller(), "BUYER_MATCH", "match_success", [...good(15), false, false]);
    const res = await caller().call(HeimdallService, "requireProdEligible", {
      recommendationId: rec.recommendationId,
      correlationId: cid(),
    });
    expect(res).toMatchObject({ allowed: false, reason: DenyReason.TRIPWIRE_THROTTLED });
  });

  it("engages the kill switch on its own, and re-arming does not release it", async () => {
    await enableGoLive(caller());
    await wire(caller(), "CAPITAL", "roi_event", TripwireAction.KILL_SWITCH);
    await kpis(caller(), "CAPITAL", "roi_event", [...good(15), false, false]);
    const { state } = await caller().call(GoLiveService, "getState", {});
    expect(state).toMatchObject({
      killSwitchEngaged: true,
      changedBy: "tripwire:CAPITAL/roi_event",
    });
    const check = await caller().call(GoLiveService, "checkGoLive", {
      executionClass: ExecutionClass.PROD_EXEC,
    });
    expect(check.reason).toBe(DenyReason.KILL_SWITCH_ENGAGED);
    // Telemetry still flows while the switch is engaged.
    await record(caller(), "CAPITAL", "roi_event", true);
    await caller().call(
      RegressionService,
      "resetTripwire",
      {
        domain: "CAPITAL",
        metric: "roi_event",
        actor: "alice",
        reason: "rolled back",
        correlationId: cid(),
      },
      { token: TOKEN },
    );
    expect((await caller().call(GoLiveService, "getState", {})).state?.killSwitchEngaged).toBe(
      true,
    );
  });

  it("evaluates on demand and leaves disabled seed wires alone", async () => {
    await kpis(caller(), "WHOLESALE", "contract_rate", [
      ...good(200),
      ...Array.from({ length: 50 }, () => false),
    ]);
    const evaluated = await caller().call(RegressionService, "evaluate", {});
    expect(evaluated.trippedNow).toEqual([]);
    expect(evaluated.states.find((x) => x.metric === "contract_rate")).toMatchObject({
      status: TripwireStatus.DISABLED,
      drop: 1,
      eventsSeen: 250n,
    });
    await caller().call(
      RegressionService,
      "upsertPolicy",
      {
        domain: "WHOLESALE",
        metric: "contract_rate",
        windowEvents: 50,
        baselineEvents: 200,
        maxDropFraction: 0.2,
        action: TripwireAction.THROTTLE,
        enabled: true,
        actor: "a",
        reason: "arm",
        correlationId: cid(),
      },
      { token: TOKEN },
    );
    const now = await caller().call(RegressionService, "evaluate", { domain: "WHOLESALE" });
    expect(now.trippedNow.map((x) => x.metric)).toEqual(["contract_rate"]);
  });
});
