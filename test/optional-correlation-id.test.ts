/**
 * correlation_id is required only where a duplicate would move money (Reserve, Settle,
 * Release). Operator calls and telemetry without one are served: the sidecar assigns an id,
 * returns it, records it in the audit trail, and does not deduplicate the call.
 */
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GoLiveService } from "../gen/governance/v1/golive_pb.js";
import { HeimdallService } from "../gen/governance/v1/heimdall_pb.js";
import { RegressionService, TripwireAction } from "../gen/governance/v1/regression_pb.js";
import { RiskService } from "../gen/governance/v1/risk_pb.js";
import type { Caller } from "./support/callers.js";
import { rejects } from "./support/expect-error.js";
import { type RunningSidecar, startSidecar, TOKEN } from "./support/sidecar.js";

const ASSIGNED = /^auto-[0-9a-f-]{36}$/;
const operator = { actor: "ana", reason: "runaway losses" };

let s: RunningSidecar;
beforeAll(async () => {
  s = await startSidecar();
});
afterAll(async () => {
  await s?.stop();
});

/** The audit events recorded under a correlation_id. */
const audited = (id: string) =>
  s.db
    .prepare<[string], { action: string; actor: string }>(
      "SELECT action, actor FROM audit_event WHERE correlation_id = ? ORDER BY seq",
    )
    .all(id);

describe.each(["grpc", "connect-json"])(
  "operator calls over %s with actor and reason only",
  (port) => {
    const caller = (): Caller => (port === "grpc" ? s.grpc : s.connect);
    const admin = { token: TOKEN };

    it("engages and releases the kill switch, disables and enables go-live", async () => {
      const engaged = await caller().call(GoLiveService, "engageKillSwitch", operator, admin);
      expect(engaged.state?.killSwitchEngaged).toBe(true);
      expect(engaged.correlationId).toMatch(ASSIGNED);
      expect(audited(engaged.correlationId)).toEqual([
        { action: "KILL_SWITCH_ENGAGE", actor: "ana" },
      ]);
      // Not deduplicated: the same body again is a second call with an id of its own.
      const again = await caller().call(GoLiveService, "engageKillSwitch", operator, admin);
      expect(again.correlationId).toMatch(ASSIGNED);
      expect(again.correlationId).not.toBe(engaged.correlationId);
      expect(again.state?.revision).toBeGreaterThan(engaged.state?.revision ?? 0n);

      const released = await caller().call(GoLiveService, "releaseKillSwitch", operator, admin);
      expect(released.state?.killSwitchEngaged).toBe(false);
      expect(released.correlationId).toMatch(ASSIGNED);
      const disabled = await caller().call(GoLiveService, "disable", { actor: "ana" }, admin);
      expect(disabled.correlationId).toMatch(ASSIGNED);
      const enabled = await caller().call(GoLiveService, "enable", operator, admin);
      expect(enabled.state?.goLiveEnabled).toBe(true);
      expect(audited(enabled.correlationId)).toHaveLength(1);
    });

    it("upserts a policy of each lever and re-arms a tripwire", async () => {
      const risk = await caller().call(
        RiskService,
        "upsertPolicy",
        {
          engine: "WHOLESALE",
          maxDailyLoss: "200.00",
          maxDailyExposure: "1200.00",
          maxOpenRisk: "500.00",
          maxActionsPerDay: 5000,
          enabled: true,
          ...operator,
        },
        admin,
      );
      expect(risk.policy?.maxDailyExposure).toBe("1200.00");
      expect(risk.correlationId).toMatch(ASSIGNED);
      expect(audited(risk.correlationId)).toHaveLength(1);
      const heimdall = await caller().call(
        HeimdallService,
        "upsertPolicy",
        {
          domain: "BUYER_MATCH",
          minConfidenceProd: 0.9,
          minSandboxTrials: 50,
          minSandboxSuccessRate: 0.8,
          ...operator,
        },
        admin,
      );
      expect(heimdall.correlationId).toMatch(ASSIGNED);
      expect(audited(heimdall.correlationId)).toHaveLength(1);
      const metric = `drill_${port.replace("-", "_")}`;
      const regression = await caller().call(
        RegressionService,
        "upsertPolicy",
        {
          domain: "NOTIFY",
          metric,
          windowEvents: 5,
          baselineEvents: 10,
          maxDropFraction: 0.2,
          action: TripwireAction.THROTTLE,
          enabled: true,
          ...operator,
        },
        admin,
      );
      expect(regression.correlationId).toMatch(ASSIGNED);
      let last: { trippedNow: boolean; correlationId: string } | undefined;
      for (let i = 0; i < 15; i++) {
        last = await caller().call(RegressionService, "recordKpi", {
          domain: "NOTIFY",
          metric,
          success: i < 10,
          value: i < 10 ? 1 : 0,
        });
        if (last.trippedNow) break;
      }
      expect(last?.trippedNow).toBe(true);
      // The outcome and the trip are recorded under the id the sidecar gave the KPI call.
      expect(audited(last?.correlationId ?? "").map((e) => e.action)).toEqual(["KPI", "TRIP"]);
      const reset = await caller().call(
        RegressionService,
        "resetTripwire",
        { domain: "NOTIFY", metric, ...operator },
        admin,
      );
      expect(reset.correlationId).toMatch(ASSIGNED);
      expect(audited(reset.correlationId)).toHaveLength(1);
    });

    it("records telemetry without an id, each call counted", async () => {
      const before = await caller().call(HeimdallService, "getScorecardToday", {});
      const trials = (before.scorecards.find((c) => c.domain === "BUYER_MATCH")?.trials ?? 0) + 2;
      const trial = { domain: "BUYER_MATCH", success: true, confidence: 0.9 };
      const first = await caller().call(HeimdallService, "recordSandboxTrial", trial);
      const second = await caller().call(HeimdallService, "recordSandboxTrial", trial);
      expect(first.correlationId).toMatch(ASSIGNED);
      expect(second.correlationId).not.toBe(first.correlationId);
      expect(second.scorecard?.trials).toBe(trials);
      const kpi = await caller().call(RegressionService, "recordKpi", {
        domain: "WHOLESALE",
        metric: "contract_rate",
        success: true,
        value: 1,
      });
      expect(kpi.correlationId).toMatch(ASSIGNED);
    });

    it("still deduplicates a call that brings its own id, and returns that id", async () => {
      const body = { ...operator, correlationId: `drill-${port}` };
      const first = await caller().call(GoLiveService, "engageKillSwitch", body, admin);
      const retry = await caller().call(GoLiveService, "engageKillSwitch", body, admin);
      expect(first.correlationId).toBe(`drill-${port}`);
      expect(retry).toEqual(first);
      expect(audited(`drill-${port}`)).toHaveLength(1);
    });

    it("still requires an id where a duplicate would move money", async () => {
      await rejects(
        caller().call(RiskService, "reserve", { engine: "WHOLESALE", amount: "1.00" }),
        Code.InvalidArgument,
        /correlation_id/,
      );
      await rejects(
        caller().call(RiskService, "settle", { reservationId: "r-1", realizedLoss: "0" }),
        Code.InvalidArgument,
        /correlation_id/,
      );
      await rejects(
        caller().call(RiskService, "release", { reservationId: "r-1" }),
        Code.InvalidArgument,
        /correlation_id/,
      );
    });
  },
);
