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
import { randomUUID } from "node:crypto";
import { EventEmitter } from "node:events";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type * as grpc from "@grpc/grpc-js";
import type { Logger } from "pino";
import { TripwireAction } from "../../../gen/governance/v1/regression_pb.js";
import type { WatchResponse } from "../../../gen/governance/v1/sync_pb.js";
import type { Clock } from "../../clock.js";
import type { LeverContext } from "../../levers/context.js";
import type { LocalTrip, PolicySource } from "../../levers/decision-stamp.js";
import type { Db } from "../../store/database.js";
import type { CentralConnection } from "../tls/client-credentials.js";
import { AppliedRevision } from "./applied-revision.js";
import { type ChangeCheck, checkChange } from "./change-order.js";
import { EventShipper, type OutboxStatus } from "./event-shipper.js";
import { applyChange, applySnapshot, type HeldRearm, releaseHeldRearms } from "./policy-apply.js";
import { centralLabel, SyncClient } from "./sync-client.js";
import { TrailRetention } from "./trail-retention.js";

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

/**
 * How long to wait before the reconnect after `attempt` failed ones in a row: a random time up
 * to `firstMs` doubled per attempt, at most `maxMs` (full jitter), so sidecars that lost central
 * together do not come back in step.
 */
export function reconnectDelayMs(
  attempt: number,
  firstMs = 100,
  maxMs = 5_000,
  random: () => number = Math.random,
): number {
  return random() * Math.min(firstMs * 2 ** attempt, maxMs);
}

/** How often "last heard" is persisted at most (a restart overstates staleness by this at most). */
const PERSIST_HEARD_MS = 5_000;

/** Follows central's policy for one sidecar store. Emits "freshness" when staleness flips. */
export class CentralFollower extends EventEmitter {
  readonly applied: AppliedRevision;
  private heardMs: number;
  private persistedHeardMs: number;
  private ctx: LeverContext | undefined;
  private runNow: (<T>(work: () => T) => T) | undefined;
  private readonly clients: SyncClient[];
  private turn = 0;
  private call: grpc.ClientReadableStream<WatchResponse> | undefined;
  private connected = false;
  private attempt = 0;
  private stopped = true;
  private retry: NodeJS.Timeout | undefined;
  private watchdog: NodeJS.Timeout | undefined;
  private freshnessTimer: NodeJS.Timeout | undefined;
  private lastMessageAt = 0;
  private wasStale: boolean | undefined;
  private lastNack: { revision: bigint; error: string } | undefined;
  private wantSnapshot = false;
  /** Central's re-arms held back until it answers this sidecar's report (see HeldRearm). */
  private heldRearms: HeldRearm[] = [];
  /**
   * A revision was applied while a trip report of this sidecar's was unanswered, so the trip
   * (and its kill switch) may have been held over what central said then; an answer naming an
   * earlier revision means central's later word was overridden here: a snapshot settles it.
   */
  private appliedOverOwed = false;
  private reporting = false;
  private reportRetry: NodeJS.Timeout | undefined;
  private shipper: EventShipper | undefined;
  private retention: TrailRetention | undefined;

  constructor(private readonly o: FollowerOptions) {
    super();
    if (o.endpoints.length === 0) throw new Error("a follower needs at least one central address");
    this.applied = new AppliedRevision(o.db);
    this.heardMs = this.applied.get().heardMs;
    this.persistedHeardMs = this.heardMs;
    this.clients = o.endpoints.map((e) => new SyncClient(e, o.token));
  }

  /** The levers' policy source: central's applied revision, staleness and the trip outbox. */
  source(): PolicySource {
    return {
      stamp: () => {
        const revision = this.applied.get().revision;
        const age = this.heardMs === 0 ? 0 : Math.max(0, this.o.clock.now() - this.heardMs);
        return { policyRevision: revision, stalenessMs: BigInt(age) };
      },
      staleBecause: () => this.staleBecause(),
      freshness: () => ({
        policyStalenessMs: this.heardMs === 0 ? undefined : this.o.clock.now() - this.heardMs,
        maxStalenessMs: this.o.staleAfterMs,
      }),
      tripped: (trip) => this.tripped(trip),
    };
  }

