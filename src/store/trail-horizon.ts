/**
 * The horizon of the audit trail: the newest event pruned from it. A connected sidecar may
 * prune events central acked (`govd serve --retain-shipped`); the chain then starts after the
 * horizon, whose hash the first kept event links to. Central keeps every pruned event, so the
 * whole chain stays provable there, and `govd audit verify --central` checks the kept part
 * against central's anchor.
 */
import type { Db } from "./database.js";
import { IdempotencyKeys } from "./idempotency-keys.js";

/** The newest pruned event (seq 0 and no hash when nothing was pruned). */
export interface TrailHorizon {
  seq: number;
  hash: string;
  /** When it was last moved (0 when never). */
  prunedMs: number;
}

const NOTHING_PRUNED: TrailHorizon = Object.freeze({ seq: 0, hash: "", prunedMs: 0 });

/** The horizon of a store; a store older than schema version 10 has pruned nothing. */
export function trailHorizon(db: Db): TrailHorizon {
  const table = db
    .prepare<[], { name: string }>(
      "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'audit_horizon'",
    )
    .get();
  if (!table) return NOTHING_PRUNED;
  const row = db
    .prepare<[], { seq: number; hash: string; pruned_ms: number }>(
      "SELECT seq, hash, pruned_ms FROM audit_horizon WHERE id = 1",
    )
    .safeIntegers(false)
    .get();
  return row ? { seq: row.seq, hash: row.hash, prunedMs: row.pruned_ms } : NOTHING_PRUNED;
}

/** What one pruning step may remove: the bounds it must respect. */
export interface PruneBounds {
  /** The newest event central acked (as persisted); it and everything after it stay. */
  shippedSeq: number;
  /**
   * The newest event folded into every table derived from the trail (risk, KPI series,
   * scorecards: the lowest of their folded seqs): nothing after it may go, since until folded
   * the event is the only copy of what it decided.
   */
  foldedSeq: number;
  /** The newest event: it always stays (the next event links to it). */
  headSeq: number;
  /** The horizon now. */
  horizonSeq: number;
  /** At most this many events per step. */
  chunk: number;
}

/**
 * The newest seq a pruning step may remove, before the age check: below the shipped event
 * (whose hash the next shipment names as its previous), folded into every derived table, never
 * the head, and at most `chunk` past the horizon. Equal to the horizon when nothing may go.
 */
export function pruneCeiling(b: PruneBounds): number {
  const ceiling = Math.min(b.shippedSeq - 1, b.foldedSeq, b.headSeq - 1, b.horizonSeq + b.chunk);
  return Math.max(b.horizonSeq, ceiling);
}

/** Prepared statements of a pruning step. */
export class TrailPruning {
  private readonly s;
  private readonly keys: IdempotencyKeys;

  constructor(private readonly db: Db) {
    this.keys = new IdempotencyKeys(db);
    this.s = {
      bounds: db
        .prepare<[], { shipped: number; folded: number; head: number }>(
          `SELECT (SELECT value FROM meta WHERE key = 'shipped_seq') AS shipped,
            (SELECT min(value) FROM meta WHERE key IN
              ('risk_folded_seq', 'kpi_folded_seq', 'scorecard_folded_seq')) AS folded,
            (SELECT coalesce(max(seq), 0) FROM audit_event) AS head`,
        )
        .safeIntegers(false),
      candidates: db
        .prepare<[number, number], { seq: number; time_ms: number; hash: string }>(
          "SELECT seq, time_ms, hash FROM audit_event WHERE seq > ? AND seq <= ? ORDER BY seq",
        )
        .safeIntegers(false),
      remove: db.prepare("DELETE FROM audit_event WHERE seq > ? AND seq <= ?"),
      move: db.prepare("UPDATE audit_horizon SET seq = ?, hash = ?, pruned_ms = ? WHERE id = 1"),
    };
  }

  /** The newest event central acked, as persisted. */
  shippedSeq(): number {
    return this.s.bounds.get()?.shipped ?? 0;
  }

  /**
   * Removes, in the caller's transaction, the oldest events older than `cutoffMs` that central
   * acked (up to `ackedSeq`, and below the persisted shipped seq): a contiguous run from the
   * horizon, so the chain stays whole, at most `chunk`. Returns how many went.
   */
  pruneOlderThan(cutoffMs: number, nowMs: number, chunk: number, ackedSeq: number): number {
    const horizon = trailHorizon(this.db);
    const b = this.s.bounds.get();
    const ceiling = pruneCeiling({
      shippedSeq: Math.min(b?.shipped ?? 0, ackedSeq),
      foldedSeq: b?.folded ?? 0,
      headSeq: b?.head ?? 0,
      horizonSeq: horizon.seq,
      chunk,
    });
    if (ceiling <= horizon.seq) return 0;
    let last: { seq: number; hash: string } | undefined;
    for (const r of this.s.candidates.iterate(horizon.seq, ceiling)) {
      if (r.time_ms >= cutoffMs) break;
      last = r;
    }
    if (!last) return 0;
    // The idempotency keys on these events move into the key table: a key is answered for
    // its own retention, however short the trail's. The horizon next: the store refuses to
    // delete an event above it.
    this.keys.keepKeysOfEvents(horizon.seq, last.seq);
    this.s.move.run(last.seq, last.hash, nowMs);
    this.s.remove.run(horizon.seq, last.seq);
    return last.seq - horizon.seq;
  }
}
