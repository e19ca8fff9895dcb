/** RegressionService handlers: tripwire policies, state, Evaluate, RecordKpi and ResetTripwire. */
import { Code, ConnectError } from "@connectrpc/connect";
import {
  RegressionService,
  TripwireAction,
  TripwireStatus,
} from "../../../gen/governance/v1/regression_pb.js";
import { bindService, type ServiceBinding } from "../../server/call-pipeline.js";
import type { LeverContext } from "../context.js";
import { actorOf, timestamp } from "../convert.js";
import { changeSwitches } from "../golive/service.js";
import { evaluateRelativeDrop, type RelativeDropFigures, throttleTargets } from "./rules.js";
import type { SeriesState, TripwirePolicy } from "./tripwires.js";

const ACTION = {
  THROTTLE: TripwireAction.THROTTLE,
  KILL_SWITCH: TripwireAction.KILL_SWITCH,
} as const;
const STATUS = {
  DISABLED: TripwireStatus.DISABLED,
  INSUFFICIENT_DATA: TripwireStatus.INSUFFICIENT_DATA,
  OK: TripwireStatus.OK,
  TRIP: TripwireStatus.TRIPPED,
} as const;

function policyMessage(p: TripwirePolicy) {
  return { ...p, action: ACTION[p.action], updatedAt: timestamp(p.updatedMs) };
}

function stateMessage(p: TripwirePolicy, f: RelativeDropFigures, s: SeriesState) {
  return {
    domain: p.domain,
    metric: p.metric,
    status: s.tripped ? TripwireStatus.TRIPPED : STATUS[f.status],
    action: ACTION[p.action],
    currentRate: f.currentRate,
    baselineRate: f.baselineRate,
    drop: f.drop,
    maxDropFraction: p.maxDropFraction,
    eventsSeen: BigInt(f.eventsSeen),
    eventsNeeded: f.eventsNeeded,
    lastTripReason: s.lastTripReason,
    trippedAt: timestamp(s.trippedMs),
    throttleTargets: p.action === "THROTTLE" ? throttleTargets(p.domain, p.throttleTargets) : [],
  };
}

function figuresOf(ctx: LeverContext, p: TripwirePolicy, s: SeriesState): RelativeDropFigures {
  const outcomes = ctx.tripwires.recentOutcomes(
    p.domain,
    p.metric,
    p.windowEvents + p.baselineEvents,
  );
  return evaluateRelativeDrop(p, outcomes, s.eventsSeen);
}

function fmt(x: number): string {
  return x.toFixed(4);
}

/**
 * Evaluates one wire and acts when it trips: THROTTLE marks its targets throttled,
 * KILL_SWITCH engages the global kill switch. A tripped wire stays tripped until re-armed.
 */
export function evaluateWire(
  ctx: LeverContext,
  p: TripwirePolicy,
  actor: string,
  correlationId: string,
) {
  const series = ctx.tripwires.seriesState(p.domain, p.metric);
  const figures = figuresOf(ctx, p, series);
  if (series.tripped || figures.status !== "TRIP") {
    return { state: stateMessage(p, figures, series), trippedNow: false };
  }
  const now = ctx.clock.now();
  const reason =
    `${p.domain}/${p.metric}: success rate ${fmt(figures.currentRate)} over the last ${p.windowEvents} events ` +
    `against ${fmt(figures.baselineRate)} over the ${p.baselineEvents} before: drop ${fmt(figures.drop)} > ${p.maxDropFraction}`;
  ctx.tripwires.setTripped(p.domain, p.metric, true, now, reason);
  ctx.revision.next();
  ctx.audit.append(
    {
      lever: "regression",
      action: "TRIP",
      subject: `${p.domain}/${p.metric}`,
      ok: true,
      reason,
      actor,
      correlationId,
      metadata: {
        action: p.action,
        targets: throttleTargets(p.domain, p.throttleTargets).join(","),
      },
    },
    now,
  );
  if (p.action === "KILL_SWITCH") {
    changeSwitches(
      ctx,
      { killSwitchEngaged: true },
      "KILL_SWITCH_ENGAGE",
      `tripwire:${p.domain}/${p.metric}`,
      reason,
      correlationId,
    );
  }
  return {
    state: stateMessage(p, figures, ctx.tripwires.seriesState(p.domain, p.metric)),
    trippedNow: true,
  };
}

