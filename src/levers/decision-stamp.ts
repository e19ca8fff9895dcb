/**
 * The stamp every decision carries: the policy revision it was made under and how stale that
 * policy may be. It has one home so that a sidecar following a central node changes what it
 * says (and when decisions must fail closed) in one place, not in every handler.
 */
import type { PolicyRevision } from "../store/policy-revision.js";

/** What a decision answer reports about the policy behind it. */
export interface DecisionStamp {
  /** The revision of the policies, go-live state and tripwires the decision was made under. */
  policyRevision: bigint;
  /** How long since the policy source was last heard from; 0 when this store is the source. */
  stalenessMs: bigint;
}

/** Where the stamp comes from: the store itself standalone, the sync follower when connected. */
export type DecisionStamps = () => DecisionStamp;

/** A standalone sidecar: its own store is the authority, so its policy is never stale. */
export function standaloneStamps(revision: PolicyRevision): DecisionStamps {
  return () => ({ policyRevision: revision.current(), stalenessMs: 0n });
}
