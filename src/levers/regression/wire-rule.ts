/**
 * One wire's rule as pure functions of its policy, its stored state and counts of its latest
 * outcomes: what a sidecar evaluates on its own KPI series (tripwire-evaluation.ts) and central
 * on the fleet's (src/sync/central/fleet-tripwires.ts), so both decide exactly alike.
 */
import {
  TripwireAction,
  TripwireMethod,
  TripwireStatus,
} from "../../../gen/governance/v1/regression_pb.js";
import { timestamp } from "../convert.js";
import {
  type CusumDesign,
  cusumSignals,
  cusumStep,
  designCusum,
  designForMeasuredBaseline,
} from "./bernoulli-cusum.js";
import {
  relativeDropFromCounts,
  successRate,
  throttleTargets,
  type WindowCounts,
} from "./rules.js";
import type { SeriesState, TripwirePolicy } from "./tripwires.js";

const ACTION = {
  THROTTLE: TripwireAction.THROTTLE,
  KILL_SWITCH: TripwireAction.KILL_SWITCH,
} as const;
const METHOD = {
  RELATIVE_DROP: TripwireMethod.RELATIVE_DROP,
  SEQUENTIAL: TripwireMethod.SEQUENTIAL,
} as const;

const f4 = (x: number) => x.toFixed(4);

/** The figures an operator needs to see why a wire stands where it does, and its decision. */
export interface WireFigures {
  currentRate: number;
  baselineRate: number;
  drop: number;
  eventsSeen: number;
  eventsNeeded: number;
  statistic: number;
  threshold: number;
  decision: "DISABLED" | "INSUFFICIENT_DATA" | "OK" | "TRIP";
}

/**
 * A wire's figures from its state and the counts of its newest window_events outcomes and the
 * baseline_events before them (SEQUENTIAL decides on its statistic; the window's rate is only
 * shown).
 */
export function wireFigures(p: TripwirePolicy, s: SeriesState, counts: WindowCounts): WireFigures {
  if (p.method === "RELATIVE_DROP") {
    const rd = relativeDropFromCounts(p, counts, s.eventsSeen);
    return { ...rd, statistic: rd.drop, threshold: p.maxDropFraction, decision: rd.status };
  }
  const currentRate = successRate(counts.currentSuccesses, counts.currentEvents);
  const baseline = s.frozenBaseline ?? 0;
  const d = s.design;
  const signals = d !== null && cusumSignals(d, s.cusum);
  return {
    currentRate,
    baselineRate: baseline,
    drop: baseline > 0 ? (baseline - currentRate) / baseline : 0,
    eventsSeen: s.eventsSeen,
    eventsNeeded: p.baselineEvents,
    statistic: d ? s.cusum / d.scale : 0,
    threshold: d ? d.threshold / d.scale : 0,
    decision: !p.enabled ? "DISABLED" : d === null ? "INSUFFICIENT_DATA" : signals ? "TRIP" : "OK",
  };
}

/** The TripwireState message of a wire from its state and figures. */
export function wireStateOf(p: TripwirePolicy, s: SeriesState, f: WireFigures) {
  const status = s.tripped
    ? TripwireStatus.TRIPPED
    : s.dryRunTripped
      ? TripwireStatus.DRY_RUN_TRIPPED
      : f.decision === "DISABLED"
        ? TripwireStatus.DISABLED
        : f.decision === "INSUFFICIENT_DATA"
          ? TripwireStatus.INSUFFICIENT_DATA
          : f.decision === "TRIP"
            ? TripwireStatus.TRIPPED
            : TripwireStatus.OK;
  return {
    domain: p.domain,
    metric: p.metric,
    status,
    action: ACTION[p.action],
    method: METHOD[p.method],
    currentRate: f.currentRate,
    baselineRate: f.baselineRate,
    drop: f.drop,
    maxDropFraction: p.maxDropFraction,
    eventsSeen: BigInt(f.eventsSeen),
    eventsNeeded: f.eventsNeeded,
    statistic: f.statistic,
    threshold: f.threshold,
    baselineFrozen: p.method === "SEQUENTIAL" && s.design !== null,
    dryRun: p.dryRun,
    detectRate: s.design?.detectRate ?? 0,
    expectedEventsBetweenFalseAlarms: s.design?.inControlArl ?? 0,
    lastTripReason: s.lastTripReason,
    trippedAt: timestamp(s.trippedMs),
    throttleTargets: p.action === "THROTTLE" ? throttleTargets(p.domain, p.throttleTargets) : [],
  };
}

