/**
 * Whether a change from central may be applied on top of what a sidecar holds: it must be the
 * next revision, and its digest must chain from the applied revision's digest (the same
 * history). A change already applied is a replay and is ignored; anything else is refused with
 * the reason, and changes nothing.
 */
import type { PolicyChange } from "../../../gen/governance/v1/sync_pb.js";
import { changeEntityBytes, revisionDigest } from "../revision-digest.js";
import type { AppliedRecord } from "./applied-revision.js";

/** The verdict on one change. */
export type ChangeCheck =
  | { kind: "apply" }
  | { kind: "replayed"; error: string }
  /** `resync`: the histories differ, so only a snapshot can bring the sidecar back. */
  | { kind: "refused"; error: string; resync: boolean };

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
  const expected = revisionDigest(applied.digest, changeEntityBytes(change));
  if (change.digest !== expected) {
    return {
      kind: "refused",
      error: `refused revision ${change.revision}: its digest does not chain from revision ${applied.revision}'s (central's history differs from this sidecar's)`,
      resync: true,
    };
  }
  return { kind: "apply" };
}
