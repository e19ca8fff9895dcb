/**
 * Reading the risk lever's state back from the store: the folded tables (a snapshot of the
 * audit trail up to meta.risk_folded_seq, see store/risk-fold.ts) and the risk events after
 * it, and folding more of the trail into the tables.
 */
import { utcDay } from "../../clock.js";
import type { Db } from "../../store/database.js";
import { FoldStatements } from "../../store/fold-statements.js";
import { RISK_FOLD_STEPS, RISK_FOLD_TABLES } from "../../store/risk-fold.js";
import type { DayFigures } from "./day-ledger.js";

/** An open reservation, money in micro-units. */
export interface OpenReservation {
  id: string;
  engine: string;
  amount: bigint;
  /** The UTC day it was reserved on. */
  day: string;
  createdMs: number;
  expiresMs: number;
}

/** Where a reservation stands. */
export type ReservationState = "OPEN" | "SETTLED" | "RELEASED" | "EXPIRED";

/** A reservation with its state. */
export interface ReservationRecord extends OpenReservation {
  status: ReservationState;
  realizedLoss: bigint;
}

/** A place in the order expiries are released in: by expiry, then by id. */
export interface ExpiryPlace {
  expiresMs: number;
  id: string;
}

/** A risk event after the snapshot, as the book replays it (money as bigint). */
export interface RiskEventRow {
  seq: number;
  time_ms: number;
  action: string;
  subject: string;
  amount: bigint | null;
  reservation_id: string;
  metadata: string;
  expires_ms: number | null;
  denial_counted: number | null;
}

interface ReservationRow {
  id: string;
  engine: string;
  amount: bigint;
  day: string;
  status: ReservationState;
  realized_loss: bigint;
  created_ms: bigint;
  expires_ms: bigint;
}

function toReservation(r: ReservationRow): ReservationRecord {
  return {
    id: r.id,
    engine: r.engine,
    amount: r.amount,
    day: r.day,
    status: r.status,
    realizedLoss: r.realized_loss,
    createdMs: Number(r.created_ms),
    expiresMs: Number(r.expires_ms),
  };
}

const EVENT_COLUMNS =
  "seq, time_ms, action, subject, amount, reservation_id, metadata, expires_ms, denial_counted";
const FOLDED = "(SELECT value FROM meta WHERE key = 'risk_folded_seq')";

/** The state of a closing event: SETTLE settles, a TTL release expires, any other releases. */
export function closingState(e: Pick<RiskEventRow, "action" | "metadata">): ReservationState {
  if (e.action === "SETTLE") return "SETTLED";
  return (JSON.parse(e.metadata) as Record<string, string>).ttl === "expired"
    ? "EXPIRED"
    : "RELEASED";
}

/** The reservation a RESERVE event opened. */
export function reservationOf(e: RiskEventRow): OpenReservation {
  return {
    id: e.reservation_id,
    engine: e.subject,
    amount: e.amount ?? 0n,
    day: utcDay(e.time_ms),
    createdMs: e.time_ms,
    expiresMs: e.expires_ms ?? e.time_ms,
  };
}

/** The risk lever's stored state: snapshot tables, events after them, and the fold. */
export class RiskSnapshot {
  private readonly s;
  private readonly folding: FoldStatements;

