/**
 * A connected sidecar's Watch stream to central: one replica at a time, the next in turn after
 * the stream is lost, each reconnect after a backoff with full jitter (doubling, capped), and a
 * silence watchdog that drops a stream on which nothing came for too long (a frozen link sends
 * no reset). What the stream carries is the follower's to handle.
 */
import type * as grpc from "@grpc/grpc-js";
import type { Logger } from "pino";
import type { WatchResponse } from "../../../gen/governance/v1/sync_pb.js";
import type { SyncClient } from "./sync-client.js";

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

/** How a Watch connection is made and what it tells its follower. */
export interface WatchConnectionDeps {
  /** One client per replica of central, tried in turn. */
  clients: readonly SyncClient[];
  sidecarId: string;
  engines: readonly string[];
  logger: Logger;
  /** A stream silent this long (no change, no heartbeat) is dropped and reopened (default 3 s). */
  silenceMs?: number;
  /** First and longest wait between reconnect attempts (defaults 100 ms and 5 s). */
  reconnectMs?: number;
  maxReconnectMs?: number;
  /**
   * The revision to watch from, or undefined to ask for a snapshot; while it is undefined a
   * new stream does not reset the backoff (a snapshot that cannot be applied here must not be
   * fetched many times a second).
   */
  from: () => { revision: bigint; digest: string } | undefined;
  /** The first message of a new stream is about to be handled. */
  onConnected: (client: SyncClient) => void;
  onMessage: (client: SyncClient, m: WatchResponse) => void;
}

/** The Watch stream to central, kept open across lost links and replicas. */
export class WatchConnection {
  private turn = 0;
  private call: grpc.ClientReadableStream<WatchResponse> | undefined;
  private connected = false;
  private attempt = 0;
  private stopped = true;
  private retry: NodeJS.Timeout | undefined;
  private watchdog: NodeJS.Timeout | undefined;
  private lastMessageAt = 0;

  constructor(private readonly d: WatchConnectionDeps) {}

  /** The client of the replica watched now (or tried next); acks and shipments go there. */
  client(): SyncClient {
    return this.d.clients[this.turn] as SyncClient;
  }

  /** Whether a stream is open and has delivered a message. */
  isConnected(): boolean {
    return this.connected;
  }

  /** Opens the stream (and keeps it open until stop). */
  start(): void {
    this.stopped = false;
    this.watchdog = setInterval(() => this.checkSilence(), 250);
    this.watchdog.unref();
    this.open();
  }

  /** Closes the stream for good. */
  stop(): void {
    this.stopped = true;
    for (const t of [this.retry, this.watchdog]) {
      if (t) clearTimeout(t);
    }
    this.call?.cancel();
    this.call = undefined;
  }

  /** Drops the stream now; it is opened again after the backoff, from what `from` says then. */
  drop(): void {
    this.call?.cancel();
  }

  /** A revision was applied: the next reconnect waits the shortest time again. */
  resetBackoff(): void {
    this.attempt = 0;
  }

  private open(): void {
    if (this.stopped) return;
    const client = this.client();
    const from = this.d.from();
    const call = client.watch({
      sidecarId: this.d.sidecarId,
      appliedRevision: from?.revision ?? 0n,
      appliedDigest: from?.digest ?? "",
      engines: [...this.d.engines],
    });
    this.call = call;
    this.lastMessageAt = performance.now();
    call.on("data", (m: WatchResponse) => {
      if (this.call !== call) return;
      this.lastMessageAt = performance.now();
      if (!this.connected) {
        this.connected = true;
        // Not while a snapshot is wanted after a refused apply (see `from`).
        if (this.d.from() !== undefined) this.attempt = 0;
        this.d.logger.info({ central: client.label }, "following central");
        this.d.onConnected(client);
      }
      this.d.onMessage(client, m);
    });
    let lost = false;
    const reopen = (err?: Error) => {
      if (lost || this.call !== call) return;
      lost = true;
      this.call = undefined;
      if (this.connected) {
        this.d.logger.warn(
          { central: client.label, error: err?.message },
          "lost the Watch stream to central; reconnecting",
        );
      }
      this.connected = false;
      if (this.stopped) return;
      // The next replica in turn, after a backoff with full jitter; acks follow the Watch.
      this.turn = (this.turn + 1) % this.d.clients.length;
      if (this.d.clients.length > 1) client.endAcks();
      const wait = reconnectDelayMs(this.attempt, this.d.reconnectMs, this.d.maxReconnectMs);
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
    if (performance.now() - this.lastMessageAt > (this.d.silenceMs ?? 3_000)) this.call.cancel();
  }
}
