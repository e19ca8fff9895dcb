/**
 * What a connected sidecar keeps about central in its own store: the revision of central's
 * policy it applied (with that revision's digest), when central was last heard from, and the
 * tripwire trips acted on here that central has not yet recorded. Both survive a restart, so a
 * sidecar that comes back while central is away knows how stale it is and what it still owes.
 */
import type { LocalTrip } from "../../levers/decision-stamp.js";
import type { Db } from "../../store/database.js";

/** The revision of central's policy this store holds; revision 0 means none yet. */
export interface AppliedRecord {
  revision: bigint;
  digest: string;
  appliedMs: number;
  /** When central was last heard from (a change or a heartbeat), as last persisted. */
  heardMs: number;
}

/** A trip acted on here, as reported to central. */
export interface TripReport extends LocalTrip {
  /** The id central deduplicates retried reports by. */
  id: string;
  /** The revision that recorded it on central; null until central answered. */
  recordedRevision: bigint | null;
}

interface ReportRow {
  id: string;
  domain: string;
  metric: string;
  action: string;
  reason: string;
  tripped_ms: number;
  recorded_revision: bigint | null;
}

const NONE: AppliedRecord = Object.freeze({ revision: 0n, digest: "", appliedMs: 0, heardMs: 0 });

/** The applied revision and the trip reports, read and written inside the apply transaction. */
export class AppliedRevision {
  private readonly s;
  private kept: AppliedRecord | undefined;

  constructor(private readonly db: Db) {
    this.s = {
      read: db
        .prepare<[], { revision: bigint; digest: string; applied_ms: number; heard_ms: number }>(
          "SELECT revision, digest, applied_ms, heard_ms FROM central_sync WHERE id = 1",
        )
        .safeIntegers(false),
      write: db.prepare(
        `INSERT INTO central_sync (id, revision, digest, applied_ms, heard_ms)
         VALUES (1, @revision, @digest, @appliedMs, @heardMs)
         ON CONFLICT (id) DO UPDATE SET revision = excluded.revision, digest = excluded.digest,
          applied_ms = excluded.applied_ms, heard_ms = excluded.heard_ms`,
      ),
      heard: db.prepare("UPDATE central_sync SET heard_ms = ? WHERE id = 1"),
      addReport: db.prepare(
        `INSERT INTO central_trip_report (id, domain, metric, action, reason, tripped_ms, recorded_revision)
         VALUES (@id, @domain, @metric, @action, @reason, @trippedMs, NULL)`,
      ),
      reports: db
        .prepare<[], ReportRow>("SELECT * FROM central_trip_report ORDER BY tripped_ms, id")
        .safeIntegers(true),
      recorded: db.prepare("UPDATE central_trip_report SET recorded_revision = ? WHERE id = ?"),
      settled: db.prepare(
        "DELETE FROM central_trip_report WHERE recorded_revision IS NOT NULL AND recorded_revision <= ?",
      ),
    };
  }

  /** The applied revision (revision 0 before the first snapshot). */
  get(): AppliedRecord {
    if (this.kept) return this.kept;
    const row = this.s.read.get();
    const record = row
      ? {
          revision: BigInt(row.revision),
          digest: row.digest,
          appliedMs: row.applied_ms,
          heardMs: row.heard_ms,
        }
      : NONE;
    // Kept only outside a transaction: a rolled-back apply must not be remembered.
    if (!this.db.inTransaction) this.kept = record;
    return record;
  }

  /** Records a revision as applied (inside the transaction that applied it). */
  applied(revision: bigint, digest: string, nowMs: number): void {
    this.s.write.run({ revision, digest, appliedMs: nowMs, heardMs: nowMs });
    this.kept = undefined;
    this.s.settled.run(revision);
  }

  /** Persists when central was last heard from (throttled by the caller). */
  heard(nowMs: number): void {
    this.s.heard.run(nowMs);
    this.kept = undefined;
  }

  /** Queues a trip for central (inside the trip's transaction). */
  addReport(report: LocalTrip & { id: string }): void {
    this.s.addReport.run({ ...report });
  }

  /** Every trip central has not yet sent back as applied here. */
  reports(): TripReport[] {
    return this.s.reports.all().map((r) => ({
      id: r.id,
      domain: r.domain,
      metric: r.metric,
      action: r.action === "KILL_SWITCH" ? "KILL_SWITCH" : "THROTTLE",
      reason: r.reason,
      trippedMs: Number(r.tripped_ms),
      correlationId: r.id,
      recordedRevision: r.recorded_revision,
    }));
  }

  /** Notes the revision central recorded a report under. */
  recorded(id: string, revision: bigint): void {
    this.s.recorded.run(revision, id);
  }
}
