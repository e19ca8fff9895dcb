/** Evaluating tripwires (RELATIVE_DROP and SEQUENTIAL), acting when they trip, and arming them. */
import type { LeverContext } from "../context.js";
import { changeSwitches } from "../golive/service.js";
import { throttleTargets } from "./rules.js";
import type { SeriesState, TripwirePolicy } from "./tripwires.js";
import { freezeSeries, trippedState, tripReason, wireFigures, wireStateOf } from "./wire-rule.js";

/** A wire's state after an evaluation, and whether it tripped on it. */
export interface WireOutcome {
  state: ReturnType<typeof describeWire>;
  trippedNow: boolean;
}

/** The figures of a wire on this sidecar's series. */
function figures(ctx: LeverContext, p: TripwirePolicy, s: SeriesState) {
  return wireFigures(
    p,
    s,
    ctx.tripwires.windowCounts(
      p.domain,
      p.metric,
      p.windowEvents,
      p.method === "RELATIVE_DROP" ? p.baselineEvents : 0,
    ),
  );
}

/** The TripwireState message of a wire. */
export function describeWire(
  ctx: LeverContext,
  p: TripwirePolicy,
  s = ctx.tripwires.seriesState(p.domain, p.metric),
  f = figures(ctx, p, s),
) {
  return wireStateOf(p, s, f);
}

/** Successes among the newest `n` outcomes of a wire's series. */
const successesOfLast = (ctx: LeverContext, p: TripwirePolicy) => (n: number) =>
  ctx.tripwires.windowCounts(p.domain, p.metric, n, 0).currentSuccesses;

/** SEQUENTIAL: freezes the baseline once it can (see freezeSeries). */
function freeze(ctx: LeverContext, p: TripwirePolicy, s: SeriesState): SeriesState {
  return freezeSeries(p, s, successesOfLast(ctx, p), () =>
    ctx.tripwires.lastKpiId(p.domain, p.metric),
  );
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
  const next = trippedState(p, s, reason, now);
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
 * Evaluates a wire (after a KPI outcome its series already counted and stepped its chart on,
 * or for an Evaluate call): freezes a SEQUENTIAL baseline once it can, and acts when the wire
 * trips. A tripped wire stays tripped until re-armed.
 */
export function evaluateWire(
  ctx: LeverContext,
  p: TripwirePolicy,
  actor: string,
  correlationId: string,
): WireOutcome {
  let s = ctx.tripwires.seriesState(p.domain, p.metric);
  if (!p.enabled || s.tripped || s.dryRunTripped)
    return { state: describeWire(ctx, p, s), trippedNow: false };
  const frozen = freeze(ctx, p, s);
  if (frozen !== s) {
    s = frozen;
    ctx.tripwires.saveSeries(p.domain, p.metric, s);
  }
  const f = figures(ctx, p, s);
  if (f.decision !== "TRIP") return { state: describeWire(ctx, p, s, f), trippedNow: false };
  const after = trip(ctx, p, s, tripReason(p, s, f), actor, correlationId);
  return { state: describeWire(ctx, p, after), trippedNow: !p.dryRun };
}
