/**
 * Central's store: the revision log, the current entities and the fleet, on SQLite
 * (better-sqlite3, one process) or PostgreSQL (pg, one or more replicas), through one Kysely
 * query layer. Central's calls are asynchronous; the sidecar's hot path never runs here.
 */
import { EventEmitter } from "node:events";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import Database from "better-sqlite3";
import { Kysely, PostgresDialect, SqliteDialect, type Transaction } from "kysely";
import pg from "pg";
import type { Clock } from "../../clock.js";
import { type CentralTables, migrateCentral } from "./central-schema.js";
import { ChangeListener } from "./change-listener.js";
import { commitWithoutFsync } from "./commit-without-fsync.js";
import { RevisionWrite } from "./revision-write.js";

/** Revisions whose digest `change` keeps in memory. */
const ISSUED_KEPT = 1024;

/** Statements kept at most (a query with an IN list of another length is another text). */
const KEPT_STATEMENTS = 1024;

/**
 * better-sqlite3 as Kysely's SQLite dialect uses it, with each statement prepared once per SQL
 * text: the dialect prepares every query anew, and SQLite's parse and plan cost more than
 * running central's small queries. Safe because the dialect runs one query at a time on the
 * one connection and central never streams a query's rows.
 */
function preparedOnce(sqlite: Database.Database) {
  const kept = new Map<string, Database.Statement>();
  return {
    close: () => sqlite.close(),
    prepare(text: string): Database.Statement {
      let statement = kept.get(text);
      if (!statement) {
        statement = sqlite.prepare(text);
        if (kept.size >= KEPT_STATEMENTS) kept.clear();
        kept.set(text, statement);
      }
      return statement;
    },
  };
}

/** Which SQL engine a central store runs on. */
export type CentralEngine = "sqlite" | "postgres";

/** The head of the revision log. */
export interface RevisionHead {
  revision: number;
  digest: string;
  committedMs: number;
}

/** One committed change as stored. */
export interface ChangeRow {
  revision: number;
  kind: string;
  key: string;
  entity: Uint8Array;
  digest: string;
  committedMs: number;
}

