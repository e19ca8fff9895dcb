/**
 * The rows of `central_event`: shipped events as central stores them, inserted in the
 * shipment's transaction. On SQLite by position into a text kept per row count; on PostgreSQL
 * one statement of column arrays.
 */
import { CompiledQuery, sql, type Transaction } from "kysely";
import type { ShippedEvent } from "../../../gen/governance/v1/sync_pb.js";
import type { AuditRow } from "../../store/audit-log.js";
import type { CentralTables } from "./central-schema.js";
import type { CentralStore } from "./central-store.js";

/** Events inserted per statement on SQLite (15 parameters each, under its limit). */
const INSERT_CHUNK = 250;

/** The chain fields of a shipped event, as the sidecar's store holds them. */
export function auditRowOf(e: ShippedEvent): Omit<AuditRow, "hash"> {
  return {
    seq: Number(e.seq),
    time_ms: Number(e.timeMs),
    lever: e.lever,
    action: e.action,
    subject: e.subject,
    amount: e.amount ?? null,
    ok: e.ok ? 1 : 0,
    reason: e.reason,
    actor: e.actor,
    correlation_id: e.correlationId,
    reservation_id: e.reservationId,
    metadata: e.metadataJson,
  };
}

/** The `central_event` row of one shipped event of `sidecarId`. */
export function centralEventRowOf(sidecarId: string, e: ShippedEvent) {
  return {
    sidecar_id: sidecarId,
    ...auditRowOf(e),
    hash: e.hash,
    denial_counted: e.denialCounted ? 1 : 0,
  };
}

/** Inserts one sidecar's shipped events in the shipment's transaction. */
export async function insertEvents(
  trx: Transaction<CentralTables>,
  engine: CentralStore["engine"],
  sidecarId: string,
  events: readonly ShippedEvent[],
): Promise<void> {
  if (events.length === 0) return;
  if (engine === "postgres") {
    // One statement for the shipment, each column one array parameter: 15 parameters however
    // many events, and no per-row SQL for the client to build and the server to parse.
    const rows = events.map((e) => centralEventRowOf(sidecarId, e));
    const column = <K extends keyof (typeof rows)[number]>(k: K) => rows.map((r) => r[k]);
    await sql`INSERT INTO central_event (sidecar_id, seq, time_ms, lever, action, subject, amount,
        ok, reason, actor, correlation_id, reservation_id, metadata, hash, denial_counted)
      SELECT ${sidecarId}, * FROM unnest(${column("seq")}::bigint[], ${column("time_ms")}::bigint[],
        ${column("lever")}::text[], ${column("action")}::text[], ${column("subject")}::text[],
        ${column("amount")}::bigint[], ${column("ok")}::integer[], ${column("reason")}::text[],
        ${column("actor")}::text[], ${column("correlation_id")}::text[],
        ${column("reservation_id")}::text[], ${column("metadata")}::text[],
        ${column("hash")}::text[], ${column("denial_counted")}::integer[])`.execute(trx);
    return;
  }
  // SQLite: rows bound by position into a text kept per row count (each prepared once), not
  // built by the query builder, which costs more than the insert for hundreds of rows.
  for (let i = 0; i < events.length; i += INSERT_CHUNK) {
    const chunk = events.slice(i, i + INSERT_CHUNK);
    const values: unknown[] = [];
    for (const e of chunk) {
      values.push(
        sidecarId,
        Number(e.seq),
        Number(e.timeMs),
        e.lever,
        e.action,
        e.subject,
        e.amount ?? null,
        e.ok ? 1 : 0,
        e.reason,
        e.actor,
        e.correlationId,
        e.reservationId,
        e.metadataJson,
        e.hash,
        e.denialCounted ? 1 : 0,
      );
    }
    await trx.executeQuery(CompiledQuery.raw(sqliteInsertOf(chunk.length), values));
  }
}

/** The columns of `central_event` in the order `insertEvents` binds them on SQLite. */
const EVENT_COLUMNS =
  "sidecar_id, seq, time_ms, lever, action, subject, amount, ok, reason, actor, correlation_id, reservation_id, metadata, hash, denial_counted";
const sqliteInserts = new Map<number, string>();

/** SQLite's INSERT of `rows` events (15 parameters each), one text per row count. */
function sqliteInsertOf(rows: number): string {
  let text = sqliteInserts.get(rows);
  if (text === undefined) {
    const row = `(${Array(15).fill("?").join(", ")})`;
    text = `INSERT INTO central_event (${EVENT_COLUMNS}) VALUES ${Array(rows).fill(row).join(", ")}`;
    sqliteInserts.set(rows, text);
  }
  return text;
}
