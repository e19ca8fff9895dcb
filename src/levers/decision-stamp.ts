/**
 * The stamp every decision carries: the policy revision it was made under and how stale that
 * policy may be, and whether production must fail closed because of it. It has one home so
 * that a sidecar following a central node changes what it says (and when decisions must fail
 * closed) in one place, not in every handler.
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

/** A tripwire that tripped on this sidecar, as the policy source must hear of it. */
export interface LocalTrip {
  domain: string;
  metric: string;
  action: "THROTTLE" | "KILL_SWITCH";
  reason: string;
  trippedMs: number;
  correlationId: string;
}

/** The staleness figures the go-live checklist shows; both undefined standalone. */
export interface Freshness {
  policyStalenessMs?: number;
  maxStalenessMs?: number;
}

/** Where the levers learn the revision and freshness of their policy, and report trips to. */
export interface PolicySource {
  stamp: DecisionStamps;
  /** Why PROD and PROD_EXEC decisions must fail closed now; undefined while the policy is fresh. */
  staleBecause(): string | undefined;
  freshness(): Freshness;
  /**
   * A tripwire tripped here and acted locally; called inside the trip's transaction so that
   * what the source records for it commits or rolls back with the trip.
   */
  tripped(trip: LocalTrip): void;
}

/** A standalone sidecar's stamps: its own store is the authority, so its policy is never stale. */
export function standaloneStamps(revision: PolicyRevision): DecisionStamps {
  return () => ({ policyRevision: revision.current(), stalenessMs: 0n });
}

/** A standalone sidecar: its own store is the authority, never stale, and trips stay local. */
export function standaloneSource(revision: PolicyRevision): PolicySource {
  return {
    stamp: standaloneStamps(revision),
    staleBecause: () => undefined,
    freshness: () => ({}),
    tripped: () => undefined,
  };
}
