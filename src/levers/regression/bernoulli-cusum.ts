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
 * Designs the chart: detects a drop of `maxDropFraction` from `baselineRate` and signals falsely
 * on average once per `targetArl` in-control events (the threshold is the smallest that does).
 */
export function designCusum(
  baselineRate: number,
  maxDropFraction: number,
  targetArl: number,
): CusumDesign {
  if (!(baselineRate > 0 && baselineRate < 1)) {
    throw new RangeError(
      `baseline success rate must be strictly between 0 and 1, got ${baselineRate}`,
    );
  }
  const q0 = 1 - baselineRate;
  const detectRate = baselineRate * (1 - maxDropFraction);
  const q1 = 1 - detectRate;
  const llrFail = Math.log(q1 / q0);
  const llrSuccess = -Math.log((1 - q1) / (1 - q0)); // positive magnitude
  const scale = Math.min(DOWN_STEPS / llrSuccess, MAX_UP / llrFail);
  const up = Math.max(1, Math.round(llrFail * scale));
  const down = Math.max(1, Math.round(llrSuccess * scale));
  // Exponential search, then bisection, for the smallest threshold meeting the target.
  let high = up;
  while (averageRunLength(up, down, high, q0) < targetArl) {
    high *= 2;
    if (high > 1_000_000) throw new RangeError("target ARL is out of reach for this baseline");
  }
  let low = Math.floor(high / 2);
  while (high - low > 1) {
    const mid = Math.floor((low + high) / 2);
    if (averageRunLength(up, down, mid, q0) >= targetArl) high = mid;
    else low = mid;
  }
  return {
    baselineRate,
    detectRate,
    up,
    down,
    threshold: high,
    scale,
    inControlArl: averageRunLength(up, down, high, q0),
  };
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
