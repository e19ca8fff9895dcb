/** Per-call metrics kept as plain numbers print as Prometheus counters and a histogram. */
import { Code } from "@connectrpc/connect";
import { Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { metricSample } from "../bench/stats.js";
import { DenyReason } from "../gen/governance/v1/common_pb.js";
import { CallTally, LATENCY_BUCKETS } from "../src/server/call-tally.js";

describe("CallTally", () => {
  it("counts calls by code, decisions by outcome and reason, and latencies into cumulative buckets", async () => {
    const registry = new Registry();
    const tally = new CallTally(registry, () => "risk");
    const svc = "governance.v1.RiskService";
    tally.observe(svc, "Reserve", 0.00001, { allowed: true, reason: 0 }, undefined); // on a bound
    tally.observe(
      svc,
      "Reserve",
      0.00003,
      { allowed: false, reason: DenyReason.UNKNOWN_ENGINE },
      undefined,
    );
    tally.observe(svc, "Reserve", 0.2, undefined, Code.InvalidArgument); // above every bound
    tally.observe(svc, "Settle", 0.0002, {}, undefined); // no decision field
    const text = await registry.metrics();
    const reserve = { lever: "risk", rpc: "Reserve" };
    expect(metricSample(text, "govd_rpc_calls_total", { ...reserve, code: "OK" })).toBe(2);
    expect(
      metricSample(text, "govd_rpc_calls_total", { ...reserve, code: "InvalidArgument" }),
    ).toBe(1);
    expect(
      metricSample(text, "govd_decisions_total", {
        ...reserve,
        outcome: "allowed",
        reason: "NONE",
      }),
    ).toBe(1);
    expect(
      metricSample(text, "govd_decisions_total", {
        ...reserve,
        outcome: "denied",
        reason: "UNKNOWN_ENGINE",
      }),
    ).toBe(1);
    expect(metricSample(text, "govd_decisions_total", { rpc: "Settle" })).toBeUndefined();
    const bucket = (le: string) =>
      metricSample(text, "govd_call_duration_seconds_bucket", { ...reserve, le });
    expect(bucket("0.00001")).toBe(1);
    expect(bucket("0.000025")).toBe(1);
    expect(bucket("0.00005")).toBe(2);
    expect(bucket(String(LATENCY_BUCKETS.at(-1)))).toBe(2);
    expect(bucket("+Inf")).toBe(3);
    expect(metricSample(text, "govd_call_duration_seconds_count", reserve)).toBe(3);
    expect(metricSample(text, "govd_call_duration_seconds_sum", reserve)).toBeCloseTo(0.20004, 8);
    expect(text).toMatch(/# TYPE govd_call_duration_seconds histogram/);
    expect(text).toMatch(/# TYPE govd_rpc_calls_total counter/);
  });
});
