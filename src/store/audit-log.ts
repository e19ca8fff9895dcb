/** The immutable, hash-chained audit trail every lever appends its decisions to. */
import type { Statement } from "better-sqlite3";
import type { Db } from "./database.js";
import { type EventHold, eventHold, unguardedPrepare } from "./held-event.js";
import { sha256Hex } from "./sha256.js";

/** Which lever an event belongs to. */
/**
 * Which part of govd wrote an event. KPI outcomes (`kpi`) are the regression lever's input, kept
 * apart from its tripwire events so that listing those never walks every outcome.
 */
export type Lever = "golive" | "risk" | "heimdall" | "regression" | "kpi" | "sync";

/** What a lever appends: one decision or operator action. */
export interface AuditEntry {
  lever: Lever;
  action: string;
  /** The engine, domain or (domain/metric) the event is about. */
  subject: string;
  /** Money in micro-units. */
  amount?: bigint | null;
  ok: boolean;
  reason: string;
  actor: string;
  correlationId: string;
  reservationId?: string;
  metadata?: Record<string, string>;
  /** RESERVE: when its TTL releases it (kept beside the chain, not hashed; migration 8). */
  expiresMs?: number;
  /** DENY: 1 when the denial counts on the ledgers (the engine has a policy; migration 8). */
  denialCounted?: boolean;
}

/** Where an appended event sits in the chain: its sequence number and link. */
export interface ChainLink {
  seq: number;
  hash: string;
}

/** A stored event with its place in the chain. */
export interface AuditRow {
  seq: number;
  time_ms: number;
  lever: string;
  action: string;
  subject: string;
  /** Micro-units, exact (read as bigint). */
  amount: bigint | null;
  ok: number;
  reason: string;
  actor: string;
  correlation_id: string;
  reservation_id: string;
  metadata: string;
  hash: string;
}

/** The hash before the first event. */
export const GENESIS_HASH = "0".repeat(64);

/** The largest amount a JSON number writes with the same digits as the bigint. */
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/** Where the amount sits among a link's fields. */
const AMOUNT_AT = 6;

/**
 * The chain link of one event: SHA-256 over the previous link and every field of the event, as
 * a JSON array. The amount is written as its exact digits, the same text JSON gave it when it
 * was a number, so links made before money became bigint still verify.
 */
export function linkHash(prevHash: string, row: Omit<AuditRow, "hash">): string {
  const amount = row.amount;
  // An amount JSON can write as a number (the common case): one stringify of the whole array.
  if (amount === null || (amount <= MAX_SAFE && amount >= -MAX_SAFE)) {
    return sha256Hex(
      JSON.stringify(linkFields(prevHash, row, amount === null ? null : Number(amount))),
    );
  }
  // Past 2^53 the digits go in by hand, between the two halves JSON writes around them.
  const fields = linkFields(prevHash, row, null);
  const before = JSON.stringify(fields.slice(0, AMOUNT_AT));
  const after = JSON.stringify(fields.slice(AMOUNT_AT + 1));
  return sha256Hex(`${before.slice(0, -1)},${amount.toString()},${after.slice(1)}`);
}

/** The fields a link covers, in their order, with the amount as JSON is to write it. */
function linkFields(prevHash: string, row: Omit<AuditRow, "hash">, amount: number | null) {
  return [
    prevHash,
    row.seq,
    row.time_ms,
    row.lever,
    row.action,
    row.subject,
    amount,
    row.ok,
    row.reason,
    row.actor,
    row.correlation_id,
    row.reservation_id,
    row.metadata,
  ];
}

/**
 * The columns of an AuditRow: what the chain covers and its hash. Reads name them rather than
 * `*`, which would also read the answers kept beside the chain (migration 11).
 */
export const CHAIN_COLUMNS = `seq, time_ms, lever, action, subject, amount, ok, reason, actor, correlation_id,
  reservation_id, metadata, hash`;

/** A row read with safeIntegers, with its non-money integers back as numbers. */
export type StoredRow = Omit<AuditRow, "seq" | "time_ms" | "ok"> & {
  seq: bigint;
  time_ms: bigint;
  ok: bigint;
};

export function fromStored(r: StoredRow): AuditRow {
  return { ...r, seq: Number(r.seq), time_ms: Number(r.time_ms), ok: Number(r.ok) };
}

