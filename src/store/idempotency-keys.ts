/**
 * Idempotency keys: the first answer to each (service/method scope, correlation_id), so that a
 * retry gets it again and another request under the same id is recognized.
 *
 * A call that appended an audit event under its correlation_id keeps its key on that event
 * (migration 11: `call_scope`, `request_hash` and `answer`, beside the chain and not hashed): no
 * row of its own, so its commit writes that one row (inserted once with the answer when the
 * pipeline held it, see held-event.ts; else given the answer by an UPDATE). The fold indexes
 * the keys of events in `audit_answer_key` (migration 14) off the decision path, and memory
 * finds the keys of the events after the last fold (`recent`, checked against the event it
 * names, so a rolled-back call's key is never taken for a stored one). A call that appended
 * none (Recommend, an Evaluate, a RecordKpi without an event) keeps it in the `idempotency`
 * table, in arrival order. A lookup takes a key memory names, else reads the index and the
 * table in one statement. A key is answered for the retention (7 days by default) and then
 * forgotten: the sweep clears answers off events and deletes rows of the table; trail pruning
 * moves the keys of the events it deletes into the table first. This module is the only code
 * that reads or writes them, with the hold's insert of an event and its answer (which `save`
 * asks for).
 */
import { ChainJournal, SELF_FOLD_EVERY } from "./chain-journal.js";
import type { Db } from "./database.js";
import { type EventHold, eventHold } from "./held-event.js";

/** How long a key is answered unless the sidecar is told otherwise: 7 days. */
export const DEFAULT_KEY_RETENTION_MS = 7 * 86_400_000;

/** Events whose answers one step of the sweep clears at most. */
const CLEAR_BATCH = 2_000;

/** A remembered call: the hash of its request and its encoded answer. */
export interface RememberedCall {
  requestHash: Buffer;
  response: Buffer;
}

interface FoundRow {
  request_hash: Buffer;
  response: Buffer;
  created_ms: number;
  seq: number | null;
  id: number | null;
}

/**
 * Finds, saves and prunes the keys of one store. One instance finds and saves keys for a store
 * (the sidecar's pipeline; its sweep and fold use the same): another would not know the keys
 * this one holds in memory. (Trail pruning's own instance only moves keys into the table.)
 */
export class IdempotencyKeys {
  private readonly s;
  /**
   * The keys on events after the fold as memory last saw it committed (scope, NUL, id -> seq),
   * loaded at the first use. A name only: `find` reads the event and takes it if it still
   * carries the key. Entries go once a fold past them is committed (`journal`).
   */
  private recent: Map<string, number> | undefined;
  private readonly journal: ChainJournal;
  private readonly hold: EventHold;
  /** The newest fold this instance knows of: a store nobody folds folds itself now and then. */
  private foldedHint = 0;

