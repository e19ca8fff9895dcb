/** The policy revision: a counter every policy, go-live or tripwire change increments. */
import type { Db } from "./database.js";

/**
 * A value read from the store and kept in memory until this process writes it again.
 *
 * Decisions read the same few rows on every call (go-live, policies, the revision, tripped
 * wires); each read is a SQLite statement of its own, which costs more than the rest of a
 * CheckGoLive. The owner of the rows calls `invalidate()` on every write of them, so a decision
 * always sees every write this process made. While a transaction that wrote the rows may still
 * be open, loads are returned but not kept, so a write a rollback undoes is never served; once
 * that transaction has ended (committed or rolled back) the next load is kept again.
 *
 * This holds because the sidecar process is the only writer of its store (DESIGN.md: a sidecar
 * runs on its own SQLite file; `govd migrate` and restores run with the sidecar stopped) and
 * every write of the rows goes through the class that owns the cache.
 */
export class CommittedValue<T> {
  private value: T | undefined;
  private writerMayBeOpen = false;

  constructor(private readonly db: Db) {}

  /** The kept value, or `load()` (kept unless a writing transaction may still be open). */
  get(load: () => T): T {
    if (this.value !== undefined) return this.value;
    // Outside a transaction, any transaction that wrote the rows has ended.
    if (this.writerMayBeOpen && !this.db.inTransaction) this.writerMayBeOpen = false;
    const loaded = load();
    if (!this.writerMayBeOpen) this.value = loaded;
    return loaded;
  }

  /** Forgets the value; call on every write of the rows it was read from. */
  invalidate(): void {
    this.value = undefined;
    // A write outside a transaction has already committed.
    if (this.writerMayBeOpen || !this.db.inTransaction) return;
    this.writerMayBeOpen = true;
    // better-sqlite3 transactions are synchronous: by the time a microtask runs, the transaction
    // that made this write has committed or rolled back. Wait longer if one is open anyway.
    const settle = () => {
      if (this.db.inTransaction) setImmediate(settle);
      else this.writerMayBeOpen = false;
    };
    queueMicrotask(settle);
  }
}

/** Reads and bumps the revision decisions report as `policy_revision`. */
export class PolicyRevision {
  private readonly read;
  private readonly bump;
  private readonly cache;

  constructor(db: Db) {
    this.read = db.prepare<[], { value: number }>(
      "SELECT value FROM meta WHERE key = 'policy_revision'",
    );
    this.bump = db.prepare("UPDATE meta SET value = value + 1 WHERE key = 'policy_revision'");
    this.cache = new CommittedValue<bigint>(db);
  }

  /** The current revision. */
  current(): bigint {
    return this.cache.get(() => BigInt(this.read.get()?.value ?? 0));
  }

  /** Increments the revision (inside the change's transaction) and returns the new one. */
  next(): bigint {
    this.bump.run();
    this.cache.invalidate();
    return this.current();
  }
}