/**
 * The newest event appended on a connection, through any of its AuditLogs, and how many were
 * appended so far: the call pipeline compares the count before and after a handler to find
 * the event the call appended (and puts the call's answer on it).
 */
export interface NewestAppend {
  count: number;
  seq: number;
  correlationId: string;
}

const newestAppends = new WeakMap<Db, NewestAppend>();

/** The live record of the newest append on `db` (one object per connection, updated in place). */
export function newestAppend(db: Db): Readonly<NewestAppend> {
  let newest = newestAppends.get(db);
  if (!newest) {
    newest = { count: 0, seq: 0, correlationId: "" };
    newestAppends.set(db, newest);
  }
  return newest;
}

/** Appends events to the chain; call inside the decision's transaction. */
export class AuditLog {
  private readonly last;
  private readonly insert;
  private insertWithBooking: Statement | undefined;
  private readonly newest: NewestAppend;
  private readonly hold: EventHold;

  constructor(private readonly db: Db) {
    this.newest = newestAppend(db) as NewestAppend;
    this.hold = eventHold(db);
    // Unguarded (see held-event.ts): the head is asked of the hold first, and nothing is held
    // when the inserts run.
    this.last = unguardedPrepare(
      db,
      "SELECT seq, hash FROM audit_event ORDER BY seq DESC LIMIT 1",
    ) as Statement<[], { seq: number; hash: string }>;
    // Positional parameters: binding 13 named ones from an object cost 2-5 us per append.
    this.insert = unguardedPrepare(
      db,
      `INSERT INTO audit_event (seq, time_ms, lever, action, subject, amount, ok, reason, actor,
        correlation_id, reservation_id, metadata, hash)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
  }

  /** The insert with migration 8's columns, prepared on first use (older stores lack them). */
  private insertBooked(): Statement {
    this.insertWithBooking ??= unguardedPrepare(
      this.db,
      `INSERT INTO audit_event (seq, time_ms, lever, action, subject, amount, ok, reason, actor,
        correlation_id, reservation_id, metadata, hash, expires_ms, denial_counted)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    return this.insertWithBooking;
  }

  /** Appends one event at time `nowMs` and returns its sequence number. */
  append(entry: AuditEntry, nowMs: number): number {
    return this.appendLinked(entry, nowMs).seq;
  }

  /** Appends one event at time `nowMs` and returns its place in the chain. */
  appendLinked(entry: AuditEntry, nowMs: number): ChainLink {
    // A call's event held for its answer is the head (see held-event.ts).
    const head = this.hold.head() ?? this.last.get();
    const row: Omit<AuditRow, "hash"> = {
      seq: (head?.seq ?? 0) + 1,
      time_ms: nowMs,
      lever: entry.lever,
      action: entry.action,
      subject: entry.subject,
      amount: entry.amount ?? null,
      ok: entry.ok ? 1 : 0,
      reason: entry.reason,
      actor: entry.actor,
      correlation_id: entry.correlationId,
      reservation_id: entry.reservationId ?? "",
      metadata: entry.metadata ? JSON.stringify(entry.metadata) : "{}",
    };
    const hash = linkHash(head?.hash ?? GENESIS_HASH, row);
    // In the order of the INSERT's columns.
    const chained = [
      row.seq,
      row.time_ms,
      row.lever,
      row.action,
      row.subject,
      row.amount,
      row.ok,
      row.reason,
      row.actor,
      row.correlation_id,
      row.reservation_id,
      row.metadata,
      hash,
    ] as const;
    const expiresMs = entry.expiresMs ?? null;
    const denialCounted = entry.denialCounted === undefined ? null : entry.denialCounted ? 1 : 0;
    // The call's own event waits in the hold for its answer (or the next read of the trail).
    if (this.hold.claims(row.correlation_id)) {
      const values = [...chained, expiresMs, denialCounted, null, null, null];
      this.hold.keep(values, row.seq, hash);
    } else if (expiresMs === null && denialCounted === null) this.insert.run(...chained);
    else this.insertBooked().run(...chained, expiresMs, denialCounted);
    this.newest.count++;
    this.newest.seq = row.seq;
    this.newest.correlationId = row.correlation_id;
    return { seq: row.seq, hash };
  }
}
