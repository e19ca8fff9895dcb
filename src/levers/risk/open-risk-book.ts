/**
 * The open-risk book: the reservations that are open right now, the open risk they add up to
 * per engine and for GLOBAL, and their expiries in order, kept in memory. Open risk is not
 * daily: a reservation counts from its Reserve until its Settle, Release or TTL.
 */
import { assertWithinLimit } from "./ledger-limit.js";

/** An open reservation, money in micro-units. */
export interface OpenReservation {
  id: string;
  engine: string;
  amount: bigint;
  /** The UTC day it was reserved on. */
  day: string;
  createdMs: number;
  expiresMs: number;
}

/** Open reservations by id, their sums by engine and a min-heap of their expiries. */
export class OpenRiskBook {
  private readonly open = new Map<string, OpenReservation>();
  private readonly risk = new Map<string, bigint>();
  /** Expiry order; entries of reservations no longer open are skipped and dropped lazily. */
  private readonly heap: OpenReservation[] = [];

  /** How many reservations are open. */
  get size(): number {
    return this.open.size;
  }

  /** Open risk of an engine, or of GLOBAL (every engine's). */
  openRisk(engine: string): bigint {
    return this.risk.get(engine) ?? 0n;
  }

  /** Every engine (and GLOBAL) that has had open risk, with what it has now. */
  entries(): IterableIterator<[string, bigint]> {
    return this.risk.entries();
  }

  /** The reservation, while it is open. */
  get(id: string): OpenReservation | undefined {
    return this.open.get(id);
  }

  /** RESOURCE_EXHAUSTED when opening `amount` more would take open risk past int64. */
  assertFits(engine: string, amount: bigint): void {
    assertWithinLimit(engine, "open risk", this.openRisk(engine) + amount);
    assertWithinLimit("GLOBAL", "open risk", this.openRisk("GLOBAL") + amount);
  }

  /** Opens a reservation (check assertFits first). */
  add(r: OpenReservation): void {
    this.open.set(r.id, r);
    this.shift(r.engine, r.amount);
    this.push(r);
  }

  /** Closes an open reservation; returns it, or undefined when it was not open. */
  remove(id: string): OpenReservation | undefined {
    const r = this.open.get(id);
    if (!r) return undefined;
    this.open.delete(id);
    this.shift(r.engine, -r.amount);
    return r;
  }

  /** At most `limit` open reservations whose TTL has passed at `nowMs`, oldest expiry first. */
  expired(nowMs: number, limit: number): OpenReservation[] {
    const found: OpenReservation[] = [];
    const seen = new Set<string>();
    while (found.length < limit) {
      const top = this.heap[0];
      if (!top || top.expiresMs > nowMs) break;
      this.pop();
      if (this.open.get(top.id) !== top || seen.has(top.id)) continue;
      seen.add(top.id);
      found.push(top);
    }
    // Still open until the caller closes them: back into the heap.
    for (const r of found) this.push(r);
    return found;
  }

  private shift(engine: string, amount: bigint): void {
    this.risk.set(engine, this.openRisk(engine) + amount);
    this.risk.set("GLOBAL", this.openRisk("GLOBAL") + amount);
  }

  private push(r: OpenReservation): void {
    const h = this.heap;
    // Closed reservations leave their entries behind until they reach the top: rebuild when
    // they outnumber the open ones, so the heap stays proportional to what is open.
    if (h.length > 2 * this.open.size + 1024) {
      h.length = 0;
      for (const o of this.open.values()) if (o !== r) this.push(o);
    }
    h.push(r);
    let i = h.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const p = h[parent] as OpenReservation;
      if (p.expiresMs <= r.expiresMs) break;
      h[i] = p;
      i = parent;
    }
    h[i] = r;
  }

  private pop(): void {
    const h = this.heap;
    const last = h.pop();
    if (!last || h.length === 0) return;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= h.length) break;
      const r = l + 1;
      const c = r < h.length && (h[r] as OpenReservation).expiresMs < (h[l] as OpenReservation).expiresMs ? r : l;
      if ((h[c] as OpenReservation).expiresMs >= last.expiresMs) break;
      h[i] = h[c] as OpenReservation;
      i = c;
    }
    h[i] = last;
  }
}
