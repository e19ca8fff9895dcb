/**
 * The latest outcomes of each KPI series, kept in memory so a tripwire does not read its whole
 * window (window + baseline events, 250 by default) from the store on every RecordKpi.
 *
 * A kept window is used only while the newest event id of its series in the store is the one
 * the window ends with. KPI events are only ever appended (none is updated or deleted), and the
 * sidecar is its store's only writer (DESIGN.md), appending through Tripwires.recordKpi, which
 * tells the windows of every append. So an equal newest id means an equal series: an append
 * that a rollback undid changes the newest id (and the next append, which may reuse the undone
 * id, finds the window ending elsewhere), and the window is read again from the store.
 */

import type { WindowCounts } from "./rules.js";

/** Reads the latest `count` outcomes of a series from the store, newest first. */
export type LoadOutcomes = (domain: string, metric: string, count: number) => boolean[];

/** One series' latest outcomes in a ring, newest at `head`. */
interface Window {
  /** The id of the newest event the window holds (0 for an empty series). */
  newestId: number;
  ring: Uint8Array;
  head: number;
  size: number;
  /** True when the window holds every event of its series. */
  whole: boolean;
}

/** At most this many series are kept; beyond it the kept windows are dropped and reloaded. */
const MAX_SERIES = 10_000;

/** The latest outcomes of KPI series, checked against the store's newest event id. */
export class OutcomeWindows {
  private readonly windows = new Map<string, Window>();

  constructor(private readonly load: LoadOutcomes) {}

  /**
   * Successes and events among a series' newest `window` outcomes and among the `baseline`
   * outcomes before them (fewer when the series is shorter), given the id of its newest event
   * in the store now.
   */
  counts(
    domain: string,
    metric: string,
    window: number,
    baseline: number,
    newestId: number,
  ): WindowCounts {
    const w = this.kept(domain, metric, window + baseline, newestId);
    const currentEvents = Math.min(window, w.size);
    const baselineEvents = Math.min(baseline, w.size - currentEvents);
    return {
      currentSuccesses: successes(w, 0, currentEvents),
      currentEvents,
      baselineSuccesses: successes(w, currentEvents, currentEvents + baselineEvents),
      baselineEvents,
    };
  }

  /** The series' window holding at least its `count` newest outcomes, read again if stale. */
  private kept(domain: string, metric: string, count: number, newestId: number): Window {
    const key = `${domain}/${metric}`;
    const w = this.windows.get(key);
    if (w && w.newestId === newestId && (w.size >= count || w.whole)) return w;
    const capacity = Math.max(count, w?.ring.length ?? 0, 1);
    const outcomes = this.load(domain, metric, capacity);
    const fresh: Window = {
      newestId,
      ring: new Uint8Array(capacity),
      head: 0,
      size: 0,
      whole: false,
    };
    // Oldest first, so the newest ends at head.
    for (let i = outcomes.length - 1; i >= 0; i--) push(fresh, outcomes[i] === true);
    fresh.whole = outcomes.length < capacity;
    if (this.windows.size >= MAX_SERIES) this.windows.clear();
    this.windows.set(key, fresh);
    return fresh;
  }

  /** True when a window of the series is kept (then `appended` wants the id before an append). */
  keeps(domain: string, metric: string): boolean {
    return this.windows.has(`${domain}/${metric}`);
  }

  /**
   * Adds an event just appended to a series (`id`), whose newest event before it was
   * `previousId`; a kept window that does not end at `previousId` is dropped instead.
   */
  appended(domain: string, metric: string, previousId: number, id: number, success: boolean): void {
    const key = `${domain}/${metric}`;
    const w = this.windows.get(key);
    if (!w) return;
    if (w.newestId !== previousId) {
      this.windows.delete(key);
      return;
    }
    push(w, success);
    w.newestId = id;
  }
}

/** Successes among the outcomes `from` (inclusive) to `to` (exclusive), counted from the newest. */
function successes(w: Window, from: number, to: number): number {
  let n = 0;
  for (let i = from; i < to; i++) n += w.ring[(w.head - i + w.ring.length) % w.ring.length] ?? 0;
  return n;
}

function push(w: Window, success: boolean): void {
  w.head = (w.head + 1) % w.ring.length;
  w.ring[w.head] = success ? 1 : 0;
  if (w.size < w.ring.length) w.size++;
  // A full ring has dropped its oldest event: it no longer holds the whole series.
  else w.whole = false;
}
