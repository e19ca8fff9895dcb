/**
 * Retention of a connected sidecar's audit trail (`govd serve --retain-shipped`): events that
 * are older than the retention and that central acked longer ago than the retention are pruned, off the decision path, in
 * small steps through the store's transaction runner. Nothing central has not acked is ever
 * pruned, nor anything the risk, KPI or scorecard tables have not folded, nor the newest event; the default
 * keeps everything.
 */
import type { Logger } from "pino";
import type { Clock } from "../../clock.js";
import type { Db } from "../../store/database.js";
import { TrailPruning, trailHorizon } from "../../store/trail-horizon.js";

/**
 * The shortest retention allowed: central commits shipped events without an fsync, so a power
 * cut of its host can take back its last moments, which the sidecar must still be able to
 * ship again; ten minutes is far beyond that window.
 */
export const MIN_RETAIN_SHIPPED_MS = 10 * 60_000;

/** Acks are remembered at most this often (the newest is always held besides). */
const ACK_SAMPLE_MS = 60_000;

/**
 * When central acked what: the retention counts from the ack, not from the event, since a
 * backlog central acks hours late must stay here the whole retention after that ack (central
 * commits shipments without an fsync). Samples at most a minute apart, plus the newest ack
 * timed at its latest sighting, so a seq never looks acked earlier than it was.
 */
export class AckHistory {
  private samples: { seq: number; ms: number }[] = [];
  private newest: { seq: number; ms: number } | undefined;

  /** Central acked events up to `seq`, as seen at `nowMs`. */
  acked(seq: number, nowMs: number): void {
    const last = this.newest ?? this.samples.at(-1);
    if (last && seq <= last.seq) return;
    this.newest = { seq, ms: nowMs };
    const sampled = this.samples.at(-1);
    if (!sampled || nowMs - sampled.ms >= ACK_SAMPLE_MS) {
      this.samples.push(this.newest);
      this.newest = undefined;
    }
  }

  /** The newest seq central had acked by `cutoffMs` (0 when none); forgets older samples. */
  ackedBy(cutoffMs: number): number {
    while ((this.samples[1]?.ms ?? Number.POSITIVE_INFINITY) <= cutoffMs) this.samples.shift();
    if (this.newest && this.newest.ms <= cutoffMs) return this.newest.seq;
    const first = this.samples[0];
    return first && first.ms <= cutoffMs ? first.seq : 0;
  }
}

/** How a sidecar prunes its trail. */
export interface RetentionOptions {
  db: Db;
  clock: Clock;
  logger: Logger;
  /** Acked events older than this go. */
  retainMs: number;
  /** How often it looks (default 60 s), and events per step at most (default 1,000). */
  everyMs?: number;
  chunk?: number;
}

/** Prunes acked events past the retention, every `everyMs`. */
export class TrailRetention {
  private readonly pruning: TrailPruning;
  private readonly acks = new AckHistory();
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<number> | undefined;
  private started = false;
  /** Set by stop(): a pruning pass ends after its current step. */
  private halted = false;

  constructor(
    private readonly o: RetentionOptions,
    private readonly runNow: <T>(work: () => T) => T,
  ) {
    this.pruning = new TrailPruning(o.db);
  }

  /**
   * Told when central acks events up to `seq`. The ack persisted by an earlier run counts as
   * seen at start (its time is not known), so a restart delays pruning, never hastens it.
   */
  acked(seq: number): void {
    this.acks.acked(seq, this.o.clock.now());
  }

  /** Starts pruning (the follower starts it with itself). */
  start(): void {
    if (this.started) return;
    this.acked(this.pruning.shippedSeq());
    this.started = true;
    this.halted = false;
    const tick = () => {
      this.pruneNow()
        .catch((err: unknown) => {
          this.o.logger.warn(
            { error: (err as Error).message },
            "pruning the audit trail failed; it is tried again",
          );
        })
        .finally(() => {
          if (this.halted) return;
          this.timer = setTimeout(tick, this.o.everyMs ?? 60_000);
          this.timer.unref();
        });
    };
    tick();
  }

  /** Stops pruning; a step in progress finishes (each is one transaction). */
  stop(): void {
    this.started = false;
    this.halted = true;
    if (this.timer) clearTimeout(this.timer);
  }

  /**
   * Prunes everything that may go now, one transaction per step with a turn of the event loop
   * between steps, so decisions wait at most one small step. Returns how many events went.
   */
  pruneNow(): Promise<number> {
    this.running ??= this.steps().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private async steps(): Promise<number> {
    const chunk = this.o.chunk ?? 1_000;
    let total = 0;
    for (;;) {
      const now = this.o.clock.now();
      const cutoff = now - this.o.retainMs;
      const ackedBy = this.acks.ackedBy(cutoff);
      const n = this.runNow(() => this.pruning.pruneOlderThan(cutoff, now, chunk, ackedBy));
      total += n;
      if (n < chunk || this.halted) break;
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    if (total > 0) {
      const horizon = this.runNow(() => trailHorizon(this.o.db));
      this.o.logger.info(
        { pruned: total, horizonSeq: horizon.seq },
        "pruned audit events central acked, past the retention (central keeps them)",
      );
    }
    return total;
  }
}