/** Where a central store lives: `sqlite:PATH` or `postgres://...` (`postgresql://` too). */
export function parseStoreLocation(location: string): { engine: CentralEngine; target: string } {
  if (location.startsWith("sqlite:")) {
    const path = location.slice("sqlite:".length);
    if (path === "")
      throw new Error("--store sqlite:PATH needs a path, e.g. sqlite:/var/lib/govd/central.db");
    return { engine: "sqlite", target: path };
  }
  if (/^postgres(ql)?:\/\//.test(location)) return { engine: "postgres", target: location };
  throw new Error(
    `--store ${location}: expected sqlite:PATH or postgres://USER@HOST:PORT/DATABASE`,
  );
}

/** A store location for messages and logs, without a password. */
export function describeLocation(location: string): string {
  return location.replace(/(\/\/[^:/@]+):[^@]*@/, "$1:***@");
}

/** Central's store; `changes` says "revision" (a number) after each commit seen by this replica. */
export class CentralStore {
  /** Emits "revision" with the newest revision committed here or, on PostgreSQL, by any replica. */
  readonly changes = new EventEmitter();
  private listener: ChangeListener | undefined;
  private readonly reading = new Map<string, Promise<readonly ChangeRow[]>>();
  private readonly issued = new Map<number, { digest: string; committedMs: number }>();
  /** The newest revision `changes` announced (its first listener, so before any watcher's). */
  private announcedRevision = 0;

  private constructor(
    readonly db: Kysely<CentralTables>,
    readonly engine: CentralEngine,
    readonly location: string,
    readonly clock: Clock,
  ) {
    this.changes.setMaxListeners(0);
    this.changes.on("revision", (revision: number) => {
      if (revision > this.announcedRevision) this.announcedRevision = revision;
    });
  }

  /** Opens (creating and migrating) the store at `location`; returns it and the migrations applied. */
  static async open(
    location: string,
    clock: Clock,
    options: { log?: (message: string, err?: unknown) => void } = {},
  ): Promise<{ store: CentralStore; applied: string[] }> {
    const { engine, target } = parseStoreLocation(location);
    let db: Kysely<CentralTables>;
    if (engine === "sqlite") {
      const file = resolve(target);
      mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
      // Readable by its owner only, like a sidecar's store (SQLite gives -wal/-shm the same mode).
      if (!existsSync(file)) writeFileSync(file, "", { mode: 0o600 });
      const sqlite = new Database(file);
      sqlite.pragma("journal_mode = WAL");
      sqlite.pragma("synchronous = FULL");
      sqlite.pragma("busy_timeout = 5000");
      db = new Kysely<CentralTables>({
        dialect: new SqliteDialect({ database: preparedOnce(sqlite) }),
      });
    } else {
      const pool = new pg.Pool({ connectionString: target, max: 8 });
      // A dropped idle connection is replaced on the next query; it must not crash the process.
      pool.on("error", (err) => options.log?.("PostgreSQL pool connection failed", err));
      // pg emits a dropped connection's error on its client even while a query holds it (the
      // query fails too); without a listener there, that event would end the process.
      pool.on("connect", (client) => {
        client.on("error", (err) => options.log?.("PostgreSQL connection lost", err));
      });
      db = new Kysely<CentralTables>({ dialect: new PostgresDialect({ pool }) });
    }
    const store = new CentralStore(db, engine, location, clock);
    try {
      const applied = await migrateCentral(db, engine).catch((err: unknown) => {
        const code = (err as { code?: unknown }).code;
        if (engine === "postgres" && typeof code === "string" && /^(E[A-Z]+|08|28|3D)/.test(code)) {
          throw new Error(
            `cannot use PostgreSQL at ${describeLocation(location)}: ${(err as Error).message} (check --store: host, port, user and database)`,
          );
        }
        throw err;
      });
      if (engine === "postgres") {
        store.listener = new ChangeListener(target, (revision) =>
          store.changes.emit("revision", revision),
        );
        store.listener.log = options.log;
        await store.listener.start();
      }
      return { store, applied };
    } catch (err) {
      await db.destroy().catch(() => undefined);
      throw err;
    }
  }

  /**
   * Runs `work` in one transaction. A change appended through the write gets the next revision
   * (gapless, in commit order, never the same on two replicas: the meta row is locked); once
   * committed, this replica's watchers are told, and on PostgreSQL every replica's (NOTIFY is
   * sent inside the transaction, so it is delivered at commit and never for a rollback).
   */
  async write<T>(work: (w: RevisionWrite) => Promise<T>): Promise<T> {
    let last = 0;
    const result = await this.db.transaction().execute(async (trx) => {
      const w = new RevisionWrite(trx, this.engine, this.clock);
      const out = await work(w);
      last = await w.finish();
      return out;
    });
    if (last > 0) this.changes.emit("revision", last);
    return result;
  }

  /** One transaction that does not wait for the disk (see `commitWithoutFsync`). */
  withoutFsync<T>(work: (trx: Transaction<CentralTables>) => Promise<T>): Promise<T> {
    return commitWithoutFsync(this.db, this.engine, work);
  }

  /** The newest revision and its digest. */
  async head(
    db: Kysely<CentralTables> | Transaction<CentralTables> = this.db,
  ): Promise<RevisionHead> {
    const row = await db
      .selectFrom("central_meta")
      .select(["revision", "digest", "committed_ms"])
      .where("id", "=", 1)
      .executeTakeFirstOrThrow();
    return {
      revision: Number(row.revision),
      digest: row.digest,
      committedMs: Number(row.committed_ms),
    };
  }

  /**
   * Changes after `revision`, oldest first, at most `limit`. Watch streams at the same revision
   * asking at once (every stream, when a change commits) share one query begun after the
   * newest announced commit; the rows are shared, read-only.
   */
  changesAfter(revision: number, limit: number): Promise<readonly ChangeRow[]> {
    // Shared only among readers that asked after the same newest notification: a query that
    // began before a commit was announced may not hold it.
    const key = `${revision}:${limit}:${this.announcedRevision}`;
    const pending = this.reading.get(key);
    if (pending) return pending;
    const read = this.readChanges(revision, limit).finally(() => this.reading.delete(key));
    this.reading.set(key, read);
    return read;
  }

  private async readChanges(revision: number, limit: number): Promise<ChangeRow[]> {
    const rows = await this.db
      .selectFrom("central_change")
      .select(["revision", "kind", "entity_key", "entity", "digest", "committed_ms"])
      .where("revision", ">", revision)
      .orderBy("revision")
      .limit(limit)
      .execute();
    return rows.map((r) => ({
      revision: Number(r.revision),
      kind: r.kind,
      key: r.entity_key,
      entity: r.entity,
      digest: r.digest,
      committedMs: Number(r.committed_ms),
    }));
  }

  /**
   * The digest of `revision` and when it committed, if central issued it and still holds it.
   * A committed revision never changes, so the newest ones looked up are kept (every sidecar
   * acks the same few).
   */
  async change(revision: number): Promise<{ digest: string; committedMs: number } | undefined> {
    const kept = this.issued.get(revision);
    if (kept) return kept;
    const row = await this.db
      .selectFrom("central_change")
      .select(["digest", "committed_ms"])
      .where("revision", "=", revision)
      .executeTakeFirst();
    if (!row) return undefined;
    const found = { digest: row.digest, committedMs: Number(row.committed_ms) };
    if (this.issued.size >= ISSUED_KEPT) this.issued.clear();
    this.issued.set(revision, found);
    return found;
  }

  /** The current entities of one kind (all kinds when omitted), in key order. */
  async entities(
    kind?: string,
    db: Kysely<CentralTables> | Transaction<CentralTables> = this.db,
  ): Promise<{ kind: string; key: string; entity: Uint8Array; revision: number }[]> {
    let q = db.selectFrom("central_entity").select(["kind", "entity_key", "entity", "revision"]);
    if (kind !== undefined) q = q.where("kind", "=", kind);
    const rows = await q.orderBy("kind").orderBy("entity_key").execute();
    return rows.map((r) => ({
      kind: r.kind,
      key: r.entity_key,
      entity: r.entity,
      revision: Number(r.revision),
    }));
  }

  /** The newest revision announced to this replica's watchers. */
  get announced(): number {
    return this.announcedRevision;
  }

  /**
   * Re-reads the head and announces it when it is newer than the last announcement: the safety
   * net for a NOTIFY lost on the way (run once per heartbeat by the replica, not per stream).
   */
  async recheck(): Promise<void> {
    const head = await this.head();
    if (head.revision > this.announcedRevision) this.changes.emit("revision", head.revision);
  }

  /**
   * The head and every current entity as of one revision (one transaction; REPEATABLE READ on
   * PostgreSQL, so a commit by another replica in between is not half seen).
   */
  async snapshot(): Promise<{
    head: RevisionHead;
    entities: { kind: string; key: string; entity: Uint8Array; revision: number }[];
  }> {
    let tx = this.db.transaction();
    if (this.engine === "postgres") tx = tx.setIsolationLevel("repeatable read");
    return tx.execute(async (trx) => ({
      head: await this.head(trx),
      entities: await this.entities(undefined, trx),
    }));
  }

  /** Closes the listener and the connections. */
  async close(): Promise<void> {
    await this.listener?.stop();
    await this.db.destroy();
  }
}
