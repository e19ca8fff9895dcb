/** Central's transactions for what a power cut may lose at no cost (see commitWithoutFsync). */
import { type Kysely, sql, type Transaction } from "kysely";
import type { CentralTables } from "./central-schema.js";
import type { CentralEngine } from "./central-store.js";

/**
 * Runs `work` in one transaction that does not wait for the disk: for what a power cut of
 * central's host may lose at no cost, because the sender says it again. Acks and "last heard"
 * (the sidecar's next Watch or heartbeat repeats them), and shipped events: a sidecar keeps
 * every event until central acks it and keeps it after (retention counts from then, default
 * keep), and after any broken link or central restart it asks central what it holds and ships
 * again from there, so a lost tail is shipped again, never lost. This matches the sidecar's own
 * store (WAL, synchronous NORMAL). Central's SQLite commits revisions with `synchronous = FULL`,
 * whose fsync would hold the event loop (and every Watch stream) once per ack batch, heartbeat
 * and shipment. A kill -9 of central loses nothing either way: the WAL holds the commit.
 * SQLite: `synchronous = NORMAL` around the transaction, on the one connection, which no other
 * query can use meanwhile. PostgreSQL: `synchronous_commit = off` for this transaction only.
 */
export async function commitWithoutFsync<T>(
  db: Kysely<CentralTables>,
  engine: CentralEngine,
  work: (trx: Transaction<CentralTables>) => Promise<T>,
): Promise<T> {
  if (engine === "sqlite") {
    return db.connection().execute(async (conn) => {
      await sql`PRAGMA synchronous = NORMAL`.execute(conn);
      try {
        return await conn.transaction().execute(work);
      } finally {
        await sql`PRAGMA synchronous = FULL`.execute(conn);
      }
    });
  }
  return db.transaction().execute(async (trx) => {
    await sql`SET LOCAL synchronous_commit = off`.execute(trx);
    return work(trx);
  });
}
