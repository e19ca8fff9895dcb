/**
 * The latest outcomes of one KPI series, kept in memory so a tripwire does not read its whole
 * window (window + baseline events, 250 by default) from the store on every RecordKpi. Since
 * migration 12 the series itself lives in memory (KpiSeries): its ring is filled from the
 * store when the series is loaded, and takes each outcome recorded after.
 */

import type { WindowCounts } from "./rules.js";

/** A series' newest outcomes in a ring, newest at `head`. */
export class OutcomeRing {
  private readonly ring: Uint8Array;
  private head = 0;
  private size = 0;
  /** True while the ring holds every outcome of its series. */
  private whole: boolean;

  /** A ring of `capacity` holding `newestFirst` (the whole series when shorter than that). */
  constructor(capacity: number, newestFirst: readonly boolean[]) {
    this.ring = new Uint8Array(Math.max(1, capacity));
    for (let i = Math.min(newestFirst.length, this.ring.length) - 1; i >= 0; i--) {
      this.push(newestFirst[i] === true);
    }
    this.whole = newestFirst.length < this.ring.length;
  }

  /** How many outcomes the ring can hold. */
  get capacity(): number {
    return this.ring.length;
  }

  /** True when the ring holds the newest `count` outcomes (or the whole, shorter series). */
  covers(count: number): boolean {
    return this.size >= count || this.whole;
  }

  /** Adds the series' newest outcome. */
  push(success: boolean): void {
    this.head = (this.head + 1) % this.ring.length;
    this.ring[this.head] = success ? 1 : 0;
    if (this.size < this.ring.length) this.size++;
    // A full ring has dropped its oldest outcome: it no longer holds the whole series.
    else this.whole = false;
  }

  /**
   * Successes and events among the newest `window` outcomes and among the `baseline`
   * outcomes before them (fewer when the ring holds fewer).
   */
  counts(window: number, baseline: number): WindowCounts {
    const currentEvents = Math.min(window, this.size);
    const baselineEvents = Math.min(baseline, this.size - currentEvents);
    return {
      currentSuccesses: this.successes(0, currentEvents),
      currentEvents,
      baselineSuccesses: this.successes(currentEvents, currentEvents + baselineEvents),
      baselineEvents,
    };
  }

  /** Successes among the outcomes `from` (inclusive) to `to` (exclusive), from the newest. */
  private successes(from: number, to: number): number {
    const n = this.ring.length;
    let sum = 0;
    for (let i = from; i < to; i++) sum += this.ring[(this.head - i + n) % n] ?? 0;
    return sum;
  }
}
