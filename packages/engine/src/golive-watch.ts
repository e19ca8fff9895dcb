/**
 * The go-live state pushed by the sidecar (GoLiveService.WatchGoLive), kept in memory so that
 * each request is decided in-process, without a round trip. A lost stream is reopened; while
 * nothing is heard, the state ages, and past `staleAfterMs` PROD and PROD_EXEC fail closed
 * (DENY_REASON_POLICY_STALE), as the sidecar itself does with a stale policy. EXEMPT never
 * blocks.
 */
import { EventEmitter } from "node:events";
import { DenyReason, ExecutionClass } from "../gen/governance/v1/common_pb.js";
import {
  WatchGoLiveRequestSchema,
  type WatchGoLiveResponse,
  WatchGoLiveResponseSchema,
} from "../gen/governance/v1/golive_pb.js";
import { ALLOW, decideExecution, type Verdict } from "./execution.js";
import type { SidecarClient } from "./sidecar-client.js";

/** Options of the watch. */
export interface GoLiveWatchOptions {
  /** Past this age of the last message (plus the sidecar's own staleness), fail closed. */
  staleAfterMs?: number;
  /** The engine's name, for the sidecar's record. */
  engine?: string;
  /** First wait before reopening a lost stream, doubled up to `maxReconnectMs` (default 50). */
  reconnectMs?: number;
  /** Longest wait between reopen attempts (default 1,000 ms). */
  maxReconnectMs?: number;
}

/** The default staleness bound: three missed heartbeats of the sidecar's one per second. */
export const DEFAULT_STALE_AFTER_MS = 3_000;

/**
 * Follows the sidecar's go-live state. Emits "change" with each non-heartbeat message and
 * "disconnected" with the error when the stream is lost.
 */
export class GoLiveWatch extends EventEmitter {
  /** The last message heard (undefined before the first). */
  state: WatchGoLiveResponse | undefined;
  private heardAt = 0;
  private readonly staleAfterMs: number;
  private call: ReturnType<SidecarClient["stream"]> | undefined;
  private retryMs: number;
  private timer: NodeJS.Timeout | undefined;
  private readonly watchdog: NodeJS.Timeout;
  private closed = false;

  constructor(
    private readonly client: SidecarClient,
    private readonly options: GoLiveWatchOptions = {},
  ) {
    super();
    this.staleAfterMs = options.staleAfterMs ?? DEFAULT_STALE_AFTER_MS;
    this.retryMs = options.reconnectMs ?? 50;
    this.open();
    // A stream that stalls silently (no reset, no heartbeat) is reopened once past the bound.
    this.watchdog = setInterval(() => {
      if (this.call && this.ageMs() > this.staleAfterMs) this.call.cancel();
    }, this.staleAfterMs);
    this.watchdog.unref();
  }

  /**
   * Whether an action of this class may run now, decided in-process from the pushed state by
   * the sidecar's own rule; fails closed for PROD and PROD_EXEC on a missing or stale state.
   */
  decide(executionClass: ExecutionClass): Verdict {
    if (executionClass === ExecutionClass.EXEMPT) return ALLOW;
    const state = this.state;
    if (state === undefined) return this.stale("no go-live state has been received yet");
    const age = performance.now() - this.heardAt + Number(state.stalenessMs);
    if (age > this.staleAfterMs) {
      return this.stale(`the go-live state is ${Math.round(age)} ms old`);
    }
    return decideExecution(executionClass, state);
  }

  /** Milliseconds since the state was last confirmed (Infinity before the first message). */
  ageMs(): number {
    if (this.state === undefined) return Number.POSITIVE_INFINITY;
    return performance.now() - this.heardAt + Number(this.state.stalenessMs);
  }

  /** Resolves once a first state is in (rejects after `timeoutMs`, default 2,000 ms). */
  ready(timeoutMs = 2_000): Promise<void> {
    if (this.state) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.off("change", done);
        reject(
          new Error(
            `no go-live state from the sidecar at ${this.client.address} within ${timeoutMs} ms: production routes stay blocked until it answers`,
          ),
        );
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        resolve();
      };
      this.once("change", done);
    });
  }

  /** Stops following (the in-memory state then ages into fail-closed). */
  close(): void {
    this.closed = true;
    clearInterval(this.watchdog);
    if (this.timer) clearTimeout(this.timer);
    this.call?.cancel();
    this.call = undefined;
  }

  private stale(what: string): Verdict {
    return {
      allowed: false,
      reason: DenyReason.POLICY_STALE,
      message: `${what} (bound ${this.staleAfterMs} ms): the sidecar at ${this.client.address} has not been heard from, so production is blocked until it is`,
    };
  }

  private open(): void {
    if (this.closed) return;
    const call = this.client.stream(
      "/governance.v1.GoLiveService/WatchGoLive",
      WatchGoLiveRequestSchema,
      WatchGoLiveResponseSchema,
      { engine: this.options.engine ?? "" },
    );
    this.call = call;
    call.on("data", (message: WatchGoLiveResponse) => {
      this.state = message;
      this.heardAt = performance.now();
      this.retryMs = this.options.reconnectMs ?? 50;
      if (!message.heartbeat) this.emit("change", message);
    });
    let lost = false;
    const reopen = (err?: Error) => {
      if (lost || this.call !== call) return;
      lost = true;
      this.call = undefined;
      if (this.closed) return;
      this.emit("disconnected", err);
      this.timer = setTimeout(() => this.open(), this.retryMs);
      this.retryMs = Math.min(this.retryMs * 2, this.options.maxReconnectMs ?? 1_000);
    };
    call.on("error", reopen);
    call.on("end", () => reopen());
  }
}
