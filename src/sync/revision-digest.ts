/**
 * The digest chain of central's revision log. Central computes each revision's digest when it
 * commits the change; a following sidecar recomputes it from the change it received, so both
 * sides can tell whether they hold the same history (see SyncService in sync.proto).
 */
import { createHash } from "node:crypto";
import { toBinary } from "@bufbuild/protobuf";
import { GoLiveStateSchema } from "../../gen/governance/v1/golive_pb.js";
import { HeimdallPolicySchema } from "../../gen/governance/v1/heimdall_pb.js";
import { RegressionPolicySchema } from "../../gen/governance/v1/regression_pb.js";
import { RiskPolicySchema } from "../../gen/governance/v1/risk_pb.js";
import { type PolicyChange, TripwireTripSchema } from "../../gen/governance/v1/sync_pb.js";

/**
 * The digest of a revision: hex SHA-256 over the previous revision's digest (its 64 hex
 * characters as ASCII; "" for revision 1) followed by the change's entity bytes (the protobuf
 * binary of the entity message: GoLiveState, RiskPolicy, HeimdallPolicy, RegressionPolicy or
 * TripwireTrip).
 */
export function revisionDigest(previousDigest: string, entityBytes: Uint8Array): string {
  return createHash("sha256").update(previousDigest, "latin1").update(entityBytes).digest("hex");
}

/** The entity bytes of a change as `revisionDigest` hashes them (protobuf binary of the entity). */
export function changeEntityBytes(change: PolicyChange): Uint8Array {
  const e = change.entity;
  switch (e.case) {
    case "goLive":
      return toBinary(GoLiveStateSchema, e.value);
    case "riskPolicy":
      return toBinary(RiskPolicySchema, e.value);
    case "heimdallPolicy":
      return toBinary(HeimdallPolicySchema, e.value);
    case "regressionPolicy":
      return toBinary(RegressionPolicySchema, e.value);
    case "tripwireTrip":
      return toBinary(TripwireTripSchema, e.value);
    default:
      throw new Error(`change of revision ${change.revision} carries no entity`);
  }
}
