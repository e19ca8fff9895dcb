/** The singleton go-live row: read on every PROD decision, changed only by operators and tripwires. */
import type { Db } from "../../store/database.js";
import { CommittedValue } from "../../store/policy-revision.js";
import type { GoLiveFlags } from "./rules.js";

/** The stored go-live state. */
export interface GoLiveRecord extends GoLiveFlags {
  changedBy: string;
  reason: string;
  updatedMs: number;
  revision: number;
}

interface Row {
  go_live_enabled: number;
  kill_switch_engaged: number;
  changed_by: string;
  reason: string;
  updated_ms: number;
  revision: number;
}

/** Told the committed go-live state after a change of it commits. */
export type GoLiveListener = (state: Readonly<GoLiveRecord>) => void;

/** Reads and changes the go-live row. */
export class GoLiveState {
  private readonly select;
  private readonly update;
  private readonly cache;
  private readonly listeners = new Set<GoLiveListener>();
  /** The revision listeners were last told of (undefined while nobody listens). */
  private announced: number | undefined;
  private announcing = false;

  constructor(private readonly db: Db) {
    this.cache = new CommittedValue<Readonly<GoLiveRecord>>(db);
    this.select = db.prepare<[], Row>("SELECT * FROM golive_state WHERE id = 1");
    this.update = db.prepare(
      `UPDATE golive_state SET go_live_enabled = @go, kill_switch_engaged = @kill, changed_by = @by,
        reason = @reason, updated_ms = @ms, revision = revision + 1 WHERE id = 1`,
    );
  }

  /** The current state (kept in memory between writes; see CommittedValue). */
  get(): Readonly<GoLiveRecord> {
    return this.cache.get(() => this.load());
  }

  private load(): Readonly<GoLiveRecord> {
    const row = this.select.get();
    if (!row) throw new Error("golive_state row is missing: the store is not migrated");
    return Object.freeze({
      goLiveEnabled: row.go_live_enabled === 1,
      killSwitchEngaged: row.kill_switch_engaged === 1,
      changedBy: row.changed_by,
      reason: row.reason,
      updatedMs: row.updated_ms,
      revision: row.revision,
    });
  }

  /** Sets the switches (inside the caller's transaction) and returns the new state. */
  set(flags: GoLiveFlags, by: string, reason: string, nowMs: number): Readonly<GoLiveRecord> {
    this.update.run({
      go: flags.goLiveEnabled ? 1 : 0,
      kill: flags.killSwitchEngaged ? 1 : 0,
      by,
      reason,
      ms: nowMs,
    });
    this.cache.invalidate();
    if (this.listeners.size > 0) this.announceOnceCommitted();
    return this.get();
  }

  /**
   * Calls `listener` with the committed state after every change of it commits; returns the
   * function that stops. Call it outside a transaction (the state it starts from is read then).
   */
  onCommittedChange(listener: GoLiveListener): () => void {
    if (this.listeners.size === 0) this.announced = this.get().revision;
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
      if (this.listeners.size === 0) this.announced = undefined;
    };
  }

  /**
   * Tells listeners once the transaction that wrote the row has ended, and only if the committed
   * revision moved: calls share group commits, and a write a rollback undid is never announced.
   * better-sqlite3 is synchronous, so the transaction is over by a microtask or a later turn.
   */
  private announceOnceCommitted(): void {
    if (this.announcing) return;
    this.announcing = true;
    const check = () => {
      if (this.db.inTransaction) {
        setImmediate(check);
        return;
      }
      this.announcing = false;
      if (this.announced === undefined) return;
      const state = this.get();
      if (state.revision === this.announced) return;
      this.announced = state.revision;
      for (const listener of this.listeners) listener(state);
    };
    queueMicrotask(check);
  }
}
