/**
 * A tripwire policy from an UpsertPolicy request: defaults filled in and the SEQUENTIAL design
 * checked. Pure, so a sidecar and central accept exactly the same policies.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import {
  type RegressionServiceUpsertPolicyRequest,
  TripwireAction,
  TripwireMethod,
} from "../../../gen/governance/v1/regression_pb.js";
import { designCusum } from "./bernoulli-cusum.js";
import type { TripwirePolicy } from "./tripwires.js";

/**
 * In-control events expected between false alarms at the frozen baseline when a SEQUENTIAL
 * policy gives none: conservative, since an automatic action that fires falsely gets disabled.
 */
export const DEFAULT_FALSE_ALARM_EVENTS = 100_000;

/**
 * The fields a tripwire policy is made from: an UpsertPolicy request's, or those of a
 * RegressionPolicy message central sent (with its `updated_by` as the actor).
 */
export type TripwirePolicyFields = Pick<
  RegressionServiceUpsertPolicyRequest,
  | "domain"
  | "metric"
  | "method"
  | "windowEvents"
  | "baselineEvents"
  | "minEventsToEnforce"
  | "maxDropFraction"
  | "expectedEventsBetweenFalseAlarms"
  | "baselineRate"
  | "action"
  | "throttleTargets"
  | "enabled"
  | "dryRun"
  | "actor"
>;

/** The policy an upsert asks for, stamped `updatedMs`; INVALID_ARGUMENT when it cannot work. */
export function tripwirePolicyOf(req: TripwirePolicyFields, updatedMs: number): TripwirePolicy {
  const record: TripwirePolicy = {
    domain: req.domain,
    metric: req.metric,
    method: req.method === TripwireMethod.SEQUENTIAL ? "SEQUENTIAL" : "RELATIVE_DROP",
    windowEvents: req.windowEvents,
    baselineEvents: req.baselineEvents,
    minEventsToEnforce: req.minEventsToEnforce || req.windowEvents + req.baselineEvents,
    maxDropFraction: req.maxDropFraction,
    falseAlarmEvents: req.expectedEventsBetweenFalseAlarms || DEFAULT_FALSE_ALARM_EVENTS,
    baselineRate: req.baselineRate,
    action: req.action === TripwireAction.KILL_SWITCH ? "KILL_SWITCH" : "THROTTLE",
    throttleTargets: [...req.throttleTargets],
    enabled: req.enabled,
    dryRun: req.dryRun,
    updatedBy: req.actor,
    updatedMs,
  };
  if (record.method === "SEQUENTIAL" && record.falseAlarmEvents < 10) {
    throw new ConnectError(
      "invalid request: expected_events_between_false_alarms: must be at least 10 for a SEQUENTIAL wire",
      Code.InvalidArgument,
    );
  }
  if (record.method === "SEQUENTIAL" && record.baselineRate > 0) {
    try {
      designCusum(
        record.baselineRate,
        record.baselineRate * (1 - record.maxDropFraction),
        record.falseAlarmEvents,
      );
    } catch (err) {
      throw new ConnectError(`invalid request: ${(err as Error).message}`, Code.InvalidArgument);
    }
  }
  return record;
}
