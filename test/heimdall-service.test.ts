import { Code } from "@connectrpc/connect";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { DenyReason } from "../gen/governance/v1/common_pb.js";
import { HeimdallService, SuccessRateBound } from "../gen/governance/v1/heimdall_pb.js";
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
const cid = () => `h-${++n}`;

async function policy(c: Caller, prodUseEnabled: boolean) {
  return c.call(
    HeimdallService,
    "upsertPolicy",
    {
      domain: "BUYER_MATCH",
      minConfidenceProd: 0.9,
      minSandboxTrials: 5,
      minSandboxSuccessRate: 0.8,
      prodUseEnabled,
      actor: "alice",
      reason: "promotion",
      correlationId: cid(),
    },
    { token: TOKEN },
  );
}

async function trials(c: Caller, outcomes: boolean[]) {
  for (const success of outcomes) {
    await c.call(HeimdallService, "recordSandboxTrial", {
      domain: "BUYER_MATCH",
      success,
      confidence: 0.9,
      correlationId: cid(),
    });
  }
}

async function recommend(c: Caller, confidence: number) {
  return c.call(HeimdallService, "recommend", {
    domain: "BUYER_MATCH",
    confidence,
    recommendationJson: '{"buyer":"b-17"}',
    evidenceJson: '{"model":"m3"}',
    correlationId: cid(),
  });
}

describe.each(["grpc", "connect-json"])("HeimdallService over %s", (port) => {
  const caller = () => (port === "grpc" ? s.grpc : s.connect);

  it("keeps the seed domains prod-disabled", async () => {
    const { policies } = await caller().call(HeimdallService, "listPolicies", {});
    expect(policies.map((p) => p.domain)).toEqual([
      "BUYER_MATCH",
      "CAPITAL_ROUTE",
      "FOLLOWUP_ACTION",
      "WHOLESALE_OFFER",
    ]);
    expect(policies.every((p) => !p.prodUseEnabled)).toBe(true);
  });

  it("scores trials and gates a recommendation with observed value, threshold and verdict", async () => {
    await policy(caller(), true);
    await trials(caller(), [true, true, false, true, true]);
    const card = await caller().call(HeimdallService, "getScorecardToday", {
      domain: "BUYER_MATCH",
    });
    expect(card.scorecards[0]).toMatchObject({ trials: 5, successes: 4, successRate: 0.8 });
    expect(card.scorecards[0]?.avgConfidence).toBeCloseTo(0.9, 10);
    const weak = await recommend(caller(), 0.85);
    expect(weak.prodEligible).toBe(false);
    expect(weak.gates.map((g) => [g.name, g.observed, g.threshold, g.passed])).toEqual([
      ["confidence", 0.85, 0.9, false],
      ["sandbox_trials", 5, 5, true],
      ["sandbox_success_rate", 0.8, 0.8, true],
      ["prod_use_enabled", 1, 1, true],
    ]);
    const strong = await recommend(caller(), 0.95);
    expect(strong.prodEligible).toBe(true);
  });

  it("re-checks gates and go-live at RequireProdEligible; a policy disabled since wins", async () => {
    await policy(caller(), true);
    await trials(caller(), [true, true, true, true, true]);
    const rec = await recommend(caller(), 0.95);
    const require = () =>
      caller().call(HeimdallService, "requireProdEligible", {
        recommendationId: rec.recommendationId,
        correlationId: cid(),
      });
    expect((await require()).reason).toBe(DenyReason.GO_LIVE_DISABLED);
    await enableGoLive(caller());
    const ok = await require();
    expect(ok).toMatchObject({ allowed: true, domain: "BUYER_MATCH" });
    await policy(caller(), false);
    const denied = await require();
    expect(denied).toMatchObject({ allowed: false, reason: DenyReason.PROD_USE_DISABLED });
    expect(denied.gates.find((g) => g.name === "prod_use_enabled")?.passed).toBe(false);
  });

  it("denies a recommendation whose evidence has gone stale", async () => {
    await policy(caller(), true);
    await trials(caller(), [true, true, true, true, true]);
    const rec = await recommend(caller(), 0.95);
    await enableGoLive(caller());
    s.clock.advance(31 * 86_400_000);
    const res = await caller().call(HeimdallService, "requireProdEligible", {
      recommendationId: rec.recommendationId,
      correlationId: cid(),
    });
    expect(res).toMatchObject({ allowed: false, reason: DenyReason.GATE_FAILED });
    expect(res.message).toMatch(/sandbox_trials/);
  });

  it("gates on the Wilson lower bound when the policy asks, showing the raw rate beside it", async () => {
    await caller().call(
      HeimdallService,
      "upsertPolicy",
      {
        domain: "BUYER_MATCH",
        minConfidenceProd: 0.5,
        minSandboxTrials: 20,
        minSandboxSuccessRate: 0.8,
        prodUseEnabled: true,
        successRateBound: SuccessRateBound.WILSON_LOWER,
        boundConfidence: 0.95,
        actor: "alice",
        reason: "evidence, not luck",
        correlationId: cid(),
      },
      { token: TOKEN },
    );
    await trials(caller(), [...Array.from({ length: 19 }, () => true), false]);
    const rec = await recommend(caller(), 0.9);
    const gate = rec.gates.find((g) => g.name === "sandbox_success_rate");
    expect(gate?.observed).toBeCloseTo(0.7639, 4);
    expect(gate?.rawObserved).toBeCloseTo(0.95, 12);
    expect(gate?.passed).toBe(false);
    expect(gate?.detail).toMatch(/0\.9500 raw, 0\.7639 at the 0\.95 Wilson lower bound/);
    expect(rec.prodEligible).toBe(false);
    await trials(
      caller(),
      Array.from({ length: 30 }, (_, i) => i !== 7),
    );
    // 48 of 50: 0.8654 at the bound.
    const more = await recommend(caller(), 0.9);
    expect(more.gates.find((g) => g.name === "sandbox_success_rate")?.observed).toBeCloseTo(
      0.8654,
      4,
    );
    expect(more.prodEligible).toBe(true);
    const { policies } = await caller().call(HeimdallService, "listPolicies", {});
    expect(policies.find((p) => p.domain === "BUYER_MATCH")).toMatchObject({
      successRateBound: SuccessRateBound.WILSON_LOWER,
      boundConfidence: 0.95,
    });
  });

  it("refuses bad input and unknown ids clearly", async () => {
    await rejects(
      caller().call(HeimdallService, "recommend", {
        domain: "BUYER_MATCH",
        confidence: 1.5,
        recommendationJson: "{}",
        correlationId: cid(),
      }),
      Code.InvalidArgument,
      /confidence/,
    );
    await rejects(
      caller().call(HeimdallService, "recommend", {
        domain: "BUYER_MATCH",
        confidence: 0.5,
        recommendationJson: "{oops",
        correlationId: cid(),
      }),
      Code.InvalidArgument,
      /recommendation_json: must be valid JSON/,
    );
    await rejects(
      caller().call(HeimdallService, "recordSandboxTrial", {
        domain: "NO_SUCH_DOMAIN",
        success: true,
        confidence: 0.5,
        correlationId: cid(),
      }),
      Code.NotFound,
      /NO_SUCH_DOMAIN/,
    );
    await rejects(
      caller().call(HeimdallService, "requireProdEligible", {
        recommendationId: "nope",
        correlationId: cid(),
      }),
      Code.NotFound,
      /recommendation nope not found/,
    );
  });
});
