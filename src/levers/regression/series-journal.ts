/**
 * The series journal: how the in-memory KPI series stay equal to the committed store across
 * rollbacks (the regression lever's twin of the risk book's BookJournal).
 *
 * Every change of a series in memory belongs to a place in the audit chain: a RecordKpi to its
 * KPI event, a stored change of a wire's state (armed, frozen, tripped) to the newest event
 * when it was written, with a check that the stored row still says what was written. A
 * rollback (a call's savepoint, or a shared commit that failed) removes a suffix of the trail,
 * and each link hashes the one before it, so a change whose event is still in the store with
 * the hash noted (and whose row check holds) proves that every change before it holds too.
 * `sync()` walks the changes newest first until one holds, and forgets the series of each one
 * that does not: a forgotten series is read again from the store (its tables, then its events
 * after the fold) on its next use. Once no transaction is open, what the store holds is
 * committed and the journal is emptied.
 */
import type { ChainLink } from "../../store/audit-log.js";
import type { Db } from "../../store/database.js";

interface Change extends ChainLink {
  key: string;
  holds: (() => boolean) | undefined;
}

/** The series changed by changes not known to be committed yet, checked against the chain. */
export class SeriesJournal {
  private readonly changes: Change[] = [];
  private readonly hashAt;
  private trimScheduled = false;

  /** `forget` drops a series from memory (it is read again from the store on its next use). */
  constructor(
    private readonly db: Db,
    private readonly forget: (key: string) => void,
  ) {
    this.hashAt = db
      .prepare<[number], string>("SELECT hash FROM audit_event WHERE seq = ?")
      .pluck();
  }

  /** Notes a change of series `key` at `link`; `holds` checks what it stored, if anything. */
  record(link: ChainLink, key: string, holds?: () => boolean): void {
    this.changes.push({ seq: link.seq, hash: link.hash, key, holds });
    if (this.trimScheduled) return;
    this.trimScheduled = true;
    setImmediate(this.trim);
  }

  /** How many changes are not known to be committed (for tests). */
  get pending(): number {
    return this.changes.length;
  }

  /** Forgets the series whose changes a rollback undid; call before reading a series. */
  sync(): void {
    const changes = this.changes;
    while (changes.length > 0) {
      const last = changes[changes.length - 1] as Change;
      if (this.holds(last)) break;
      changes.pop();
      this.forget(last.key);
    }
    // Outside a transaction, what the store holds is committed.
    if (!this.db.inTransaction) changes.length = 0;
  }

  private holds(c: Change): boolean {
    // Sequence number 0: the trail was empty when the change was made.
    if (c.seq > 0 && this.hashAt.get(c.seq) !== c.hash) return false;
    return c.holds?.() ?? true;
  }

  /** Empties the journal once the transactions of its changes have ended. */
  private readonly trim = (): void => {
    if (this.db.inTransaction) {
      setImmediate(this.trim);
      return;
    }
    this.trimScheduled = false;
    if (this.db.open) this.sync();
  };
}
