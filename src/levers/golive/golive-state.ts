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

/** Reads and changes the go-live row. */
export class GoLiveState {
  private readonly select;
  private readonly update;
  private readonly cache;

  constructor(db: Db) {
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
    return this.get();
  }
}