function knownPolicy(ctx: LeverContext, domain: string, metric: string): TripwirePolicy {
  const p = ctx.tripwires.policy(domain, metric);
  if (!p) throw new ConnectError(`no tripwire policy for ${domain}/${metric}`, Code.NotFound);
  return p;
}

/** Binds RegressionService to a lever context. */
export function regressionService(ctx: LeverContext): ServiceBinding {
  return bindService(
    RegressionService,
    {
      listPolicies: () => ({
        policies: ctx.tripwires.policies().map(policyMessage),
        policyRevision: ctx.revision.current(),
      }),
      upsertPolicy: (req) => {
        const now = ctx.clock.now();
        const record: TripwirePolicy = {
          domain: req.domain,
          metric: req.metric,
          windowEvents: req.windowEvents,
          baselineEvents: req.baselineEvents,
          minEventsToEnforce: req.minEventsToEnforce || req.windowEvents + req.baselineEvents,
          maxDropFraction: req.maxDropFraction,
          action: req.action === TripwireAction.KILL_SWITCH ? "KILL_SWITCH" : "THROTTLE",
          throttleTargets: [...req.throttleTargets],
          enabled: req.enabled,
          updatedBy: req.actor,
          updatedMs: now,
        };
        ctx.tripwires.savePolicy(record);
        const policyRevision = ctx.revision.next();
        ctx.audit.append(
          {
            lever: "regression",
            action: "POLICY_UPSERT",
            subject: `${req.domain}/${req.metric}`,
            ok: true,
            reason: req.reason,
            actor: req.actor,
            correlationId: req.correlationId,
            metadata: {
              policy: JSON.stringify({ ...record, updatedBy: undefined, updatedMs: undefined }),
            },
          },
          now,
        );
        return { policy: policyMessage(record), policyRevision };
      },
      getState: (req) => {
        const policies = ctx.tripwires
          .policies()
          .filter((p) => !req.domain || p.domain === req.domain);
        return {
          states: policies.map((p) => {
            const series = ctx.tripwires.seriesState(p.domain, p.metric);
            return stateMessage(p, figuresOf(ctx, p, series), series);
          }),
          throttled: [...ctx.tripwires.throttled()].sort(),
        };
      },
      evaluate: (req) => {
        const policies = ctx.tripwires
          .policies()
          .filter((p) => !req.domain || p.domain === req.domain);
        const results = policies.map((p) => evaluateWire(ctx, p, actorOf(req.actor), "evaluate"));
        return {
          states: results.map((r) => r.state),
          trippedNow: results.filter((r) => r.trippedNow).map((r) => r.state),
        };
      },
      recordKpi: (req) => {
        ctx.tripwires.recordKpi(req.domain, req.metric, req.success, req.value, ctx.clock.now());
        const p = ctx.tripwires.policy(req.domain, req.metric);
        if (!p) return { trippedNow: false };
        return evaluateWire(ctx, p, actorOf(req.actor), req.correlationId);
      },
      resetTripwire: (req) => {
        const p = knownPolicy(ctx, req.domain, req.metric);
        const series = ctx.tripwires.seriesState(p.domain, p.metric);
        if (!series.tripped) {
          throw new ConnectError(
            `tripwire ${p.domain}/${p.metric} is not tripped: nothing to re-arm`,
            Code.FailedPrecondition,
          );
        }
        const now = ctx.clock.now();
        ctx.tripwires.setTripped(p.domain, p.metric, false, now, series.lastTripReason);
        ctx.revision.next();
        ctx.audit.append(
          {
            lever: "regression",
            action: "RESET",
            subject: `${p.domain}/${p.metric}`,
            ok: true,
            reason: req.reason,
            actor: req.actor,
            correlationId: req.correlationId,
          },
          now,
        );
        const after = ctx.tripwires.seriesState(p.domain, p.metric);
        return { state: stateMessage(p, figuresOf(ctx, p, after), after) };
      },
    },
    ["upsertPolicy", "resetTripwire"],
  );
}
