/**
 * A connected sidecar's trips on their way to central: each trip acted on here is queued in
 * the store (in the trip's own transaction) and reported until central has recorded it under
 * a revision. Central's re-arms that arrive before its answer are held until the answer says
 * whether they came after the trip (see HeldRearm); a revision applied while a report was
 * unanswered may have kept the trip over central's word, and an answer naming an earlier
 * revision asks the follower for a snapshot, which settles it.
 */
import { randomUUID } from "node:crypto";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { Logger } from "pino";
import { TripwireAction } from "../../../gen/governance/v1/regression_pb.js";
import type { LeverContext } from "../../levers/context.js";
import type { LocalTrip } from "../../levers/decision-stamp.js";
import type { AppliedRevision } from "./applied-revision.js";
import { type HeldRearm, releaseHeldRearms } from "./policy-apply.js";
import type { SyncClient } from "./sync-client.js";

/** What the reporter needs of its follower. */
export interface TripReportDeps {
  applied: AppliedRevision;
  sidecarId: string;
  logger: Logger;
  /** The channel to central now. */
  client: () => SyncClient;
  /** Central answered with a revision before one applied under the unanswered report. */
  onAnsweredBehind: () => void;
}

/** How long a failed report waits before it is sent again. */
const RETRY_MS = 1_000;

/** Reports this sidecar's trips to central and holds the re-arms that wait for its answers. */
export class TripReports {
  private ctx: LeverContext | undefined;
  private runNow: (<T>(work: () => T) => T) | undefined;
  private stopped = true;
  private reporting = false;
  private retry: NodeJS.Timeout | undefined;
  /** Central's re-arms held back until it answers this sidecar's report (see HeldRearm). */
  private held: HeldRearm[] = [];
  /**
   * A revision was applied while a trip report of this sidecar's was unanswered, so the trip
   * (and its kill switch) may have been held over what central said then.
   */
  private appliedOverOwed = false;

  constructor(private readonly d: TripReportDeps) {}

  /** Starts reporting (what the store still owes central goes at once). */
  start(ctx: LeverContext, runNow: <T>(work: () => T) => T): void {
    this.ctx = ctx;
    this.runNow = runNow;
    this.stopped = false;
    this.flush();
  }

  /** Stops reporting; what is unreported stays queued in the store for the next start. */
  stop(): void {
    this.stopped = true;
    if (this.retry) clearTimeout(this.retry);
  }

  /** Queues a trip for central (inside the trip's transaction) and sends it once committed. */
  tripped(trip: LocalTrip): void {
    this.d.applied.addReport({ ...trip, id: randomUUID() });
    setImmediate(() => this.flush());
  }

  /**
   * The held re-arms an apply of `kind` starts from: a copy, kept by `applied` only if its
   * transaction commits; a snapshot starts with none.
   */
  heldForApply(kind: "snapshot" | "change"): HeldRearm[] {
    return kind === "snapshot" ? [] : [...this.held];
  }

  /** Takes what a committed apply left: its held re-arms, and whether reports were owed. */
  applied(kind: "snapshot" | "change", held: HeldRearm[], owedReports: boolean): void {
    this.held = held;
    this.appliedOverOwed = owedReports || (kind !== "snapshot" && this.appliedOverOwed);
  }

  /** Sends every trip central has not yet recorded, retrying until it has. */
  flush(): void {
    if (this.reporting || this.stopped || !this.runNow) return;
    const pending = this.d.applied.reports().filter((r) => r.recordedRevision === null);
    if (pending.length === 0) return;
    this.reporting = true;
    const client = this.d.client();
    const send = async () => {
      for (const r of pending) {
        const answer = await client.reportTrip({
          sidecarId: this.d.sidecarId,
          domain: r.domain,
          metric: r.metric,
          action: r.action === "KILL_SWITCH" ? TripwireAction.KILL_SWITCH : TripwireAction.THROTTLE,
          reason: r.reason.slice(0, 1024),
          trippedAt: timestampFromMs(r.trippedMs),
          correlationId: r.id,
        });
        const ctx = this.ctx;
        const kept = this.runNow?.(() => {
          this.d.applied.recorded(r.id, answer.revision);
          if (!ctx) return this.held;
          return releaseHeldRearms(ctx, this.held, this.d.applied.reports(), r, answer.revision);
        });
        if (kept) this.held = kept;
        if (this.appliedOverOwed && answer.revision < this.d.applied.get().revision) {
          // Central's revisions after the trip were applied under the unanswered report: a
          // snapshot, whose apply no longer holds the trip over them, settles it.
          this.appliedOverOwed = false;
          this.d.onAnsweredBehind();
        }
      }
    };
    send().then(
      () => {
        this.reporting = false;
        this.flush();
      },
      (err: Error) => {
        this.reporting = false;
        this.d.logger.warn({ error: err.message }, "trip report to central failed; retrying");
        if (!this.stopped) this.retry = setTimeout(() => this.flush(), RETRY_MS);
      },
    );
  }
}