  constructor(private readonly db: Db) {
    this.journal = new ChainJournal(db, () => this.forgetFolded());
    this.hold = eventHold(db);
    this.s = {
      // A key of the events after the last fold: memory names the event, read by seq.
      onEventAt: db
        .prepare<{ scope: string; id: string; seq: number }, FoundRow>(
          `SELECT request_hash, answer AS response, time_ms AS created_ms, seq, NULL AS id
             FROM audit_event WHERE seq = @seq AND correlation_id = @id AND call_scope = @scope`,
        )
        .safeIntegers(false),
      // Folded keys (nearly all since migration 11 are on events), then the table's.
      find: db
        .prepare<{ scope: string; id: string }, FoundRow>(
          `SELECT e.request_hash, e.answer AS response, e.time_ms AS created_ms, e.seq, NULL AS id
             FROM audit_answer_key k JOIN audit_event e ON e.seq = k.seq
            WHERE k.correlation_id = @id AND k.call_scope = @scope AND e.correlation_id = @id
              AND e.call_scope = @scope
           UNION ALL
           SELECT request_hash, response, created_ms, NULL, id
             FROM idempotency WHERE method = @scope AND correlation_id = @id`,
        )
        .safeIntegers(false),
      folded: db
        .prepare<[], number>("SELECT value FROM meta WHERE key = 'answer_keys_folded_seq'")
        .pluck()
        .safeIntegers(false),
      unfolded: db
        .prepare<[number], { seq: number; correlation_id: string; call_scope: string }>(
          `SELECT seq, correlation_id, call_scope FROM audit_event
            WHERE seq > ? AND call_scope IS NOT NULL ORDER BY seq`,
        )
        .safeIntegers(false),
      foldEnd: db
        .prepare<[number, number], number>(
          "SELECT min(? + ?, coalesce((SELECT max(seq) FROM audit_event), 0))",
        )
        .pluck()
        .safeIntegers(false),
      // A later event under the same key replaces an earlier one (only after it was forgotten).
      indexKeys: db.prepare<[number, number]>(
        `INSERT OR REPLACE INTO audit_answer_key (correlation_id, call_scope, seq)
           SELECT correlation_id, call_scope, seq FROM audit_event
            WHERE seq > ? AND seq <= ? AND call_scope IS NOT NULL ORDER BY seq`,
      ),
      setFolded: db.prepare<[number]>(
        "UPDATE meta SET value = ? WHERE key = 'answer_keys_folded_seq'",
      ),
      unindexOne: db.prepare<[number]>(
        `DELETE FROM audit_answer_key WHERE (correlation_id, call_scope, seq) IN
           (SELECT correlation_id, call_scope, seq FROM audit_event WHERE seq = ?)`,
      ),
      unindexRange: db.prepare<[number, number]>(
        `DELETE FROM audit_answer_key WHERE (correlation_id, call_scope, seq) IN
           (SELECT correlation_id, call_scope, seq FROM audit_event
             WHERE seq > ? AND seq <= ? AND call_scope IS NOT NULL)`,
      ),
      saveKey: db.prepare<[string, string, Buffer, Buffer, number]>(
        "INSERT INTO idempotency (method, correlation_id, request_hash, response, created_ms) VALUES (?, ?, ?, ?, ?)",
      ),
      onEvent: db.prepare<[string, Buffer, Buffer, number, string]>(
        `UPDATE audit_event SET call_scope = ?, request_hash = ?, answer = ?
          WHERE seq = ? AND correlation_id = ?`,
      ),
      dropKey: db.prepare<[number]>("DELETE FROM idempotency WHERE id = ?"),
      forgetOne: db.prepare<[number]>(
        "UPDATE audit_event SET call_scope = NULL, request_hash = X'', answer = NULL WHERE seq = ?",
      ),
      // Keys are stored in arrival order: delete the ones before the first key young enough to
      // keep. A key older than the cutoff stored behind a younger one (the clock stepped back)
      // waits for it; a key stamped in the future (the clock had jumped ahead) does not count as
      // young, so it cannot hold back every key after it. No key stamped between the cutoff and
      // now is ever deleted.
      pruneKeys: db.prepare<{ cutoff: number; now: number }>(
        `DELETE FROM idempotency WHERE id < coalesce(
           (SELECT id FROM idempotency WHERE created_ms BETWEEN @cutoff AND @now ORDER BY id LIMIT 1),
           (SELECT max(id) + 1 FROM idempotency))`,
      ),
      // The same rule over the events after the last cleared one, a batch at a time.
      cleared: db
        .prepare<[], number>("SELECT value FROM meta WHERE key = 'answers_cleared_seq'")
        .pluck()
        .safeIntegers(false),
      clearable: db
        .prepare<{ from: number; cutoff: number; now: number; batch: number }, number>(
          `SELECT min(@from + @batch, coalesce(
             (SELECT seq - 1 FROM audit_event WHERE seq > @from AND seq <= @from + @batch
               AND time_ms BETWEEN @cutoff AND @now ORDER BY seq LIMIT 1),
             (SELECT max(seq) FROM audit_event), @from))`,
        )
        .pluck()
        .safeIntegers(false),
      // Events pruned off the trail (--retain-shipped) need no clearing: start after them.
      oldest: db
        .prepare<[], number | null>("SELECT min(seq) FROM audit_event")
        .pluck()
        .safeIntegers(false),
      clear: db.prepare<[number, number]>(
        `UPDATE audit_event SET call_scope = NULL, request_hash = X'', answer = NULL
          WHERE seq > ? AND seq <= ? AND call_scope IS NOT NULL`,
      ),
      markCleared: db.prepare<[number]>(
        "UPDATE meta SET value = ? WHERE key = 'answers_cleared_seq'",
      ),
      keepKeysOf: db.prepare<[number, number]>(
        `INSERT OR REPLACE INTO idempotency (method, correlation_id, request_hash, response, created_ms)
           SELECT call_scope, correlation_id, request_hash, answer, time_ms FROM audit_event
            WHERE seq > ? AND seq <= ? AND call_scope IS NOT NULL ORDER BY seq`,
      ),
    };
  }

  /**
   * The call first answered under this key, if it was remembered at most `retentionMs` before
   * `nowMs` (a key stamped after `nowMs`, by a clock since stepped back, counts as young). An
   * older key found is forgotten here, in the caller's transaction, so the key is free again.
   */
  find(
    scope: string,
    correlationId: string,
    nowMs: number,
    retentionMs = DEFAULT_KEY_RETENTION_MS,
  ): RememberedCall | undefined {
    const name = `${scope}\0${correlationId}`;
    const seq = this.recentKeys().get(name);
    const row =
      (seq !== undefined ? this.s.onEventAt.get({ scope, id: correlationId, seq }) : undefined) ??
      this.s.find.get({ scope, id: correlationId });
    if (!row) return undefined;
    if (row.created_ms < nowMs - retentionMs) {
      if (row.seq !== null) {
        this.s.unindexOne.run(row.seq);
        this.s.forgetOne.run(row.seq);
      } else if (row.id !== null) this.s.dropKey.run(row.id);
      return undefined;
    }
    return { requestHash: row.request_hash, response: row.response };
  }