  constructor(db: Db) {
    this.folding = new FoldStatements(db, RISK_FOLD_TABLES, RISK_FOLD_STEPS);
    this.s = {
      openSums: db
        .prepare<[], { engine: string; open_risk: bigint }>(
          "SELECT engine, open_risk FROM risk_open",
        )
        .safeIntegers(true),
      earliest: db
        .prepare<[], number | null>(
          "SELECT min(expires_ms) FROM risk_reservation WHERE status = 'OPEN'",
        )
        .pluck(),
      // (expires_ms, id): the partial index's order (the table is WITHOUT ROWID, so the index
      // ends with the primary key), so a read resumes where the last one stopped.
      expired: db
        .prepare<[number, string, number, number], ReservationRow>(
          `SELECT * FROM risk_reservation WHERE status = 'OPEN' AND (expires_ms, id) > (?, ?)
           AND expires_ms <= ? ORDER BY expires_ms, id LIMIT ?`,
        )
        .safeIntegers(true),
      reservation: db
        .prepare<[string], ReservationRow>("SELECT * FROM risk_reservation WHERE id = ?")
        .safeIntegers(true),
      dayRows: db
        .prepare<
          [string],
          {
            engine: string;
            exposure: bigint;
            realized_loss: bigint;
            actions: bigint;
            denials: bigint;
          }
        >("SELECT engine, exposure, realized_loss, actions, denials FROM risk_ledger WHERE day = ?")
        .safeIntegers(true),
      after: db
        .prepare<[], RiskEventRow>(
          `SELECT ${EVENT_COLUMNS} FROM audit_event WHERE seq > ${FOLDED} AND +lever = 'risk'
           AND action IN ('RESERVE', 'DENY', 'SETTLE', 'RELEASE') ORDER BY seq`,
        )
        .safeIntegers(true),
      head: db.prepare<[], number>("SELECT coalesce(max(seq), 0) FROM audit_event").pluck(),
      folded: db.prepare<[], number>(`SELECT ${FOLDED}`).pluck(),
      foldTo: db.prepare<[number]>("UPDATE meta SET value = ? WHERE key = 'risk_fold_to'"),
    };
  }

  /** Open risk by engine (GLOBAL included) at the snapshot. */
  openSums(): [string, bigint][] {
    return this.s.openSums.all().map((r) => [r.engine, r.open_risk]);
  }

  /** The earliest expiry of a reservation open at the snapshot (Infinity: none). */
  earliestOpenExpiry(): number {
    return this.s.earliest.get() ?? Number.POSITIVE_INFINITY;
  }

  /**
   * At most `limit` reservations open at the snapshot whose TTL passed at `nowMs`, in (expiry,
   * id) order, after `after` (from the first when undefined).
   */
  expiredOpen(nowMs: number, limit: number, after?: ExpiryPlace): ReservationRecord[] {
    const [expiresMs, id] = after ? [after.expiresMs, after.id] : [Number.MIN_SAFE_INTEGER, ""];
    return this.s.expired.all(expiresMs, id, nowMs, limit).map(toReservation);
  }

  /** The sequence number the snapshot holds every event up to. */
  foldedSeq(): number {
    return this.s.folded.get() ?? 0;
  }

  /** The snapshot's ledger rows of one day. */
  dayAtSnapshot(day: string): (DayFigures & { engine: string })[] {
    return this.s.dayRows.all(day).map((r) => ({
      engine: r.engine,
      exposure: r.exposure,
      realizedLoss: r.realized_loss,
      actions: Number(r.actions),
      denials: Number(r.denials),
    }));
  }

  /** Risk decisions after the snapshot, oldest first. */
  eventsAfter(): RiskEventRow[] {
    return this.s.after.all().map(numbers);
  }

  /** A reservation as the snapshot holds it (the book answers for those decided since). */
  reservation(id: string): ReservationRecord | undefined {
    const row = this.s.reservation.get(id);
    return row ? toReservation(row) : undefined;
  }

  /**
   * Folds at most `maxEvents` events after the snapshot into the tables (inside the caller's
   * transaction); returns how many sequence numbers it advanced.
   */
  fold(maxEvents: number): number {
    const from = this.foldedSeq();
    const to = Math.min(this.s.head.get() ?? 0, from + maxEvents);
    if (to <= from) return 0;
    this.s.foldTo.run(to);
    this.folding.run();
    return to - from;
  }
}

/** An event row read with safeIntegers, its non-money integers back as numbers. */
function numbers(r: RiskEventRow): RiskEventRow {
  return {
    ...r,
    seq: Number(r.seq),
    time_ms: Number(r.time_ms),
    expires_ms: r.expires_ms === null ? null : Number(r.expires_ms),
    denial_counted: r.denial_counted === null ? null : Number(r.denial_counted),
  };
}