/**
 * SEQUENTIAL: freezes the baseline once it can and designs the chart; the chart counts the
 * events after `lastEvent()` (the newest event now, read only when it freezes). An operator's rate is taken as given; a
 * measured one (the last baseline_events, `successesOfLast` counts their successes) is frozen
 * at its guarded lower bound (bernoulli-cusum.ts explains why). Returns `s` itself when
 * nothing changes.
 */
export function freezeSeries(
  p: TripwirePolicy,
  s: SeriesState,
  successesOfLast: (events: number) => number,
  lastEvent: () => number,
): SeriesState {
  if (p.method !== "SEQUENTIAL" || s.design !== null) return s;
  let design: CusumDesign;
  if (p.baselineRate > 0) {
    design = designCusum(
      p.baselineRate,
      p.baselineRate * (1 - p.maxDropFraction),
      p.falseAlarmEvents,
    );
  } else {
    if (s.eventsSeen < p.baselineEvents) return s;
    const n = p.baselineEvents;
    try {
      design = designForMeasuredBaseline(
        successesOfLast(n),
        n,
        p.maxDropFraction,
        p.falseAlarmEvents,
      );
    } catch {
      // No chart reaches the target for this measurement: stay INSUFFICIENT_DATA, keep recording.
      return s;
    }
  }
  return {
    ...s,
    frozenBaseline: design.baselineRate,
    design,
    cusum: 0,
    armedAfterKpi: lastEvent(),
  };
}

/**
 * A SEQUENTIAL wire after event `event` (its outcome `success`): frozen now ("frozen"), its
 * chart stepped ("stepped", when the event came after arming), or unchanged. A RELATIVE_DROP
 * wire keeps no state of its own beyond the outcomes.
 */
export function sequentialStep(
  p: TripwirePolicy,
  s: SeriesState,
  event: number,
  success: boolean,
  successesOfLast: (events: number) => number,
  lastEvent: () => number,
): { state: SeriesState; change: "frozen" | "stepped" | "none" } {
  if (p.method !== "SEQUENTIAL") return { state: s, change: "none" };
  const frozen = freezeSeries(p, s, successesOfLast, lastEvent);
  if (frozen !== s) return { state: frozen, change: "frozen" };
  if (s.design && event > s.armedAfterKpi) {
    return { state: { ...s, cusum: cusumStep(s.design, s.cusum, success) }, change: "stepped" };
  }
  return { state: s, change: "none" };
}

/** Why a wire tripped, with its figures; `series` names the stream it was evaluated on. */
export function tripReason(
  p: TripwirePolicy,
  s: SeriesState,
  f: WireFigures,
  series = `${p.domain}/${p.metric}`,
): string {
  if (p.method === "RELATIVE_DROP") {
    return (
      `${series}: success rate ${f4(f.currentRate)} over the last ${p.windowEvents} events ` +
      `against ${f4(f.baselineRate)} over the ${p.baselineEvents} before: drop ${f4(f.drop)} > ${p.maxDropFraction}`
    );
  }
  return (
    `${series}: CUSUM ${f.statistic.toFixed(2)} reached its threshold ${f.threshold.toFixed(2)} against the ` +
    `frozen baseline ${f4(s.frozenBaseline ?? 0)} (tuned to detect ${f4(s.design?.detectRate ?? 0)}, about one false ` +
    `alarm per ${Math.round(s.design?.inControlArl ?? 0)} in-control events); last ${p.windowEvents} events at ${f4(f.currentRate)}`
  );
}

/** The state a trip leaves (in dry run: only a note of what it would have done). */
export function trippedState(
  p: TripwirePolicy,
  s: SeriesState,
  reason: string,
  nowMs: number,
): SeriesState {
  return p.dryRun
    ? {
        ...s,
        dryRunTripped: true,
        trippedMs: nowMs,
        lastTripReason: `dry run, nothing done: ${reason}`,
      }
    : { ...s, tripped: true, trippedMs: nowMs, lastTripReason: reason };
}
