/**
 * A connected sidecar's follower of central: it watches central's policy (a snapshot, then
 * every change with its revision, and heartbeats), applies each revision in one transaction
 * with the revision itself, and acks it, or NACKs it and keeps deciding from the last revision
 * it applied. It is the policy source of the sidecar's levers: every decision is stamped with
 * the applied revision and the time since central was last heard from, and past the staleness
 * bound (or before the first snapshot) production fails closed. Trips acted on here are
 * queued in the store and reported to central until it has recorded them, and the audit trail
 * is shipped to central by its event shipper.
 */
import { EventEmitter } from "node:events";
import type { Logger } from "pino";
import type { WatchResponse } from "../../../gen/governance/v1/sync_pb.js";
import type { Clock } from "../../clock.js";
import type { LeverContext } from "../../levers/context.js";
import type { PolicySource } from "../../levers/decision-stamp.js";
import type { Db } from "../../store/database.js";
import type { CentralConnection } from "../tls/client-credentials.js";
import { AppliedRevision } from "./applied-revision.js";
import { type ChangeCheck, checkChange } from "./change-order.js";
import { EventShipper, type OutboxStatus } from "./event-shipper.js";
import { applyChange, applySnapshot, type HeldRearm } from "./policy-apply.js";
import { PolicyFreshness } from "./policy-freshness.js";
import { centralLabel, SyncClient } from "./sync-client.js";
import { TrailRetention } from "./trail-retention.js";
import { TripReports } from "./trip-reports.js";
import { WatchConnection } from "./watch-connection.js";

/** How a sidecar follows central. */
export interface FollowerOptions {
  db: Db;
  clock: Clock;
  logger: Logger;
  /** Central's addresses, tried in turn (replicas). */
  endpoints: readonly CentralConnection[];
  sidecarId: string;
  /** The engines this sidecar serves, for the fleet view. */
  engines: readonly string[];
  /** Past this long without word from central, PROD and PROD_EXEC fail closed. */
  staleAfterMs: number;
  /** Sent as a bearer token on ReportTrip when central asks operators for one. */
  token?: string;
  /** A stream silent this long (no change, no heartbeat) is dropped and reopened (default 3 s). */
  silenceMs?: number;
  /** First and longest wait between reconnect attempts (defaults 100 ms and 5 s), with jitter. */
  reconnectMs?: number;
  maxReconnectMs?: number;
  /** Events per shipment to central at most (default 500). */
  shipBatchEvents?: number;
  /** How long a shipment that is not full waits for more events (default 200 ms). */
  shipLingerMs?: number;
  /** Acked events older than this are pruned (`--retain-shipped`); absent: kept for ever. */
  retainShippedMs?: number;
  /** How often it looks for events to prune (default 60 s). */
  retainEveryMs?: number;
}

/** What the follower says about itself (logs, tests, /readyz). */
export interface FollowerStatus {
  connected: boolean;
  address: string;
  appliedRevision: bigint;
  heardMs: number;
  lastNack?: { revision: bigint; error: string };
}

/** Follows central's policy for one sidecar store. Emits "freshness" when staleness flips. */
export class CentralFollower extends EventEmitter {
  readonly applied: AppliedRevision;
  private readonly freshness: PolicyFreshness;
  private ctx: LeverContext | undefined;
  private runNow: (<T>(work: () => T) => T) | undefined;
  private readonly clients: SyncClient[];
  private readonly watch: WatchConnection;
  private lastNack: { revision: bigint; error: string } | undefined;
  private wantSnapshot = false;
  private readonly reports: TripReports;
  private shipper: EventShipper | undefined;
  private retention: TrailRetention | undefined;

