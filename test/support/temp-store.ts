/** A store on a real SQLite file in a temporary folder, for tests below the RPC ports. */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Db, migrateTo, openDatabase } from "../../src/store/database.js";

/** An open store and how to throw it away. */
export interface TempStore {
  db: Db;
  /** Closes the store and deletes its folder. */
  remove(): void;
}

/** Opens a new store, migrated to `version` (the latest by default; 0 leaves it empty). */
export function openTempStore(version?: number): TempStore {
  const dir = mkdtempSync(join(tmpdir(), "govd-store-"));
  const db = openDatabase(join(dir, "sidecar.db"));
  if (version !== 0) migrateTo(db, version);
  return {
    db,
    remove() {
      if (db.open) db.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
