/**
 * The open-risk book: open risk per engine and for GLOBAL (every engine's), kept in memory,
 * and the reservations decided since the store's snapshot (opened, closed, or both). Open risk
 * is not daily: a reservation counts from its Reserve until its Settle, Release or TTL.
 *
 * Reservations the snapshot already holds are read from it (the risk_reservation table, with
 * its index of open ones by expiry), so memory stays proportional to the decisions since the
 * last fold, not to how many reservations are open: a backlog of 300,000 expired ones after
 * an outage is released in batches from the table. Those the table still holds as open but
 * that were closed since are skipped once, not read again by every batch until the next fold.
 */
import { assertWithinLimit } from "./ledger-limit.js";
import type {
  ExpiryPlace,
  OpenReservation,
  ReservationRecord,
  ReservationState,
  RiskSnapshot,
} from "./risk-snapshot.js";

/** A reservation decided since the snapshot, and the event that last changed it. */
interface Touched {
  r: OpenReservation;
  state: ReservationState;
  loss: bigint;
  seq: number;
  /** It was open in the snapshot (so the table still says OPEN until the next fold). */
  fromSnapshot: boolean;
}

/** Open risk by engine, reservations since the snapshot, and their expiries in order. */
export class OpenRiskBook {
  private readonly sums = new Map<string, bigint>();
  private readonly touched = new Map<string, Touched>();
  /** Expiry order of touched open reservations; stale entries are skipped and dropped. */
  private heap: Touched[] = [];
  private openTouched = 0;
  /**
   * Every reservation open at the snapshot up to here, in expiry order, has been decided since
   * (so the heap has it if it is open again): expiry lookups read the snapshot after it.
   * Forgotten when the snapshot or a decision since it changes (a fold, a rollback).
   */
  private decidedUpTo: ExpiryPlace | undefined;
  /** The earliest expiry among the snapshot's open reservations (Infinity: none). */
  private snapshotEarliest = Number.POSITIVE_INFINITY;
  private trimmedTo = -1;

  constructor(private readonly snapshot: RiskSnapshot) {
    for (const [engine, sum] of snapshot.openSums()) this.sums.set(engine, sum);
    this.snapshotEarliest = snapshot.earliestOpenExpiry();
  }

  /** Open risk of an engine, or of GLOBAL. */
  openRisk(engine: string): bigint {
    return this.sums.get(engine) ?? 0n;
  }

  /** Every engine (and GLOBAL) that has had open risk, with what it has now. */
  entries(): IterableIterator<[string, bigint]> {
    return this.sums.entries();
  }

  /** A reservation, open or not, if it exists. */
  get(id: string): ReservationRecord | undefined {
    const t = this.touched.get(id);
    if (t) return { ...t.r, status: t.state, realizedLoss: t.loss };
    return this.snapshot.reservation(id);
  }

  /** RESOURCE_EXHAUSTED when opening `amount` more would take open risk past int64. */
  assertFits(engine: string, amount: bigint): void {
    assertWithinLimit(engine, "open risk", this.openRisk(engine) + amount);
    assertWithinLimit("GLOBAL", "open risk", this.openRisk("GLOBAL") + amount);
  }

  /** Opens a reservation (event `seq`; check assertFits first); returns its undo. */
  open(r: OpenReservation, seq: number): () => void {
    return this.set(r.id, { r, state: "OPEN", loss: 0n, seq, fromSnapshot: false });
  }

  /** Closes `r` as `state` (event `seq`), freeing its open risk if it was open; returns its undo. */
  close(r: ReservationRecord, state: ReservationState, loss: bigint, seq: number): () => void {
    const prev = this.touched.get(r.id);
    const fromSnapshot = prev ? prev.fromSnapshot : r.status === "OPEN";
    const { status: _status, realizedLoss: _loss, ...reservation } = r;
    return this.set(r.id, { r: reservation, state, loss, seq, fromSnapshot });
  }

  /** At most `limit` open reservations whose TTL has passed at `nowMs`, oldest expiry first. */
  expired(nowMs: number, limit: number): ReservationRecord[] {
    // Every Reserve asks first; nearly always nothing has expired, and nothing is built for it.
    const first = this.heap[0];
    if ((!first || first.r.expiresMs > nowMs) && nowMs < this.snapshotEarliest) return [];
    const found: Touched[] = [];
    const seen = new Set<string>();
    while (found.length < limit) {
      const top = this.heap[0];
      if (!top || top.r.expiresMs > nowMs) break;
      this.pop();
      if (this.touched.get(top.r.id) !== top || top.state !== "OPEN" || seen.has(top.r.id)) {
        continue;
      }
      seen.add(top.r.id);
      found.push(top);
    }
    // Still open until the caller closes them: back into the heap.
    for (const t of found) this.push(t);
    const result: ReservationRecord[] = found.map((t) => ({
      ...t.r,
      status: "OPEN",
      realizedLoss: 0n,
    }));
    if (nowMs >= this.snapshotEarliest) {
      result.push(...this.expiredAtSnapshot(nowMs, limit));
      result.sort(byExpiry);
    }
    return result.slice(0, limit);
  }