  /** Why production must fail closed now; undefined while central's policy is fresh. */
  staleBecause(): string | undefined {
    const applied = this.applied.get();
    const where = () => this.o.endpoints.map(centralLabel).join(", ");
    if (applied.revision === 0n) {
      return `this sidecar follows central (${where()}) and has not received its policy yet: production is blocked until the first snapshot is applied`;
    }
    const age = this.o.clock.now() - this.heardMs;
    if (age <= this.o.staleAfterMs) return undefined;
    return `central (${where()}) not heard from for ${age} ms (bound ${this.o.staleAfterMs} ms): production is blocked until it is; decisions keep policy revision ${applied.revision}`;
  }

  /** Where it stands. */
  status(): FollowerStatus {
    return {
      connected: this.connected,
      address: this.clients[this.turn]?.label ?? "",
      appliedRevision: this.applied.get().revision,
      heardMs: this.heardMs,
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
    this.stopped = false;
    this.watchdog = setInterval(() => this.checkSilence(), 250);
    this.watchdog.unref();
    this.open();
    this.armFreshness();
    this.flushReports();
    this.shipper = new EventShipper(
      {
        ...this.o,
        batchEvents: this.o.shipBatchEvents,
        lingerMs: this.o.shipLingerMs,
        onAcked: (seq) => this.retention?.acked(seq),
      },
      () => this.clients[this.turn] as SyncClient,
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
    this.stopped = true;
    this.shipper?.stop();
    this.retention?.stop();
    for (const t of [this.retry, this.watchdog, this.freshnessTimer, this.reportRetry]) {
      if (t) clearTimeout(t);
    }
    this.call?.cancel();
    this.call = undefined;
    for (const c of this.clients) c.close();
    for (const e of this.o.endpoints) e.close();
  }

  private open(): void {
    if (this.stopped) return;
    const client = this.clients[this.turn] as SyncClient;
    const applied = this.wantSnapshot ? undefined : this.applied.get();
    const call = client.watch({
      sidecarId: this.o.sidecarId,
      appliedRevision: applied?.revision ?? 0n,
      appliedDigest: applied?.digest ?? "",
      engines: [...this.o.engines],
    });
    this.call = call;
    this.lastMessageAt = performance.now();
    call.on("data", (m: WatchResponse) => {
      if (this.call !== call) return;
      this.lastMessageAt = performance.now();
      if (!this.connected) {
        this.connected = true;
        // Not after a refused apply: a stream dropped for one must not come back at once, or a
        // snapshot this sidecar can never apply would be fetched again many times a second.
        if (!this.wantSnapshot) this.attempt = 0;
        this.o.logger.info({ central: client.label }, "following central");
        this.flushReports();
      }
      this.receive(client, m);
    });
    let lost = false;
    const reopen = (err?: Error) => {
      if (lost || this.call !== call) return;
      lost = true;
      this.call = undefined;
      if (this.connected) {
        this.o.logger.warn(
          { central: client.label, error: err?.message },
          "lost the Watch stream to central; reconnecting",
        );
      }
      this.connected = false;
      if (this.stopped) return;
      // The next replica in turn, after a backoff with full jitter; acks follow the Watch.
      this.turn = (this.turn + 1) % this.clients.length;
      if (this.clients.length > 1) client.endAcks();
      const wait = reconnectDelayMs(this.attempt, this.o.reconnectMs, this.o.maxReconnectMs);
      this.attempt = Math.min(this.attempt + 1, 20);
      this.retry = setTimeout(() => this.open(), wait);
    };
    call.on("error", reopen);
    call.on("end", () => reopen());
    call.on("status", () => undefined);
  }

  /** A stream silent past the bound is dropped (a frozen link sends no reset). */
  private checkSilence(): void {
    if (!this.call) return;
    if (performance.now() - this.lastMessageAt > (this.o.silenceMs ?? 3_000)) this.call.cancel();
  }

  /**
   * Central was heard from. `applying`: a change or snapshot follows, whose transaction writes
   * the time with the revision, so it needs no transaction of its own.
   */
  private heard(applying = false): void {
    const now = this.o.clock.now();
    this.heardMs = now;
    const persist =
      !applying &&
      now - this.persistedHeardMs >= PERSIST_HEARD_MS &&
      this.applied.get().revision > 0n;
    if (persist) {
      this.persistedHeardMs = now;
      try {
        this.runNow?.(() => this.applied.heard(now));
      } catch (err) {
        this.o.logger.warn({ error: (err as Error).message }, "could not persist last heard");
      }
    }
    this.armFreshness();
  }

  /** Tells listeners when staleness flips, now and at the moment the bound will pass. */
  private armFreshness(): void {
    const stale = this.staleBecause() !== undefined;
    if (stale !== this.wasStale) {
      this.wasStale = stale;
      this.emit("freshness", stale);
    }
    if (this.freshnessTimer) clearTimeout(this.freshnessTimer);
    if (stale || this.stopped) return;
    const due = this.heardMs + this.o.staleAfterMs + 1 - this.o.clock.now();
    this.freshnessTimer = setTimeout(() => this.armFreshness(), Math.max(due, 1));
    this.freshnessTimer.unref();
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
      this.call?.cancel();
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
    kind: string,
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
    // Changed on a copy, kept only if the transaction commits; a snapshot starts afresh.
    const held = kind === "snapshot" ? [] : [...this.heldRearms];
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
      this.heldRearms = held;
      this.appliedOverOwed = overOwed || (kind !== "snapshot" && this.appliedOverOwed);
      this.wantSnapshot = false;
      this.attempt = 0;
      this.lastNack = undefined;
      // The apply wrote the time heard with the revision.
      this.persistedHeardMs = this.heardMs;
      // Acked first: central (and an operator's --wait) waits for it, the log line does not.
      client.ackOnStream({ sidecarId: this.o.sidecarId, revision, digest }, (err, ack) => {
        this.o.logger.warn({ revision: ack.revision, error: err.message }, "ack to central failed");
      });
      this.o.logger.info({ revision, summary }, "applied central's revision");
      this.armFreshness();
    } catch (err) {
      const error = `could not apply revision ${revision} (${kind}): ${(err as Error).message}`;
      this.o.logger.error({ revision }, error);
      this.nack(client, revision, digest, error);
      // A later change cannot apply on top of a refused one: ask for a snapshot now. Left open,
      // the stream's next change would be refused as a gap, which asks from the applied
      // revision and so gets the unappliable change again instead of a snapshot.
      this.wantSnapshot = true;
      this.call?.cancel();
    }
  }

  private nack(client: SyncClient, revision: bigint, digest: string, error: string): void {
    this.lastNack = { revision, error };
    client
      .ack({ sidecarId: this.o.sidecarId, revision, digest, error: error.slice(0, 1024) })
      .catch((err: Error) => this.o.logger.warn({ error: err.message }, "NACK to central failed"));
  }

  /** Queues a trip for central (inside the trip's transaction) and sends it once committed. */
  private tripped(trip: LocalTrip): void {
    this.applied.addReport({ ...trip, id: randomUUID() });
    setImmediate(() => this.flushReports());
  }

  /** Sends every trip central has not yet recorded, retrying until it has. */
  private flushReports(): void {
    if (this.reporting || this.stopped || !this.runNow) return;
    const pending = this.applied.reports().filter((r) => r.recordedRevision === null);
    if (pending.length === 0) return;
    this.reporting = true;
    const client = this.clients[this.turn] as SyncClient;
    const send = async () => {
      for (const r of pending) {
        const answer = await client.reportTrip({
          sidecarId: this.o.sidecarId,
          domain: r.domain,
          metric: r.metric,
          action: r.action === "KILL_SWITCH" ? TripwireAction.KILL_SWITCH : TripwireAction.THROTTLE,
          reason: r.reason.slice(0, 1024),
          trippedAt: timestampFromMs(r.trippedMs),
          correlationId: r.id,
        });
        const ctx = this.ctx;
        const kept = this.runNow?.(() => {
          this.applied.recorded(r.id, answer.revision);
          if (!ctx) return this.heldRearms;
          return releaseHeldRearms(
            ctx,
            this.heldRearms,
            this.applied.reports(),
            r,
            answer.revision,
          );
        });
        if (kept) this.heldRearms = kept;
        if (this.appliedOverOwed && answer.revision < this.applied.get().revision) {
          // Central's revisions after the trip were applied under the unanswered report: ask
          // for a snapshot, whose apply no longer holds the trip over them.
          this.appliedOverOwed = false;
          this.wantSnapshot = true;
          this.call?.cancel();
        }
      }
    };
    send().then(
      () => {
        this.reporting = false;
        this.flushReports();
      },
      (err: Error) => {
        this.reporting = false;
        this.o.logger.warn({ error: err.message }, "trip report to central failed; retrying");
        if (!this.stopped) this.reportRetry = setTimeout(() => this.flushReports(), 1_000);
      },
    );
  }
}