  constructor(private readonly o: FollowerOptions) {
    super();
    if (o.endpoints.length === 0) throw new Error("a follower needs at least one central address");
    this.applied = new AppliedRevision(o.db);
    this.freshness = new PolicyFreshness({
      applied: this.applied,
      clock: o.clock,
      staleAfterMs: o.staleAfterMs,
      where: () => o.endpoints.map(centralLabel).join(", "),
      onFlip: (stale) => this.emit("freshness", stale),
      onPersistFailed: (err) =>
        o.logger.warn({ error: err.message }, "could not persist last heard"),
    });
    this.clients = o.endpoints.map((e) => new SyncClient(e, o.token));
    this.watch = new WatchConnection({
      ...o,
      clients: this.clients,
      from: () => (this.wantSnapshot ? undefined : this.applied.get()),
      onConnected: () => this.reports.flush(),
      onMessage: (client, m) => this.receive(client, m),
    });
    this.reports = new TripReports({
      applied: this.applied,
      sidecarId: o.sidecarId,
      logger: o.logger,
      client: () => this.watch.client(),
      // Central's later word was overridden here while a report was unanswered: a snapshot.
      onAnsweredBehind: () => {
        this.wantSnapshot = true;
        this.watch.drop();
      },
    });
  }

  /** The levers' policy source: central's applied revision, staleness and the trip outbox. */
  source(): PolicySource {
    return {
      stamp: () => ({
        policyRevision: this.applied.get().revision,
        stalenessMs: BigInt(this.freshness.ageMs()),
      }),
      staleBecause: () => this.freshness.staleBecause(),
      freshness: () => this.freshness.freshness(),
      tripped: (trip) => this.reports.tripped(trip),
    };
  }

  /** Why production must fail closed now; undefined while central's policy is fresh. */
  staleBecause(): string | undefined {
    return this.freshness.staleBecause();
  }

  /** Where it stands. */
  status(): FollowerStatus {
    return {
      connected: this.watch.isConnected(),
      address: this.watch.client().label,
      appliedRevision: this.applied.get().revision,
      heardMs: this.freshness.lastHeardMs,
      lastNack: this.lastNack,
    };
  }

  /**
   * Gives the follower the levers to apply to and the store's transaction runner, and (when
   * given) what resolves once the open batch of calls has committed; starts it.
   */
  start(ctx: LeverContext, runNow: <T>(work: () => T) => T, settled?: () => Promise<void>): void {
    this.ctx = ctx;
    this.runNow = runNow;
    this.watch.start();
    this.freshness.start();
    this.reports.start(ctx, runNow);
    this.shipper = new EventShipper(
      {
        ...this.o,
        batchEvents: this.o.shipBatchEvents,
        lingerMs: this.o.shipLingerMs,
        onAcked: (seq) => this.retention?.acked(seq),
      },
      () => this.watch.client(),
      runNow,
      settled,
    );
    this.shipper.start();
    if (this.o.retainShippedMs !== undefined) {
      this.retention = new TrailRetention(
        { ...this.o, retainMs: this.o.retainShippedMs, everyMs: this.o.retainEveryMs },
        runNow,
      );
      this.retention.start();
    }
  }

  /** Told after each commit of the sidecar's store: events may be waiting to be shipped. */
  committed(): void {
    this.shipper?.committed();
  }

  /** The events central has not acked yet (undefined before start). */
  outbox(): OutboxStatus | undefined {
    return this.shipper?.status();
  }

  /** Stops following: the stream is cancelled and the channels closed. */
  stop(): void {
    this.shipper?.stop();
    this.retention?.stop();
    this.reports.stop();
    this.freshness.stop();
    this.watch.stop();
    for (const c of this.clients) c.close();
    for (const e of this.o.endpoints) e.close();
  }

  /**
   * Central was heard from. `applying`: a change or snapshot follows, whose transaction writes
   * the time with the revision, so it needs no transaction of its own.
   */
  private heard(applying = false): void {
    this.freshness.heard(applying ? undefined : this.runNow);
  }