  /**
   * Remembers a call's answer under its key, in the transaction of the call's writes: on audit
   * event `eventSeq` (the call's own, appended under this correlation_id), or in the table when
   * the call appended none (or that event does not carry this correlation_id).
   */
  save(
    scope: string,
    correlationId: string,
    call: RememberedCall,
    nowMs: number,
    eventSeq?: number,
  ): void {
    if (
      eventSeq !== undefined &&
      // The event held for this answer goes in with it; one already in the store takes it.
      (this.hold.answer(eventSeq, correlationId, scope, call.requestHash, call.response) ||
        this.s.onEvent.run(scope, call.requestHash, call.response, eventSeq, correlationId)
          .changes === 1)
    ) {
      this.recentKeys().set(`${scope}\0${correlationId}`, eventSeq);
      if (eventSeq - this.foldedHint >= SELF_FOLD_EVERY) this.fold(SELF_FOLD_EVERY * 2);
      return;
    }
    this.s.saveKey.run(scope, correlationId, call.requestHash, call.response, nowMs);
  }

  /**
   * Forgets the table's keys older than `retentionMs`, oldest first; returns how many went.
   * (Keys on events go by `clearAnswers`.)
   */
  prune(nowMs: number, retentionMs: number): number {
    return this.s.pruneKeys.run({ cutoff: nowMs - retentionMs, now: nowMs }).changes;
  }

  /**
   * Clears the answers off at most one batch of events older than `retentionMs`, after the last
   * event cleared, by the table's rule (stopping at the first event stamped between the cutoff
   * and now). Returns true when a full batch went, so more may be waiting.
   */
  clearAnswers(nowMs: number, retentionMs: number): boolean {
    const from = Math.max(this.s.cleared.get() ?? 0, (this.s.oldest.get() ?? 1) - 1);
    const to =
      this.s.clearable.get({ from, cutoff: nowMs - retentionMs, now: nowMs, batch: CLEAR_BATCH }) ??
      from;
    if (to <= from) return false;
    this.s.unindexRange.run(from, to);
    this.s.clear.run(from, to);
    this.s.markCleared.run(to);
    return to - from >= CLEAR_BATCH;
  }

  /**
   * Moves the keys on events `afterSeq` < seq <= `toSeq` into the table, in the transaction that
   * deletes those events (trail pruning), so a key outlives its event for the whole retention.
   */
  keepKeysOfEvents(afterSeq: number, toSeq: number): number {
    this.s.unindexRange.run(afterSeq, toSeq);
    return this.s.keepKeysOf.run(afterSeq, toSeq).changes;
  }

  /**
   * Indexes the keys of at most `maxEvents` events after the last fold, inside the caller's
   * transaction (the sidecar does it every second with the risk fold); returns how far it went.
   */
  fold(maxEvents = 20_000): number {
    // Loaded before this transaction moves the fold: memory must hold what the store's
    // committed fold does not, should the transaction roll back.
    this.recentKeys();
    const from = this.s.folded.get() ?? 0;
    const to = this.s.foldEnd.get(from, maxEvents) ?? from;
    this.foldedHint = Math.max(this.foldedHint, from);
    if (to <= from) return 0;
    this.s.indexKeys.run(from, to);
    this.s.setFolded.run(to);
    this.foldedHint = to;
    // Memory lets go of these keys once this transaction is known to be committed.
    this.journal.afterCommit();
    return to - from;
  }

  /** How many keys memory holds (for tests). */
  get remembered(): number {
    return this.recent?.size ?? 0;
  }

  /** The keys on events after the last fold, loaded from the store at the first use. */
  private recentKeys(): Map<string, number> {
    if (this.recent) return this.recent;
    const recent = new Map<string, number>();
    this.foldedHint = this.s.folded.get() ?? 0;
    for (const row of this.s.unfolded.iterate(this.foldedHint)) {
      recent.set(`${row.call_scope}\0${row.correlation_id}`, row.seq);
    }
    this.recent = recent;
    return recent;
  }

  /** Lets go of the keys a committed fold indexed (run outside any transaction). */
  private forgetFolded(): void {
    const recent = this.recent;
    if (!recent || !this.db.open) return;
    const folded = this.s.folded.get() ?? 0;
    for (const [name, seq] of recent) if (seq <= folded) recent.delete(name);
  }
}
