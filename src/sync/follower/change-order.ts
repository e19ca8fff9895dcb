/**
 * Whether a change from central may be applied on top of what a sidecar holds: it must be the
 * next revision, and its digest must chain from the applied revision's digest (the same
 * history). A change already applied is a replay and is ignored; anything else is refused with
 * the reason, and changes nothing.
 */
import { type DescMessage, toBinary } from "@bufbuild/protobuf";
import { GoLiveStateSchema } from "../../../gen/governance/v1/golive_pb.js";
import { HeimdallPolicySchema } from "../../../gen/governance/v1/heimdall_pb.js";
import { RegressionPolicySchema } from "../../../gen/governance/v1/regression_pb.js";
import { RiskPolicySchema } from "../../../gen/governance/v1/risk_pb.js";
import { type PolicyChange, TripwireTripSchema } from "../../../gen/governance/v1/sync_pb.js";
import { revisionDigest } from "../revision-digest.js";
import type { AppliedRecord } from "./applied-revision.js";

/** The verdict on one change. */
export type ChangeCheck =
  | { kind: "apply" }
  | { kind: "replayed"; error: string }
  /** `resync`: the histories differ, so only a snapshot can bring the sidecar back. */
  | { kind: "refused"; error: string; resync: boolean };

const SCHEMAS: Record<string, DescMessage> = {
  goLive: GoLiveStateSchema,
  riskPolicy: RiskPolicySchema,
  heimdallPolicy: HeimdallPolicySchema,
  regressionPolicy: RegressionPolicySchema,
  tripwireTrip: TripwireTripSchema,
};

/** The protobuf binary of a change's entity: what its digest covers. */
export function entityBytes(change: PolicyChange): Uint8Array {
  const e = change.entity;
  if (e.case === undefined) throw new Error("the change carries no entity");
  return toBinary(SCHEMAS[e.case] as DescMessage, e.value as never);
}

/** Checks a change against the applied revision. */
export function checkChange(applied: AppliedRecord, change: PolicyChange): ChangeCheck {
  const next = applied.revision + 1n;
  if (change.revision <= applied.revision) {
    return {
      kind: "replayed",
      error: `ignored revision ${change.revision}: revision ${applied.revision} is already applied`,
    };
  }
  if (applied.revision === 0n) {
    return {
      kind: "refused",
      error: `refused revision ${change.revision}: no snapshot has been applied yet`,
      resync: true,
    };
  }
  if (change.revision !== next) {
    return {
      kind: "refused",
      error: `refused revision ${change.revision}: out of order, revision ${next} comes next`,
      resync: false,
    };
  }
  if (change.entity.case === undefined) {
    return {
      kind: "refused",
      error: `refused revision ${change.revision}: the change carries no entity`,
      resync: false,
    };
  }
  const expected = revisionDigest(applied.digest, entityBytes(change));
  if (change.digest !== expected) {
    return {
      kind: "refused",
      error: `refused revision ${change.revision}: its digest does not chain from revision ${applied.revision}'s (central's history differs from this sidecar's)`,
      resync: true,
    };
  }
  return { kind: "apply" };
}
