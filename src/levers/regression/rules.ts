/** The seed's tripwire rule (relative drop of the recent window against the baseline before it). */

/** The parts of a tripwire policy the rule reads. */
export interface RelativeDropPolicy {
  windowEvents: number;
  baselineEvents: number;
  /** 0 means windowEvents + baselineEvents. */
  minEventsToEnforce: number;
  maxDropFraction: number;
  enabled: boolean;
}

/** Where a wire stands after an evaluation. */
export type WireStatus = "DISABLED" | "INSUFFICIENT_DATA" | "OK" | "TRIP";

/** The rule's figures, so an operator can see why it decided as it did. */
export interface RelativeDropFigures {
  status: WireStatus;
  currentRate: number;
  baselineRate: number;
  drop: number;
  eventsSeen: number;
  eventsNeeded: number;
}

/** Events a policy needs before it may trip. */
export function eventsNeeded(p: RelativeDropPolicy): number {
  return Math.max(p.minEventsToEnforce, p.windowEvents + p.baselineEvents);
}

/** Success counts of the two windows the seed rule compares. */
export interface WindowCounts {
  currentSuccesses: number;
  currentEvents: number;
  baselineSuccesses: number;
  baselineEvents: number;
}

/** Successes over events, 0 when there are none. */
export function successRate(successes: number, events: number): number {
  return events === 0 ? 0 : successes / events;
}

/**
 * The seed rule on window counts: current = success rate of the last window_events;
 * baseline = success rate of the baseline_events before them; drop = (baseline - current) /
 * baseline; trip when enabled, enough events and drop > max_drop_fraction. A zero baseline
 * cannot drop. `eventsSeen` counts every event of the series.
 */
export function relativeDropFromCounts(
  p: RelativeDropPolicy,
  c: WindowCounts,
  eventsSeen: number,
): RelativeDropFigures {
  const currentRate = successRate(c.currentSuccesses, c.currentEvents);
  const baselineRate = successRate(c.baselineSuccesses, c.baselineEvents);
  const drop = baselineRate > 0 ? (baselineRate - currentRate) / baselineRate : 0;
  const needed = eventsNeeded(p);
  const figures = { currentRate, baselineRate, drop, eventsSeen, eventsNeeded: needed };
  if (!p.enabled) return { status: "DISABLED", ...figures };
  if (eventsSeen < needed || c.baselineEvents < p.baselineEvents) {
    return { status: "INSUFFICIENT_DATA", ...figures };
  }
  return { status: drop > p.maxDropFraction ? "TRIP" : "OK", ...figures };
}

/**
 * Evaluates the seed rule. `newestFirst` holds the latest outcomes (at least window + baseline
 * of them when that many exist); `eventsSeen` counts every event of the series.
 */
export function evaluateRelativeDrop(
  p: RelativeDropPolicy,
  newestFirst: readonly boolean[],
  eventsSeen: number,
): RelativeDropFigures {
  const current = newestFirst.slice(0, p.windowEvents);
  const baseline = newestFirst.slice(p.windowEvents, p.windowEvents + p.baselineEvents);
  const successes = (xs: readonly boolean[]) => xs.filter(Boolean).length;
  return relativeDropFromCounts(
    p,
    {
      currentSuccesses: successes(current),
      currentEvents: current.length,
      baselineSuccesses: successes(baseline),
      baselineEvents: baseline.length,
    },
    eventsSeen,
  );
}

/** The engines and Heimdall domains a THROTTLE wire names (its domain when none are listed). */
export function throttleTargets(domain: string, targets: readonly string[]): string[] {
  return targets.length > 0 ? [...targets] : [domain];
}
