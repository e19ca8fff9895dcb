/** RegressionService handlers: tripwire policies, state, Evaluate, RecordKpi and ResetTripwire. */

import { Code, ConnectError } from "@connectrpc/connect";
import {
  RegressionPolicySchema,
  RegressionService,
  TripwireAction,
  TripwireEventSchema,
  TripwireMethod,
} from "../../../gen/governance/v1/regression_pb.js";
import { readAuditEvents } from "../../store/audit-trail.js";
import { assertOwnTrail, eventPage, policiesAnswer } from "../answer-pages.js";
import type { LeverContext } from "../context.js";
import { actorOf, timestamp } from "../convert.js";
import { bindService, type ServiceBinding } from "../service-binding.js";
import { tripwirePolicyOf } from "./policy-request.js";
import { armWire, describeWire, evaluateWire } from "./tripwire-evaluation.js";
import { TRIPWIRE_EVENT_ACTIONS, tripwireEventOf } from "./tripwire-events.js";
import type { TripwirePolicy } from "./tripwires.js";

/** Re-exported where it was first defined. */
export { DEFAULT_FALSE_ALARM_EVENTS } from "./policy-request.js";

function policyMessage(p: TripwirePolicy) {
  return {
    ...p,
    action: p.action === "KILL_SWITCH" ? TripwireAction.KILL_SWITCH : TripwireAction.THROTTLE,
    method: p.method === "SEQUENTIAL" ? TripwireMethod.SEQUENTIAL : TripwireMethod.RELATIVE_DROP,
    expectedEventsBetweenFalseAlarms: p.falseAlarmEvents,
    updatedAt: timestamp(p.updatedMs),
  };
}

function knownPolicy(ctx: LeverContext, domain: string, metric: string): TripwirePolicy {
  const p = ctx.tripwires.policy(domain, metric);
  if (!p) throw new ConnectError(`no tripwire policy for ${domain}/${metric}`, Code.NotFound);
  return p;
}

/** Binds RegressionService to a lever context. */
export function regressionService(ctx: LeverContext): ServiceBinding {
  const inDomain = (domain: string) =>
    ctx.tripwires.policies().filter((p) => !domain || p.domain === domain);
  return bindService(
    RegressionService,
    {
      listPolicies: (req) =>
        policiesAnswer(
          ctx,
          RegressionPolicySchema,
          ctx.tripwires.policies().map(policyMessage),
          (p) => `${p.domain}/${p.metric}`,
          req,
        ),
      upsertPolicy: (req) => {
        const now = ctx.clock.now();
        const record = tripwirePolicyOf(req, now);
        ctx.tripwires.savePolicy(record);
        // A changed policy restarts a SEQUENTIAL chart on a fresh baseline; a trip stays until reset.
        armWire(ctx, record, true);
        const policyRevision = ctx.revision.next();
        const { updatedBy: _by, updatedMs: _ms, ...audited } = record;
        ctx.audit.append(
          {
            lever: "regression",
            action: "POLICY_UPSERT",
            subject: `${req.domain}/${req.metric}`,
            ok: true,
            reason: req.reason,
            actor: req.actor,
            correlationId: req.correlationId,
            metadata: { policy: JSON.stringify(audited) },
          },
          now,
        );
        return { policy: policyMessage(record), policyRevision };
      },
      getState: (req) => ({
        states: inDomain(req.domain).map((p) => describeWire(ctx, p)),
        throttled: [...ctx.tripwires.throttled()].sort(),
      }),
      evaluate: (req) => {
        const results = inDomain(req.domain).map((p) =>
          evaluateWire(ctx, p, actorOf(req.actor), "evaluate"),
        );
        return {
          states: results.map((r) => r.state),
          trippedNow: results.filter((r) => r.trippedNow).map((r) => r.state),
        };
      },
      recordKpi: (req) => {
        // One row: its audit event, which also ships to central's fleet KPI stream (kpiOutcomeOf).
        ctx.tripwires.recordKpi(req, actorOf(req.actor), ctx.clock.now());
        const p = ctx.tripwires.policy(req.domain, req.metric);
        if (!p) return { trippedNow: false };
        return evaluateWire(ctx, p, actorOf(req.actor), req.correlationId);
      },
      resetTripwire: (req) => {
        const p = knownPolicy(ctx, req.domain, req.metric);
        const series = ctx.tripwires.seriesState(p.domain, p.metric);
        if (!series.tripped && !series.dryRunTripped) {
          throw new ConnectError(
            `tripwire ${p.domain}/${p.metric} is not tripped: nothing to re-arm`,
            Code.FailedPrecondition,
          );
        }
        const now = ctx.clock.now();
        const armed = armWire(ctx, p, false);
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
        return { state: describeWire(ctx, p, armed) };
      },
      listTripwireEvents: (req) => {
        assertOwnTrail(ctx, req.sidecarId, req.pageToken);
        const limit = req.limit || 100;
        const events = readAuditEvents(ctx.db, {
          lever: "regression",
          actions: TRIPWIRE_EVENT_ACTIONS,
          subject: req.domain,
          afterSeq: Number(req.afterSeq),
          limit,
        }).map(tripwireEventOf);
        return eventPage(TripwireEventSchema, events, limit, ctx.settings.maxAnswerBytes);
      },
    },
    ["upsertPolicy", "resetTripwire"],
  );
}
