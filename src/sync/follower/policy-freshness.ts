/**
 * How fresh a connected sidecar's policy is: when central was last heard from (a change, a
 * snapshot or a heartbeat), persisted at most every few seconds so a restart knows it too, and
 * whether production must fail closed: before the first snapshot, or past the staleness bound.
 * It says when that flips, at once and at the moment the bound passes, so /readyz follows.
 */
import type { Clock } from "../../clock.js";
import type { Freshness } from "../../levers/decision-stamp.js";
import type { AppliedRevision } from "./applied-revision.js";

/** How often "last heard" is persisted at most (a restart overstates staleness by this at most). */
const PERSIST_HEARD_MS = 5_000;

/** What the freshness of a follower's policy needs. */
export interface PolicyFreshnessDeps {
  applied: AppliedRevision;
  clock: Clock;
  /** Past this long without word from central, PROD and PROD_EXEC fail closed. */
  staleAfterMs: number;
  /** Central's addresses, for the reason given. */
  where: () => string;
  /** Told when staleness flips (true: production fails closed now). */
  onFlip: (stale: boolean) => void;
  /** A failed write of the time heard (it is retried at the next word from central). */
  onPersistFailed: (err: Error) => void;
}

/** The time central was last heard from, and what it means for decisions. */
export class PolicyFreshness {
  private heardMs: number;
  private persistedHeardMs: number;
  private wasStale: boolean | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** Armed between start and stop only. */
  private stopped = true;

  constructor(private readonly d: PolicyFreshnessDeps) {
    this.heardMs = d.applied.get().heardMs;
    this.persistedHeardMs = this.heardMs;
  }

  /** When central was last heard from (0: never, on this store). */
  get lastHeardMs(): number {
    return this.heardMs;
  }

  /** The time since central was last heard from (0 when never). */
  ageMs(): number {
    return this.heardMs === 0 ? 0 : Math.max(0, this.d.clock.now() - this.heardMs);
  }

  /** The staleness a decision reports against its bound. */
  freshness(): Freshness {
    return {
      policyStalenessMs: this.heardMs === 0 ? undefined : this.d.clock.now() - this.heardMs,
      maxStalenessMs: this.d.staleAfterMs,
    };
  }

  /** Why production must fail closed now; undefined while central's policy is fresh. */
  staleBecause(): string | undefined {
    const applied = this.d.applied.get();
    if (applied.revision === 0n) {
      return `this sidecar follows central (${this.d.where()}) and has not received its policy yet: production is blocked until the first snapshot is applied`;
    }
    const age = this.d.clock.now() - this.heardMs;
    if (age <= this.d.staleAfterMs) return undefined;
    return `central (${this.d.where()}) not heard from for ${age} ms (bound ${this.d.staleAfterMs} ms): production is blocked until it is; decisions keep policy revision ${applied.revision}`;
  }

  /**
   * Central was heard from. `runNow` persists the time in a transaction of its own when due;
   * undefined when a change or snapshot follows, whose transaction writes the time with the
   * revision (then call `persistedWithApply` once it commits).
   */
  heard(runNow: (<T>(work: () => T) => T) | undefined): void {
    const now = this.d.clock.now();
    this.heardMs = now;
    const persist =
      runNow !== undefined &&
      now - this.persistedHeardMs >= PERSIST_HEARD_MS &&
      this.d.applied.get().revision > 0n;
    if (persist) {
      this.persistedHeardMs = now;
      try {
        runNow(() => this.d.applied.heard(now));
      } catch (err) {
        this.d.onPersistFailed(err as Error);
      }
    }
    this.arm();
  }

  /** An applied revision wrote the time heard with it. */
  persistedWithApply(): void {
    this.persistedHeardMs = this.heardMs;
  }

  /** Tells `onFlip` when staleness flips, now and at the moment the bound will pass. */
  arm(): void {
    const stale = this.staleBecause() !== undefined;
    if (stale !== this.wasStale) {
      this.wasStale = stale;
      this.d.onFlip(stale);
    }
    if (this.timer) clearTimeout(this.timer);
    if (stale || this.stopped) return;
    const due = this.heardMs + this.d.staleAfterMs + 1 - this.d.clock.now();
    this.timer = setTimeout(() => this.arm(), Math.max(due, 1));
    this.timer.unref();
  }

  /** Starts telling `onFlip` (the follower's start). */
  start(): void {
    this.stopped = false;
    this.arm();
  }

  /** No more timers. */
  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
  }
}
