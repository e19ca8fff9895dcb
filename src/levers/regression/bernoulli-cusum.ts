/**
 * The SEQUENTIAL tripwire: a Bernoulli CUSUM on the failure stream against a frozen baseline.
 *
 * Reynolds, M. R. & Stoumbos, Z. G. (1999), "A CUSUM chart for monitoring a proportion when
 * inspecting continuously", Journal of Quality Technology 31(1):87-108. With failure indicator
 * x_t (1 = failure), in-control failure rate q0 = 1 - baseline and the failure rate to detect
 * q1 = 1 - baseline * (1 - max_drop_fraction), the log-likelihood ratio of one event is
 *   llr(x) = x * ln(q1 / q0) + (1 - x) * ln((1 - q1) / (1 - q0))
 * and the chart is S_0 = 0, S_t = max(0, S_{t-1} + llr(x_t)); it signals when S_t >= h.
 *
 * As in Reynolds & Stoumbos, the increments are scaled to integers (a failure adds `up`,
 * a success takes `down` away), so the chart is an exact Markov chain on 0..H-1 and its average
 * run length (ARL) solves (I - P) L = 1 (Brook & Evans, 1972, Biometrika 59(3):539-549).
 * The threshold H is the smallest one whose in-control ARL reaches the operator's target of
 * expected events between false alarms.
 */

import { wilsonLowerBound } from "../heimdall/wilson.js";

/**
 * Two-sided confidence of the lower bound a measured baseline is frozen at. A chart tuned to a
 * baseline that was over-estimated reads in-control data as a drop: with 200 baseline events the
 * estimate's standard error at p = 0.9 is 0.021, enough to multiply false alarms several-fold
 * (the estimated-parameter effect; Jones, Champ & Rigdon (2004), Technometrics 46(1):87-98).
 * Freezing the Wilson lower bound instead makes the false-alarm figure a guarantee that holds
 * for any true baseline down to that bound; at the measured rate itself false alarms are rarer.
 * 0.99 was chosen with `npm run bench:tripwire` (docs/performance.md, "Tripwire simulation").
 */
export const BASELINE_GUARD_CONFIDENCE = 0.99;

/** The in-control rate a measured baseline is frozen at: its Wilson lower bound, off 0 and 1. */
export function guardedBaseline(successes: number, events: number): number {
  const bound = wilsonLowerBound(successes, events, BASELINE_GUARD_CONFIDENCE);
  return Math.min(1 - 0.5 / events, Math.max(0.5 / events, bound));
}

/**
 * Designs the chart for a baseline measured as `successes` of `events`: in control at the
 * guarded rate, tuned to detect a drop of `maxDropFraction` from the measured rate. When so few
 * events were measured that the guard falls below that, it detects the drop from the guarded
 * rate instead (a larger drop from the measured one).
 */
export function designForMeasuredBaseline(
  successes: number,
  events: number,
  maxDropFraction: number,
  targetArl: number,
): CusumDesign {
  const measured = Math.min(1 - 0.5 / events, Math.max(0.5 / events, successes / events));
  const guarded = guardedBaseline(successes, events);
  const fromMeasured = measured * (1 - maxDropFraction);
  const detect = fromMeasured < guarded ? fromMeasured : guarded * (1 - maxDropFraction);
  return designCusum(guarded, detect, targetArl);
}

/** The integer-scaled chart: what a failure adds, what a success removes, and the threshold. */
export interface CusumDesign {
  baselineRate: number;
  detectRate: number;
  up: number;
  down: number;
  threshold: number;
  /** Scaled units per unit of log-likelihood, to report the statistic in LLR units. */
  scale: number;
  /** The in-control ARL the threshold achieves (>= the target). */
  inControlArl: number;
}

/** Largest scaled up-step; bounds the chain's size and so the design's cost. */
const MAX_UP = 200;
/** Scaled down-step when the up-step allows it: finer means closer to the exact LLR. */
const DOWN_STEPS = 10;

