/** What every lever's handlers are given: the store, the clock and the shared records. */
import type { Clock } from "../clock.js";
import { AuditLog } from "../store/audit-log.js";
import type { Db } from "../store/database.js";
import { PolicyRevision } from "../store/policy-revision.js";
import { type DecisionStamp, type DecisionStamps, standaloneStamps } from "./decision-stamp.js";
import { GoLiveState } from "./golive/golive-state.js";
import { SandboxEvidence } from "./heimdall/sandbox-evidence.js";
import { Tripwires } from "./regression/tripwires.js";
import { RiskBook } from "./risk/risk-book.js";

/** Tunables with sane defaults. */
export interface LeverSettings {
  /** An unsettled reservation is released after this long unless the request says otherwise. */
  reservationTtlMs: number;
  /** List answers are cut into pages of at most this many bytes (below the message limit). */
  maxAnswerBytes: number;
}

/** The defaults: reservations live 15 minutes; answers stay well under the 1 MiB message limit. */
export const DEFAULT_SETTINGS: LeverSettings = {
  reservationTtlMs: 15 * 60_000,
  maxAnswerBytes: 900 * 1024,
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
  goLive: GoLiveState;
  risk: RiskBook;
  evidence: SandboxEvidence;
  tripwires: Tripwires;
}

/** Builds the lever context over a migrated store; `stamps` defaults to a standalone sidecar's. */
export function createLeverContext(
  db: Db,
  clock: Clock,
  settings: Partial<LeverSettings> = {},
  stamps?: (revision: PolicyRevision) => DecisionStamps,
): LeverContext {
  const revision = new PolicyRevision(db);
  return {
    db,
    clock,
    settings: { ...DEFAULT_SETTINGS, ...settings },
    audit: new AuditLog(db),
    revision,
    stamp: (stamps ?? standaloneStamps)(revision),
    goLive: new GoLiveState(db),
    risk: new RiskBook(db),
    evidence: new SandboxEvidence(db),
    tripwires: new Tripwires(db),
  };
}
