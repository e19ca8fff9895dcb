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
  private readonly steps: readonly Statement[];

  /**
   * Creates the fold's scratch `tables` (CREATE TEMP TABLE IF NOT EXISTS: a schema change the
   * first time on this connection only) and prepares `steps`.
   */
  constructor(db: Db, tables: string, steps: readonly string[]) {
    db.exec(tables);
    this.steps = steps.map((sql) => db.prepare(sql));
  }

  /** Runs every step in order (inside the caller's transaction). */
  run(): void {
    for (const step of this.steps) step.run();
  }
}