  /**
   * At most `limit` reservations open at the snapshot, not decided since, whose TTL passed at
   * `nowMs`, by expiry; moves `decidedUpTo` past the decided ones it meets first.
   */
  private expiredAtSnapshot(nowMs: number, limit: number): ReservationRecord[] {
    const out: ReservationRecord[] = [];
    let after = this.decidedUpTo;
    let leading = true;
    for (;;) {
      const rows = this.snapshot.expiredOpen(nowMs, limit, after);
      for (const r of rows) {
        after = r;
        if (this.touched.has(r.id)) {
          if (leading) this.decidedUpTo = { expiresMs: r.expiresMs, id: r.id };
          continue;
        }
        leading = false;
        out.push(r);
        if (out.length === limit) return out;
      }
      if (rows.length < limit) return out;
    }
  }

  /**
   * Forgets what the snapshot now holds (events up to `foldedSeq`, committed): call outside
   * any transaction, after a fold.
   */
  trim(foldedSeq: number): void {
    if (foldedSeq === this.trimmedTo) return;
    this.trimmedTo = foldedSeq;
    this.decidedUpTo = undefined;
    for (const [id, t] of this.touched) {
      if (t.seq > foldedSeq) continue;
      this.touched.delete(id);
      this.count(t, -1);
    }
    this.snapshotEarliest = this.snapshot.earliestOpenExpiry();
    this.compact();
  }

  /** Records `next` for `id` and moves open risk accordingly; returns how to undo it. */
  private set(id: string, next: Touched): () => void {
    const prev = this.touched.get(id);
    const wasOpen = prev ? prev.state === "OPEN" : next.fromSnapshot;
    const isOpen = next.state === "OPEN";
    if (prev) this.count(prev, -1);
    this.touched.set(id, next);
    this.count(next, 1);
    if (isOpen) this.push(next);
    const shift = (isOpen ? next.r.amount : 0n) - (wasOpen ? next.r.amount : 0n);
    this.shift(next.r.engine, shift);
    return () => {
      if (this.touched.get(id) !== next) return;
      // No longer decided since the snapshot: the snapshot may hold it, before decidedUpTo.
      if (!prev) this.decidedUpTo = undefined;
      this.count(next, -1);
      if (prev) {
        this.touched.set(id, prev);
        this.count(prev, 1);
        if (prev.state === "OPEN") this.push(prev);
      } else this.touched.delete(id);
      this.shift(next.r.engine, -shift);
    };
  }

  private count(t: Touched, sign: 1 | -1): void {
    if (t.state === "OPEN") this.openTouched += sign;
  }

  private shift(engine: string, amount: bigint): void {
    if (amount === 0n) return;
    this.sums.set(engine, this.openRisk(engine) + amount);
    this.sums.set("GLOBAL", this.openRisk("GLOBAL") + amount);
  }

  /** Rebuilds the heap when stale entries outnumber the open ones. */
  private compact(): void {
    if (this.heap.length <= 2 * this.openTouched + 1024) return;
    const live = [...this.touched.values()].filter((t) => t.state === "OPEN");
    this.heap = [];
    for (const t of live) this.push(t);
  }

  private push(t: Touched): void {
    this.compact();
    const h = this.heap;
    h.push(t);
    let i = h.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const p = h[parent] as Touched;
      if (p.r.expiresMs <= t.r.expiresMs) break;
      h[i] = p;
      i = parent;
    }
    h[i] = t;
  }

  private pop(): void {
    const h = this.heap;
    const last = h.pop();
    if (!last || h.length === 0) return;
    const at = (i: number) => (h[i] as Touched).r.expiresMs;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= h.length) break;
      const c = l + 1 < h.length && at(l + 1) < at(l) ? l + 1 : l;
      if (at(c) >= last.r.expiresMs) break;
      h[i] = h[c] as Touched;
      i = c;
    }
    h[i] = last;
  }
}

/** Oldest expiry first; equal expiries by id, as the snapshot's index orders them. */
function byExpiry(a: ReservationRecord, b: ReservationRecord): number {
  return a.expiresMs - b.expiresMs || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}