  private receive(client: SyncClient, m: WatchResponse): void {
    const msg = m.message;
    if (msg.case === "heartbeat") {
      this.heard();
      return;
    }
    if (msg.case === "fleetEvidence") {
      // The other sidecars' trials, in memory only: the Heimdall gates add them to this store's.
      this.ctx?.fleetEvidence.replace(msg.value.otherSidecars, this.o.clock.now());
      return;
    }
    if (msg.case === "snapshot") {
      this.heard(true);
      const s = msg.value;
      this.commit(client, s.revision, s.digest, "snapshot", (ctx, owed, now, held) =>
        applySnapshot(ctx, s, owed, now, held),
      );
      return;
    }
    if (msg.case !== "change") return;
    const change = msg.value;
    const check: ChangeCheck = checkChange(this.applied.get(), change);
    if (check.kind === "replayed") {
      this.o.logger.warn({ revision: change.revision }, check.error);
      this.heard();
      return;
    }
    if (check.kind === "refused") {
      this.o.logger.error({ revision: change.revision }, check.error);
      this.nack(client, change.revision, change.digest, check.error);
      // Ask again from what this store holds: central resends, or sends a snapshot (and for a
      // snapshot still, when one was wanted already).
      this.wantSnapshot ||= check.resync;
      this.watch.drop();
      return;
    }
    this.heard(true);
    this.commit(client, change.revision, change.digest, "change", (ctx, owed, now, held) =>
      applyChange(ctx, change, owed, now, held),
    );
  }

  private commit(
    client: SyncClient,
    revision: bigint,
    digest: string,
    kind: "snapshot" | "change",
    apply: (
      ctx: LeverContext,
      owed: ReturnType<AppliedRevision["reports"]>,
      now: number,
      held: HeldRearm[],
    ) => string,
  ): void {
    const ctx = this.ctx;
    const runNow = this.runNow;
    if (!ctx || !runNow) return;
    const held = this.reports.heldForApply(kind);
    let overOwed = false;
    try {
      const summary = runNow(() => {
        const now = this.o.clock.now();
        const owed = this.applied.reports();
        overOwed = owed.some((r) => r.recordedRevision === null);
        const line = apply(ctx, owed, now, held);
        this.applied.applied(revision, digest, now);
        ctx.audit.append(
          {
            lever: "sync",
            action: kind === "snapshot" ? "APPLY_SNAPSHOT" : "APPLY_CHANGE",
            subject: `revision ${revision}`,
            ok: true,
            reason: line,
            actor: `central:${client.label}`,
            correlationId: `revision-${revision}-${digest.slice(0, 16)}`,
          },
          now,
        );
        return line;
      });
      this.reports.applied(kind, held, overOwed);
      this.wantSnapshot = false;
      this.watch.resetBackoff();
      this.lastNack = undefined;
      // The apply wrote the time heard with the revision.
      this.freshness.persistedWithApply();
      // Acked first: central (and an operator's --wait) waits for it, the log line does not.
      client.ackOnStream({ sidecarId: this.o.sidecarId, revision, digest }, (err, ack) => {
        this.o.logger.warn({ revision: ack.revision, error: err.message }, "ack to central failed");
      });
      this.o.logger.info({ revision, summary }, "applied central's revision");
      this.freshness.arm();
    } catch (err) {
      const error = `could not apply revision ${revision} (${kind}): ${(err as Error).message}`;
      this.o.logger.error({ revision }, error);
      this.nack(client, revision, digest, error);
      // A later change cannot apply on top of a refused one: ask for a snapshot now. Left open,
      // the stream's next change would be refused as a gap, which asks from the applied
      // revision and so gets the unappliable change again instead of a snapshot.
      this.wantSnapshot = true;
      this.watch.drop();
    }
  }

  private nack(client: SyncClient, revision: bigint, digest: string, error: string): void {
    this.lastNack = { revision, error };
    client
      .ack({ sidecarId: this.o.sidecarId, revision, digest, error: error.slice(0, 1024) })
      .catch((err: Error) => this.o.logger.warn({ error: err.message }, "NACK to central failed"));
  }
}
