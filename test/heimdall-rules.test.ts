import { describe, expect, it } from "vitest";
import {
  evaluateGates,
  failedGates,
  type GatePolicy,
  type GateResult,
  lookbackStartDay,
  successRate,
} from "../src/levers/heimdall/rules.js";

// WHOLESALE_OFFER's seed thresholds, with production use switched on.
const POLICY: GatePolicy = {
  minConfidenceProd: 0.92,
  minSandboxTrials: 75,
  minSandboxSuccessRate: 0.82,
  prodUseEnabled: true,
  successRateBound: "RAW",
  boundConfidence: 0.95,
};

function gate(gates: GateResult[], name: string): GateResult {
  const g = gates.find((x) => x.name === name);
  if (!g) throw new Error(`no gate named ${name}`);
  return g;
}

describe("successRate", () => {
  it("is successes over trials", () => {
    expect(successRate({ trials: 4, successes: 3 })).toBe(0.75);
    expect(successRate({ trials: 50, successes: 41 })).toBe(0.82);
    expect(successRate({ trials: 10, successes: 10 })).toBe(1);
    expect(successRate({ trials: 10, successes: 0 })).toBe(0);
  });

  it("is 0 with no trials, not NaN", () => {
    expect(successRate({ trials: 0, successes: 0 })).toBe(0);
  });
});

describe("evaluateGates", () => {
  it("evaluates every gate in order with its observed value, threshold and verdict", () => {
    const gates = evaluateGates(POLICY, 0.95, { trials: 100, successes: 90 });
    expect(
      gates.map(({ name, observed, threshold, passed }) => ({
        name,
        observed,
        threshold,
        passed,
      })),
    ).toEqual([
      { name: "confidence", observed: 0.95, threshold: 0.92, passed: true },
      { name: "sandbox_trials", observed: 100, threshold: 75, passed: true },
      { name: "sandbox_success_rate", observed: 0.9, threshold: 0.82, passed: true },
      { name: "prod_use_enabled", observed: 1, threshold: 1, passed: true },
    ]);
    expect(failedGates(gates)).toEqual([]);
  });

  it("fails the confidence gate below the threshold and passes it at the threshold", () => {
    const tally = { trials: 100, successes: 90 };
    const low = gate(evaluateGates(POLICY, 0.9199, tally), "confidence");
    expect(low).toMatchObject({ observed: 0.9199, threshold: 0.92, passed: false });
    expect(low.detail).toBe("confidence 0.9199 < 0.92");
    const equal = gate(evaluateGates(POLICY, 0.92, tally), "confidence");
    expect(equal.passed).toBe(true);
    expect(equal.detail).toBe("confidence 0.92 >= 0.92");
  });

  it("fails the trials gate below the threshold and passes it at the threshold", () => {
    // 74 of 74 succeeded: only the count is short.
    const short = evaluateGates(POLICY, 0.95, { trials: 74, successes: 74 });
    expect(gate(short, "sandbox_trials")).toMatchObject({
      observed: 74,
      threshold: 75,
      passed: false,
    });
    expect(failedGates(short)).toEqual(["sandbox_trials"]);
    const equal = evaluateGates(POLICY, 0.95, { trials: 75, successes: 75 });
    expect(gate(equal, "sandbox_trials").passed).toBe(true);
    expect(failedGates(equal)).toEqual([]);
  });

  it("fails the success-rate gate below the threshold and passes it at the threshold", () => {
    const p = { ...POLICY, minSandboxTrials: 50 };
    const equal = evaluateGates(p, 0.95, { trials: 50, successes: 41 }); // 0.82
    expect(gate(equal, "sandbox_success_rate")).toMatchObject({
      observed: 0.82,
      threshold: 0.82,
      passed: true,
    });
    const below = evaluateGates(p, 0.95, { trials: 50, successes: 40 }); // 0.80
    expect(gate(below, "sandbox_success_rate")).toMatchObject({
      observed: 0.8,
      threshold: 0.82,
      passed: false,
    });
    expect(gate(below, "sandbox_success_rate").detail).toMatch(/^40\/50 succeeded \(0\.8000\)/);
    expect(failedGates(below)).toEqual(["sandbox_success_rate"]);
  });

  it("fails the success-rate gate with 0 trials, even when every threshold is 0", () => {
    const lax: GatePolicy = {
      minConfidenceProd: 0,
      minSandboxTrials: 0,
      minSandboxSuccessRate: 0,
      prodUseEnabled: true,
      successRateBound: "RAW",
      boundConfidence: 0.95,
    };
    const gates = evaluateGates(lax, 0, { trials: 0, successes: 0 });
    expect(gate(gates, "sandbox_success_rate")).toMatchObject({
      observed: 0,
      threshold: 0,
      passed: false,
    });
    expect(failedGates(gates)).toEqual(["sandbox_success_rate"]);
  });

  it("fails the prod-use gate while production use is disabled (the seed)", () => {
    const gates = evaluateGates({ ...POLICY, prodUseEnabled: false }, 0.99, {
      trials: 200,
      successes: 200,
    });
    expect(gate(gates, "prod_use_enabled")).toMatchObject({
      observed: 0,
      threshold: 1,
      passed: false,
    });
    expect(failedGates(gates)).toEqual(["prod_use_enabled"]);
  });

  it("names every failing gate, in gate order", () => {
    const gates = evaluateGates({ ...POLICY, prodUseEnabled: false }, 0.5, {
      trials: 10,
      successes: 1,
    });
    expect(failedGates(gates)).toEqual([
      "confidence",
      "sandbox_trials",
      "sandbox_success_rate",
      "prod_use_enabled",
    ]);
  });
});

describe("failedGates", () => {
  it("keeps only the gates that did not pass, by name", () => {
    const g = (name: string, passed: boolean): GateResult => ({
      name,
      observed: 0,
      threshold: 0,
      rawObserved: 0,
      passed,
      detail: "",
    });
    expect(failedGates([g("a", true), g("b", false), g("c", true), g("d", false)])).toEqual([
      "b",
      "d",
    ]);
    expect(failedGates([])).toEqual([]);
  });
});

describe("lookbackStartDay", () => {
  it("counts today as the first of the lookback's days", () => {
    const noon = Date.UTC(2024, 2, 31, 12, 0, 0); // 2024-03-31
    expect(lookbackStartDay(noon, 1)).toBe("2024-03-31");
    expect(lookbackStartDay(noon, 2)).toBe("2024-03-30");
    expect(lookbackStartDay(noon, 30)).toBe("2024-03-02");
  });

  it("works in UTC at both ends of a day and across a leap day", () => {
    expect(lookbackStartDay(Date.UTC(2024, 2, 1, 0, 0, 0, 0), 2)).toBe("2024-02-29");
    expect(lookbackStartDay(Date.UTC(2024, 2, 1, 23, 59, 59, 999), 2)).toBe("2024-02-29");
    expect(lookbackStartDay(Date.UTC(2025, 2, 1, 23, 59, 59, 999), 2)).toBe("2025-02-28");
    expect(lookbackStartDay(Date.UTC(2025, 0, 15, 6), 30)).toBe("2024-12-17");
  });
});
