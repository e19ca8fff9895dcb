/** What every lever's handlers are given: the store, the clock and the shared records. */
import type { Clock } from "../clock.js";
import { AuditLog } from "../store/audit-log.js";
import type { Db } from "../store/database.js";
import { PolicyRevision } from "../store/policy-revision.js";
import {
  type DecisionStamp,
  type Freshness,
  type LocalTrip,
  type PolicySource,
  standaloneSource,
} from "./decision-stamp.js";
import { GoLiveState } from "./golive/golive-state.js";
import { FleetEvidence } from "./heimdall/fleet-evidence.js";
import { SandboxEvidence } from "./heimdall/sandbox-evidence.js";
import { Tripwires } from "./regression/tripwires.js";
import { RiskBook } from "./risk/risk-book.js";

/** Tunables with sane defaults. */
export interface LeverSettings {
  /** An unsettled reservation is released after this long unless the request says otherwise. */
  reservationTtlMs: number;
  /** List answers are cut into pages of at most this many bytes (below the message limit). */
  maxAnswerBytes: number;
  /** How often a WatchGoLive stream sends a heartbeat when nothing changed. */
  watchHeartbeatMs: number;
}

/**
 * The defaults: reservations live 15 minutes; answers stay well under the 1 MiB message limit;
 * WatchGoLive beats every second.
 */
export const DEFAULT_SETTINGS: LeverSettings = {
  reservationTtlMs: 15 * 60_000,
  maxAnswerBytes: 900 * 1024,
  watchHeartbeatMs: 1_000,
};

/** Shared state the four levers read and write; one per open store. */
export interface LeverContext {
  db: Db;
  clock: Clock;
  settings: LeverSettings;
  audit: AuditLog;
  revision: PolicyRevision;
  /** The policy revision and staleness every decision answer carries. */
  stamp: () => DecisionStamp;
  /** Why production must fail closed now (policy stale); undefined while fresh. */
  staleBecause: () => string | undefined;
  /** The staleness figures the go-live checklist shows. */
  freshness: () => Freshness;
  /** Tells the policy source a tripwire tripped here (inside the trip's transaction). */
  tripped: (trip: LocalTrip) => void;
  goLive: GoLiveState;
  risk: RiskBook;
  evidence: SandboxEvidence;
  /**
   * The other sidecars' sandbox evidence, in memory: filled by a connected sidecar's follower
   * from central, always empty on a standalone sidecar.
   */
  fleetEvidence: FleetEvidence;
  tripwires: Tripwires;
}

/**
 * Builds the lever context over a migrated store; `source` defaults to a standalone sidecar's
 * (its own store is the authority; a connected sidecar's follower is the other source).
 */
export function createLeverContext(
  db: Db,
  clock: Clock,
  settings: Partial<LeverSettings> = {},
  source?: (revision: PolicyRevision) => PolicySource,
): LeverContext {
  const revision = new PolicyRevision(db);
  const policy = (source ?? standaloneSource)(revision);
  return {
    db,
    clock,
    settings: { ...DEFAULT_SETTINGS, ...settings },
    audit: new AuditLog(db),
    revision,
    stamp: policy.stamp,
    staleBecause: () => policy.staleBecause(),
    freshness: () => policy.freshness(),
    tripped: (trip) => policy.tripped(trip),
    goLive: new GoLiveState(db),
    risk: new RiskBook(db),
    evidence: new SandboxEvidence(db),
    fleetEvidence: new FleetEvidence(),
    tripwires: new Tripwires(db),
  };
}
