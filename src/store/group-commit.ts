/**
 * Group commit: the decisions that reach the store in one turn of the event loop share one
 * SQLite transaction, and each is answered only once that transaction has committed.
 *
 * A commit in WAL mode writes every page the transaction dirtied (a Reserve dirties about ten:
 * ledger, reservation, audit trail and idempotency pages with their indexes). Calls that arrive
 * together dirty mostly the same pages, so one commit for all of them writes each page once.
 * Each call still runs alone, in order, inside a savepoint of its own: a call that fails undoes
 * only its own writes. Nobody hears an answer before the writes behind it are committed, so
 * an acknowledged decision is exactly as durable as with a transaction per call; if the shared
 * commit fails, every call in it fails with that error and nothing of the batch is kept.
 */
import { trimCommitted } from "./chain-journal.js";
import type { Db } from "./database.js";

/** Answers one call of a batch: `failed` holds the commit's error when the batch was lost. */
type Settle = (failed: { error: unknown } | undefined) => void;

/** Options of a group commit. */
export interface GroupCommitOptions {
  /** A batch commits at once when it holds this many calls (default 256). */
  maxCalls?: number;
}

/** Batches the writes of concurrent calls into one transaction per event-loop turn. */
export class GroupCommit {
  private batch: Settle[] | undefined;
  /** Told once the open batch has committed (or failed): see `settled`. */
  private waiting: (() => void)[] = [];
  /** A trim of the journals is queued for the end of the current task (see `trimJournals`). */
  private trimQueued = false;
  private readonly maxCalls: number;
  private readonly sql;
  /** Batches committed so far, and the calls they carried: for metrics and tests. */
  readonly stats = { batches: 0, calls: 0 };
  /**
   * Runs after every commit that may have written, outside any transaction (the sidecar notes
   * the write for its WAL checkpointer and wakes its event shipper). A `runNow` whose work
   * changed no row is not one: timers that find nothing to do (a fold, a sweep) leave the
   * writer quiet, so the checkpointer may start the WAL over before the next real commit.
   * Batches and `runDecision` always count (their calls write audit events).
   */
  afterCommit: (() => void) | undefined;

  constructor(
    private readonly db: Db,
    options: GroupCommitOptions = {},
  ) {
    this.maxCalls = options.maxCalls ?? 256;
    this.sql = {
      begin: db.prepare("BEGIN IMMEDIATE"),
      commit: db.prepare("COMMIT"),
      rollback: db.prepare("ROLLBACK"),
      savepoint: db.prepare("SAVEPOINT govd_call"),
      release: db.prepare("RELEASE govd_call"),
      rollbackTo: db.prepare("ROLLBACK TO govd_call"),
      // Rows this connection has inserted, updated or deleted since it opened.
      totalChanges: db.prepare("SELECT total_changes()").pluck(),
    };
  }

  /** True while a batch is open: its writes are not committed yet. */
  get open(): boolean {
    return this.batch !== undefined;
  }

  /**
   * Resolves once no batch is open: at once when none is, else right after the open batch has
   * committed (or failed). For work outside the calls (the event shipper's reads) that would
   * otherwise commit a batch early with `runNow` and split it in two.
   */
  settled(): Promise<void> {
    if (!this.batch) return Promise.resolve();
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  /**
   * Runs `work` now, in a savepoint of the open batch (opening one if none is), and resolves
   * with its result once the batch has committed; rejects with its own error, or the commit's.
   */
  run<T>(work: () => T): Promise<T> {
    const batch = this.begin();
    let outcome: { value: T } | { error: unknown };
    try {
      outcome = { value: this.inSavepoint(work) };
    } catch (error) {
      outcome = { error };
    }
    return new Promise<T>((resolve, reject) => {
      batch.push((failed) => {
        if (failed) reject(failed.error);
        else if ("error" in outcome) reject(outcome.error);
        else resolve(outcome.value);
      });
      if (batch.length >= this.maxCalls) this.commit();
    });
  }

  /**
   * Runs `work` in a transaction of its own and returns its result once committed, after
   * committing the open batch (if any): for a caller that cannot wait for the batch.
   * `afterCommit` runs only if the work changed a row (see `afterCommit`).
   */
  runNow<T>(work: () => T): T {
    return this.runAlone(work, true);
  }

  /**
   * `runNow` for a decision answered in-process: it always writes (its audit event), so
   * `afterCommit` runs without the two reads that tell whether it wrote.
   */
  runDecision<T>(work: () => T): T {
    return this.runAlone(work, false);
  }

  private runAlone<T>(work: () => T, checkWrites: boolean): T {
    this.commit();
    // Inside a transaction someone else opened, this work is part of it.
    if (this.db.inTransaction) return this.inSavepoint(work);
    const changesBefore = checkWrites ? this.sql.totalChanges.get() : -1;
    this.sql.begin.run();
    let result: T;
    try {
      result = work();
      this.sql.commit.run();
    } catch (err) {
      if (this.db.inTransaction) this.sql.rollback.run();
      this.trimJournals();
      throw err;
    }
    this.trimJournals();
    if (!checkWrites || this.sql.totalChanges.get() !== changesBefore) this.afterCommit?.();
    return result;
  }

  /** Commits the open batch now (if any) and answers its calls. */
  commit(): void {
    const batch = this.batch;
    if (!batch) return;
    this.batch = undefined;
    let failure: { error: unknown } | undefined;
    try {
      this.sql.commit.run();
      this.stats.batches++;
      this.stats.calls += batch.length;
    } catch (error) {
      failure = { error };
      try {
        if (this.db.inTransaction) this.sql.rollback.run();
      } catch {
        // The calls are told the commit's error; a failed rollback adds nothing they can use.
      }
    }
    this.trimJournals();
    for (const settle of batch) settle(failure);
    if (this.waiting.length > 0) {
      const waiting = this.waiting;
      this.waiting = [];
      for (const resolve of waiting) resolve();
    }
    if (!failure) this.afterCommit?.();
  }

  /**
   * Empties the journals of changes this commit or rollback decided (see `trimCommitted`) once
   * the current task is done: after the answers are handed over, before the next I/O callback
   * can open another transaction, so a decision does not wait for it.
   */
  private trimJournals(): void {
    if (this.trimQueued) return;
    this.trimQueued = true;
    queueMicrotask(() => {
      this.trimQueued = false;
      trimCommitted(this.db);
    });
  }

  /**
   * Runs `work` in a savepoint of the open transaction, undone if it throws. (Prepared once:
   * better-sqlite3's db.transaction() builds four wrappers per call, 3% of a Reserve's CPU.)
   */
  private inSavepoint<T>(work: () => T): T {
    this.sql.savepoint.run();
    try {
      const value = work();
      this.sql.release.run();
      return value;
    } catch (err) {
      if (this.db.inTransaction) {
        this.sql.rollbackTo.run();
        this.sql.release.run();
      }
      throw err;
    }
  }

  private begin(): Settle[] {
    if (this.batch) return this.batch;
    this.sql.begin.run();
    const batch: Settle[] = [];
    this.batch = batch;
    // After the I/O callbacks of this turn: every call that arrived with this one joins it.
    setImmediate(() => {
      if (this.batch === batch) this.commit();
    });
    return batch;
  }
}