/** Average run length from S = 0 of the scaled chart when each event fails with probability q. */
export function averageRunLength(up: number, down: number, threshold: number, q: number): number {
  const n = threshold;
  if (n <= 0) return 1;
  // Banded LU of A = I - P, lower bandwidth `down`, upper bandwidth `up`; row i: from state i a
  // failure goes to i + up (absorbed at >= n), a success to max(0, i - down).
  const lo = down;
  const hi = up;
  const width = lo + hi + 1;
  const a = new Float64Array(n * width);
  const at = (i: number, j: number) => i * width + (j - i + lo);
  for (let i = 0; i < n; i++) {
    a[at(i, i)] = 1;
    if (i + up < n) a[at(i, i + up)] = (a[at(i, i + up)] ?? 0) - q;
    const d = Math.max(0, i - down);
    a[at(i, d)] = (a[at(i, d)] ?? 0) - (1 - q);
  }
  const b = new Float64Array(n).fill(1);
  for (let k = 0; k < n; k++) {
    const pivot = a[at(k, k)] as number;
    const last = Math.min(n - 1, k + lo);
    for (let i = k + 1; i <= last; i++) {
      const f = (a[at(i, k)] as number) / pivot;
      if (f === 0) continue;
      const end = Math.min(n - 1, k + hi);
      for (let j = k; j <= end; j++)
        a[at(i, j)] = (a[at(i, j)] as number) - f * (a[at(k, j)] as number);
      b[i] = (b[i] as number) - f * (b[k] as number);
    }
  }
  const x = new Float64Array(n);
  for (let i = n - 1; i >= 0; i--) {
    let s = b[i] as number;
    const end = Math.min(n - 1, i + hi);
    for (let j = i + 1; j <= end; j++) s -= (a[at(i, j)] as number) * (x[j] as number);
    x[i] = s / (a[at(i, i)] as number);
  }
  return x[0] as number;
}

/**
 * Designs the chart: tells an in-control success rate `baselineRate` from `detectRate` and
 * signals falsely on average once per `targetArl` in-control events (the threshold is the
 * smallest that does).
 */
export function designCusum(
  baselineRate: number,
  detectRate: number,
  targetArl: number,
  arlAtRate: number = baselineRate,
): CusumDesign {
  if (!(baselineRate > 0 && baselineRate < 1)) {
    throw new RangeError(
      `baseline success rate must be strictly between 0 and 1, got ${baselineRate}`,
    );
  }
  if (!(detectRate > 0 && detectRate < baselineRate)) {
    throw new RangeError(
      `the rate to detect must be between 0 and the baseline, got ${detectRate}`,
    );
  }
  const q0 = 1 - baselineRate;
  const q1 = 1 - detectRate;
  const llrFail = Math.log(q1 / q0);
  const llrSuccess = -Math.log((1 - q1) / (1 - q0)); // positive magnitude
  const scale = Math.min(DOWN_STEPS / llrSuccess, MAX_UP / llrFail);
  const up = Math.max(1, Math.round(llrFail * scale));
  const down = Math.max(1, Math.round(llrSuccess * scale));
  return searchThreshold(baselineRate, detectRate, up, down, scale, targetArl, (h) =>
    averageRunLength(up, down, h, 1 - arlAtRate),
  );
}

/** The smallest threshold whose in-control ARL (as `arlAt` computes it) reaches the target. */
function searchThreshold(
  baselineRate: number,
  detectRate: number,
  up: number,
  down: number,
  scale: number,
  targetArl: number,
  arlAt: (threshold: number) => number,
): CusumDesign {
  let high = up;
  while (arlAt(high) < targetArl) {
    high *= 2;
    if (high > 1_000_000) throw new RangeError("target ARL is out of reach for this baseline");
  }
  let low = Math.floor(high / 2);
  while (high - low > 1) {
    const mid = Math.floor((low + high) / 2);
    if (arlAt(mid) >= targetArl) high = mid;
    else low = mid;
  }
  return { baselineRate, detectRate, up, down, threshold: high, scale, inControlArl: arlAt(high) };
}

/** One step of the chart: the new statistic after an event. */
export function cusumStep(
  d: Pick<CusumDesign, "up" | "down">,
  statistic: number,
  success: boolean,
): number {
  return success ? Math.max(0, statistic - d.down) : statistic + d.up;
}

/** True when the statistic has reached the threshold. */
export function cusumSignals(d: Pick<CusumDesign, "threshold">, statistic: number): boolean {
  return statistic >= d.threshold;
}
