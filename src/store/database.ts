/** The sidecar's SQLite store: opening, pragmas and schema versions. */
import { closeSync, openSync } from "node:fs";
import Database from "better-sqlite3";
import { guardTrailReads } from "./held-event.js";
import { LATEST_VERSION, type Migration, migrations } from "./migrations.js";

/** The open store handle every lever's data access takes. */
export type Db = Database.Database;

/** A store problem an operator must act on (corrupt file, newer schema, read-only file). */
export class StoreError extends Error {
  override name = "StoreError";
}

/** Opens (creating if needed) a SQLite store with WAL and synchronous=NORMAL. */
export function openDatabase(file: string, options: { readonly?: boolean } = {}): Db {
  let db: Db;
  // A new store is made readable by its owner only; SQLite gives its -wal and -shm files the
  // store's mode. An existing store keeps the mode its operator chose.
  if (!options.readonly && file !== ":memory:") createPrivately(file);
  try {
    db = new Database(file, {
      readonly: options.readonly ?? false,
      fileMustExist: options.readonly ?? false,
    });
  } catch (err) {
    throw new StoreError(`cannot open store ${file}: ${(err as Error).message}`);
  }
  try {
    db.pragma("busy_timeout = 5000");
    if (!options.readonly) {
      db.pragma("journal_mode = WAL");
      db.pragma("synchronous = NORMAL");
    }
    db.pragma("foreign_keys = ON");
    // Reading the schema proves the file is a SQLite database.
    db.prepare("SELECT count(*) FROM sqlite_master").get();
    // A file this process cannot write opens without complaint and fails on the first write:
    // find out now, with a write that is rolled back, rather than at the first decision.
    if (!options.readonly) {
      try {
        db.exec("BEGIN IMMEDIATE; CREATE TABLE govd_write_probe (x); ROLLBACK");
      } finally {
        if (db.inTransaction) db.exec("ROLLBACK");
      }
    }
  } catch (err) {
    db.close();
    throw new StoreError(describeSqliteError(file, err));
  }
  // No statement reads the trail without the event a call holds for its answer.
  guardTrailReads(db);
  return db;
}

/** Turns a SQLite failure into a sentence an operator can act on. */
export function describeSqliteError(file: string, err: unknown): string {
  const code = (err as { code?: string }).code ?? "";
  const message = (err as Error).message;
  if (code === "SQLITE_NOTADB" || code === "SQLITE_CORRUPT") {
    return `store ${file} is not a valid SQLite database (corrupt or not a govd store): ${message}; restore it from a backup or move it away`;
  }
  if (code.startsWith("SQLITE_READONLY") || code === "SQLITE_CANTOPEN" || code === "SQLITE_PERM") {
    return `store ${file} cannot be written (${message}); check the file's and its folder's permissions`;
  }
  if (code === "SQLITE_FULL") {
    return `store ${file}: the disk is full (${message}); free space on its file system: writes are refused until then and resume by themselves, reads go on`;
  }
  return `store ${file}: ${message}`;
}

/** The schema version the store is at (0 for a new file). */
export function schemaVersion(db: Db): number {
  return db.pragma("user_version", { simple: true }) as number;
}

/** Applies or reverts migrations in one transaction each until the store is at `target`. */
export function migrateTo(db: Db, target: number = LATEST_VERSION): Migration[] {
  if (!Number.isInteger(target) || target < 0 || target > LATEST_VERSION) {
    throw new StoreError(
      `unknown schema version ${target}: this build knows 0 to ${LATEST_VERSION}`,
    );
  }
  let current = schemaVersion(db);
  if (current > LATEST_VERSION) throw newerStoreError(current);
  const applied: Migration[] = [];
  while (current !== target) {
    const up = current < target;
    const step = migrations.find((m) => m.version === (up ? current + 1 : current));
    if (!step) throw new StoreError(`no migration step from version ${current}`);
    db.transaction(() => {
      db.exec(up ? step.up : step.down);
      db.pragma(`user_version = ${up ? step.version : step.version - 1}`);
    }).immediate();
    current = schemaVersion(db);
    applied.push(step);
  }
  return applied;
}

/** Refuses a store migrated by a newer govd: serving it could misread or corrupt its data. */
export function assertServable(db: Db): void {
  const version = schemaVersion(db);
  if (version > LATEST_VERSION) throw newerStoreError(version);
  if (version < LATEST_VERSION) {
    throw new StoreError(
      `store is at schema version ${version}, this build needs ${LATEST_VERSION}: run 'govd migrate up'`,
    );
  }
}

function newerStoreError(version: number): StoreError {
  return new StoreError(
    `store is at schema version ${version}, newer than this build knows (${LATEST_VERSION}): upgrade govd or restore a backup`,
  );
}

/** Creates `file` empty with mode 0600 when it does not exist yet. */
function createPrivately(file: string): void {
  try {
    closeSync(openSync(file, "wx", 0o600));
  } catch {
    // There already (EEXIST), or not creatable here: SQLite's own open reports what matters.
  }
}
