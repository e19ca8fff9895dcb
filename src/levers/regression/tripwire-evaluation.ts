/** Evaluating tripwires (RELATIVE_DROP and SEQUENTIAL), acting when they trip, and arming them. */
import {
  TripwireAction,
  TripwireMethod,
  TripwireStatus,
} from "../../../gen/governance/v1/regression_pb.js";
import type { LeverContext } from "../context.js";
import { timestamp } from "../convert.js";
import { changeSwitches } from "../golive/service.js";
import {
  type CusumDesign,
  cusumSignals,
  cusumStep,
  designCusum,
  designForMeasuredBaseline,
} from "./bernoulli-cusum.js";
import { relativeDropFromCounts, successRate, throttleTargets } from "./rules.js";
import type { SeriesState, TripwirePolicy } from "./tripwires.js";

/** A wire's state after an evaluation, and whether it tripped on it. */
export interface WireOutcome {
  state: ReturnType<typeof describeWire>;
  trippedNow: boolean;
}

const ACTION = {
  THROTTLE: TripwireAction.THROTTLE,
  KILL_SWITCH: TripwireAction.KILL_SWITCH,
} as const;
const METHOD = {
  RELATIVE_DROP: TripwireMethod.RELATIVE_DROP,
  SEQUENTIAL: TripwireMethod.SEQUENTIAL,
} as const;

const f4 = (x: number) => x.toFixed(4);

/** The figures an operator needs to see why a wire stands where it does. */
function figures(ctx: LeverContext, p: TripwirePolicy, s: SeriesState) {
  if (p.method === "RELATIVE_DROP") {
    const counts = ctx.tripwires.windowCounts(p.domain, p.metric, p.windowEvents, p.baselineEvents);
    const rd = relativeDropFromCounts(p, counts, s.eventsSeen);
    return { ...rd, statistic: rd.drop, threshold: p.maxDropFraction, decision: rd.status };
  }
  // SEQUENTIAL decides on its statistic; the window's rate is only shown.
  const w = ctx.tripwires.windowCounts(p.domain, p.metric, p.windowEvents, 0);
  const currentRate = successRate(w.currentSuccesses, w.currentEvents);
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
  } as const;
}

/** The TripwireState message of a wire. */
export function describeWire(
  ctx: LeverContext,
  p: TripwirePolicy,
  s = ctx.tripwires.seriesState(p.domain, p.metric),
  f = figures(ctx, p, s),
) {
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
 * events after that point. An operator's rate is taken as given; a measured one (the last
 * baseline_events) is frozen at its guarded lower bound (bernoulli-cusum.ts explains why).
 */
function freeze(ctx: LeverContext, p: TripwirePolicy, s: SeriesState): SeriesState {
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
    const successes = ctx.tripwires.windowCounts(p.domain, p.metric, n, 0).currentSuccesses;
    try {
      design = designForMeasuredBaseline(successes, n, p.maxDropFraction, p.falseAlarmEvents);
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
    armedAfterKpi: ctx.tripwires.lastKpiId(p.domain, p.metric),
  };
}

/** Arms a wire: clears its trip, and for SEQUENTIAL restarts the chart on a new frozen baseline. */
export function armWire(ctx: LeverContext, p: TripwirePolicy, keepTrip: boolean): SeriesState {
  const before = ctx.tripwires.seriesState(p.domain, p.metric);
  let s: SeriesState = {
    ...before,
    tripped: keepTrip && before.tripped,
    dryRunTripped: keepTrip && before.dryRunTripped,
    trippedMs: keepTrip ? before.trippedMs : null,
    frozenBaseline: null,
    design: null,
    cusum: 0,
    armedAfterKpi: ctx.tripwires.lastKpiId(p.domain, p.metric),
  };
  s = freeze(ctx, p, s);
  ctx.tripwires.saveSeries(p.domain, p.metric, s);
  return s;
}

function tripReason(p: TripwirePolicy, s: SeriesState, f: ReturnType<typeof figures>): string {
  const series = `${p.domain}/${p.metric}`;
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

/** Acts on a trip (or, in dry run, only records what it would have done). */
function trip(
  ctx: LeverContext,
  p: TripwirePolicy,
  s: SeriesState,
  reason: string,
  actor: string,
  correlationId: string,
): SeriesState {
  const now = ctx.clock.now();
  const series = `${p.domain}/${p.metric}`;
  const next: SeriesState = p.dryRun
    ? {
        ...s,
        dryRunTripped: true,
        trippedMs: now,
        lastTripReason: `dry run, nothing done: ${reason}`,
      }
    : { ...s, tripped: true, trippedMs: now, lastTripReason: reason };
  ctx.tripwires.saveSeries(p.domain, p.metric, next);
  // A dry run changes no decision, so the policy revision stays.
  if (!p.dryRun) ctx.revision.next();
  ctx.audit.append(
    {
      lever: "regression",
      action: p.dryRun ? "DRY_RUN_TRIP" : "TRIP",
      subject: series,
      ok: true,
      reason,
      actor,
      correlationId,
      metadata: {
        action: p.action,
        method: p.method,
        targets: throttleTargets(p.domain, p.throttleTargets).join(","),
      },
    },
    now,
  );
  if (!p.dryRun) {
    ctx.tripped({
      domain: p.domain,
      metric: p.metric,
      action: p.action,
      reason,
      trippedMs: now,
      correlationId,
    });
  }
  if (!p.dryRun && p.action === "KILL_SWITCH") {
    changeSwitches(
      ctx,
      { killSwitchEngaged: true },
      "KILL_SWITCH_ENGAGE",
      `tripwire:${series}`,
      reason,
      correlationId,
    );
  }
  return next;
}

/**
 * Evaluates a wire after `newEvent` (the id of a KPI just recorded, or 0 for an Evaluate call)
 * and acts when it trips. A tripped wire stays tripped until re-armed.
 */
export function evaluateWire(
  ctx: LeverContext,
  p: TripwirePolicy,
  newEvent: number,
  success: boolean,
  actor: string,
  correlationId: string,
): WireOutcome {
  let s = ctx.tripwires.seriesState(p.domain, p.metric);
  if (!p.enabled || s.tripped || s.dryRunTripped)
    return { state: describeWire(ctx, p, s), trippedNow: false };
  if (p.method === "SEQUENTIAL") {
    const frozen = freeze(ctx, p, s);
    if (frozen !== s) {
      s = frozen;
      ctx.tripwires.saveSeries(p.domain, p.metric, s);
    } else if (s.design && newEvent > s.armedAfterKpi) {
      s = { ...s, cusum: cusumStep(s.design, s.cusum, success) };
      ctx.tripwires.saveStatistic(p.domain, p.metric, s.cusum);
    }
  }
  const f = figures(ctx, p, s);
  if (f.decision !== "TRIP") return { state: describeWire(ctx, p, s, f), trippedNow: false };
  const after = trip(ctx, p, s, tripReason(p, s, f), actor, correlationId);
  return { state: describeWire(ctx, p, after), trippedNow: !p.dryRun };
}
