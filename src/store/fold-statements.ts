/**
 * A fold's statements prepared once on a connection. A fold run with `exec` parses its SQL
 * every time, and one that creates and drops scratch tables changes the schema, after which
 * SQLite prepares every statement of the connection again on its next use: the next
 * decisions and the next applied policy change paid for each fold.
 */
import type { Statement } from "better-sqlite3";
import type { Db } from "./database.js";

/** Runs a fold (RISK_FOLD_STEPS, KPI_FOLD_STEPS) from statements prepared once. */
export class FoldStatements {
  private steps: readonly Statement[];

  /**
   * Creates the fold's scratch `tables` (CREATE TEMP TABLE IF NOT EXISTS: a schema change the
   * first time on this connection only) and prepares `steps`.
   */
  constructor(
    private readonly db: Db,
    private readonly tables: string,
    private readonly sql: readonly string[],
  ) {
    this.steps = this.prepare();
  }

  private prepare(): readonly Statement[] {
    this.db.exec(this.tables);
    return this.sql.map((sql) => this.db.prepare(sql));
  }

  /**
   * Runs every step in order (inside the caller's transaction). Scratch tables created inside
   * a transaction that was rolled back are gone: they are created again, once.
   */
  run(): void {
    try {
      for (const step of this.steps) step.run();
    } catch (err) {
      if (!/no such table: temp\./.test((err as Error).message)) throw err;
      this.steps = this.prepare();
      for (const step of this.steps) step.run();
    }
  }
}
