/** Heimdall charter rules as plain functions: the gates a recommendation must pass. */
import { wilsonLowerBound } from "./wilson.js";

/** The thresholds of one domain. */
export interface GatePolicy {
  minConfidenceProd: number;
  minSandboxTrials: number;
  minSandboxSuccessRate: number;
  prodUseEnabled: boolean;
  /** RAW compares successes / trials; WILSON_LOWER its Wilson lower bound at boundConfidence. */
  successRateBound: "RAW" | "WILSON_LOWER";
  boundConfidence: number;
}

/** Sandbox trials counted over the policy's lookback. */
export interface SandboxTally {
  trials: number;
  successes: number;
  /** Of `trials`, those of the other sidecars of a fleet (central's evidence); 0 or absent alone. */
  fleetTrials?: number;
}

/** One gate's verdict with what was observed and what it needed. */
export interface GateResult {
  name: string;
  observed: number;
  threshold: number;
  passed: boolean;
  detail: string;
  /** The raw success rate beside a Wilson bound in `observed` (0 otherwise). */
  rawObserved: number;
}

/** Sandbox success rate of a tally (0 with no trials). */
export function successRate(t: SandboxTally): number {
  return t.trials === 0 ? 0 : t.successes / t.trials;
}

/** Evaluates every gate: confidence, sandbox trials, sandbox success rate, prod use enabled. */
export function evaluateGates(
  p: GatePolicy,
  confidence: number,
  tally: SandboxTally,
): GateResult[] {
  const raw = successRate(tally);
  const wilson = p.successRateBound === "WILSON_LOWER";
  const rate = wilson ? wilsonLowerBound(tally.successes, tally.trials, p.boundConfidence) : raw;
  const rateText = wilson
    ? `${tally.successes}/${tally.trials} succeeded (${raw.toFixed(4)} raw, ${rate.toFixed(4)} at the ${p.boundConfidence} Wilson lower bound, which the gate uses)`
    : `${tally.successes}/${tally.trials} succeeded (${raw.toFixed(4)})`;
  return [
    {
      name: "confidence",
      observed: confidence,
      threshold: p.minConfidenceProd,
      passed: confidence >= p.minConfidenceProd,
      detail: `confidence ${confidence} ${confidence >= p.minConfidenceProd ? ">=" : "<"} ${p.minConfidenceProd}`,
      rawObserved: 0,
    },
    {
      name: "sandbox_trials",
      observed: tally.trials,
      threshold: p.minSandboxTrials,
      passed: tally.trials >= p.minSandboxTrials,
      detail: `${tally.trials} sandbox trials in the lookback${tally.fleetTrials ? ` (${tally.fleetTrials} of them on other sidecars of the fleet)` : ""}, ${p.minSandboxTrials} needed`,
      rawObserved: 0,
    },
    {
      name: "sandbox_success_rate",
      observed: rate,
      threshold: p.minSandboxSuccessRate,
      passed: tally.trials > 0 && rate >= p.minSandboxSuccessRate,
      detail: `${rateText}, ${p.minSandboxSuccessRate} needed`,
      rawObserved: wilson ? raw : 0,
    },
    {
      name: "prod_use_enabled",
      observed: p.prodUseEnabled ? 1 : 0,
      threshold: 1,
      passed: p.prodUseEnabled,
      detail: p.prodUseEnabled
        ? "production use is enabled"
        : "production use is disabled for this domain",
      rawObserved: 0,
    },
  ];
}

/** The gates that failed, by name. */
export function failedGates(gates: readonly GateResult[]): string[] {
  return gates.filter((g) => !g.passed).map((g) => g.name);
}

/** The first UTC day (YYYY-MM-DD) inside a lookback of `days` ending on `todayMs`. */
export function lookbackStartDay(todayMs: number, days: number): string {
  return new Date(todayMs - (days - 1) * 86_400_000).toISOString().slice(0, 10);
}
