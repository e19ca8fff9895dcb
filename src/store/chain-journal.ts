/**
 * The chain journal: how state a lever keeps in memory (the risk book, the KPI series, the
 * scorecards) stays equal to the committed store across rollbacks. Every change of it belongs
 * to one audit event; the journal keeps, for each change not known to be committed yet, the
 * event's place in the chain and how to undo it.
 *
 * A rollback (a call's savepoint, or a shared commit that failed) removes a suffix of the audit
 * trail, since events are appended in order. Because each link hashes the one before it, an
 * event found in the store with the hash the journal noted proves that every event before it
 * is there too. So `sync()` undoes changes newest first until it meets one whose event is
 * still in the store, with one point read by sequence number; once no transaction is open,
 * everything still in the store is committed and the journal is emptied.
 */
import type { Statement } from "better-sqlite3";
import type { ChainLink } from "./audit-log.js";
import type { Db } from "./database.js";
import { type EventHold, eventHold, unguardedPrepare } from "./held-event.js";

/**
 * A book kept in memory (risk, KPI series, scorecards) that has not been folded for this many
 * sequence numbers folds itself, inside the call that reaches it, so memory and the next
 * start's replay stay bounded where nothing calls `fold` (an engine that embeds govd has no
 * fold timer); the sidecar folds far more often.
 */
export const SELF_FOLD_EVERY = 50_000;

/**
 * The journals of each store waiting for their changes' transactions to end. Under load that
 * never pauses, a turn of the event loop seldom finds no transaction open (the next batch of
 * calls opens one first), so a journal that only looked between turns kept every change, and
 * what it frees, for as long as the load lasted: `trimCommitted` runs them right after a commit.
 */
const waitingByStore = new WeakMap<Db, Set<ChainJournal>>();

/**
 * Empties the journals of `db` whose changes' transactions have ended (GroupCommit calls it
 * after each commit or rollback); does nothing while a transaction is open.
 */
export function trimCommitted(db: Db): void {
  if (db.inTransaction) return;
  const waiting = waitingByStore.get(db);
  if (!waiting || waiting.size === 0) return;
  for (const journal of [...waiting]) journal.trimNow();
}

interface Change extends ChainLink {
  undo: () => void;
  holds: (() => boolean) | undefined;
}

/** Undo records of in-memory changes not known to be committed, checked against the audit chain. */
export class ChainJournal {
  private readonly changes: Change[] = [];
  private readonly hashAt;
  private readonly hold: EventHold;
  private trimScheduled = false;

  /** `afterCommitted` runs outside any transaction once the journal's changes are committed. */
  constructor(
    private readonly db: Db,
    private readonly afterCommitted: () => void = () => {},
  ) {
    this.hold = eventHold(db);
    // Unguarded (see held-event.ts): the hold answers for the event it holds.
    this.hashAt = (
      unguardedPrepare(db, "SELECT hash FROM audit_event WHERE seq = ?") as Statement<
        [number],
        string
      >
    ).pluck();
  }

  /**
   * Notes a change made at `link` (the event it wrote, or the chain's head when it wrote a row
   * instead: then `holds` checks that the row still says what was written), and how to undo it.
   */
  record(link: ChainLink, undo: () => void, holds?: () => boolean): void {
    this.changes.push({ seq: link.seq, hash: link.hash, undo, holds });
    this.afterCommit();
  }

  /**
   * Runs `afterCommitted` (and empties the journal) once no transaction is open: right after
   * the next commit through GroupCommit, or at a turn of the event loop without a transaction.
   */
  afterCommit(): void {
    if (this.trimScheduled) return;
    this.trimScheduled = true;
    let waiting = waitingByStore.get(this.db);
    if (!waiting) {
      waiting = new Set();
      waitingByStore.set(this.db, waiting);
    }
    waiting.add(this);
    setImmediate(this.trim);
  }

  /** Empties the journal now if a trim is due and no transaction is open (see `trimCommitted`). */
  trimNow(): void {
    if (this.trimScheduled && !this.db.inTransaction) this.finishTrim();
  }

  /** How many changes are not known to be committed (for tests). */
  get pending(): number {
    return this.changes.length;
  }

  /** Undoes the changes a rollback removed; call before reading the state kept in memory. */
  sync(): void {
    const changes = this.changes;
    while (changes.length > 0) {
      const last = changes[changes.length - 1] as Change;
      if (this.holds(last)) break;
      changes.pop();
      last.undo();
    }
    // Outside a transaction, what the store holds is committed.
    if (!this.db.inTransaction) changes.length = 0;
  }

  private holds(c: Change): boolean {
    // Sequence number 0: the trail was empty when the change was made.
    if (c.seq > 0 && (this.hold.hashAt(c.seq) ?? this.hashAt.get(c.seq)) !== c.hash) return false;
    return c.holds?.() ?? true;
  }

  /** Empties the journal once the transactions of its changes have ended. */
  private readonly trim = (): void => {
    // Done already, right after a commit.
    if (!this.trimScheduled) return;
    if (this.db.inTransaction) {
      setImmediate(this.trim);
      return;
    }
    this.finishTrim();
  };

  private finishTrim(): void {
    this.trimScheduled = false;
    waitingByStore.get(this.db)?.delete(this);
    if (!this.db.open) return;
    this.sync();
    this.afterCommitted();
  }
}
