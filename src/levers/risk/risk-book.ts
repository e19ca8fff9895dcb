/**
 * The risk book: policies (stored), and the day ledger and open-risk book (in memory). Since
 * migration 8 a risk decision writes one row, its audit event; the book applies the same
 * event to memory and notes how to undo it (ChainJournal), so a rollback never leaves memory
 * ahead of the store. At start it is rebuilt from the folded tables and the events after them;
 * `fold` moves events into the tables off the decision path.
 */
import { utcDay } from "../../clock.js";
import { type AuditEntry, AuditLog, type ChainLink } from "../../store/audit-log.js";
import { ChainJournal, SELF_FOLD_EVERY } from "../../store/chain-journal.js";
import type { Db } from "../../store/database.js";
import { DayLedger, type LedgerDelta } from "./day-ledger.js";
import { OpenRiskBook } from "./open-risk-book.js";
import { RiskPolicies, type RiskPolicyRecord } from "./risk-policies.js";
import {
  closingState,
  type OpenReservation,
  type ReservationRecord,
  type ReservationState,
  type RiskEventRow,
  RiskSnapshot,
  reservationOf,
} from "./risk-snapshot.js";
import type { Usage } from "./rules.js";

export type { ReservationRecord, ReservationState, RiskPolicyRecord };

/** One ledger row with its open risk and denials. */
export interface LedgerRecord extends Usage {
  engine: string;
  denials: number;
}

/** A ledger row's usage with its denials. */
export type UsageRecord = Usage & { denials: number };

/** An audit entry of the risk lever, without what the book fills in. */
type RiskEntry = Omit<AuditEntry, "lever" | "subject" | "amount" | "action">;

/** Policies, today's ledger, open risk and reservations of one store. */
export class RiskBook {
  private readonly policyTable;
  private readonly audit;
  private readonly journal;
  private readonly snapshot;
  private openBook: OpenRiskBook | undefined;
  private ledger: DayLedger | undefined;
  /** Where the last fold this book asked for ended (a hint: the store's meta is the truth). */
  private foldedHint = 0;

  constructor(db: Db) {
    this.policyTable = new RiskPolicies(db);
    this.audit = new AuditLog(db);
    this.snapshot = new RiskSnapshot(db);
    // Once a fold has committed, what it folded is read from the tables, not kept in memory.
    this.journal = new ChainJournal(db, () => this.openBook?.trim(this.snapshot.foldedSeq()));
  }

  /** Every policy, GLOBAL first. */
  policies(): Readonly<RiskPolicyRecord>[] {
    return this.policyTable.list();
  }

  /** The policy of one engine (or GLOBAL), if any. */
  policy(engine: string): Readonly<RiskPolicyRecord> | undefined {
    return this.policyTable.get(engine);
  }

  /** Removes an engine's policy (central's snapshot no longer has it). */
  removePolicy(engine: string): void {
    this.policyTable.delete(engine);
  }

  /** Creates or replaces a policy. */
  savePolicy(p: RiskPolicyRecord): void {
    this.policyTable.save(p);
  }

  /** The usage of one engine (or GLOBAL) on `day`, with its open risk now. */
  usage(day: string, engine: string): UsageRecord {
    this.journal.sync();
    return this.figures(day, engine);
  }

  private figures(day: string, engine: string): UsageRecord {
    const f = this.dayLedger(day).of(engine);
    return {
      exposure: f.exposure,
      realizedLoss: f.realizedLoss,
      actions: f.actions,
      denials: f.denials,
      openRisk: this.open().openRisk(engine),
    };
  }

  /** Every engine with a ledger row on `day` or open risk, with both. */
  ledgerOfDay(day: string): LedgerRecord[] {
    this.journal.sync();
    const ledger = this.dayLedger(day);
    const engines = new Set(ledger.engines());
    for (const [engine] of this.open().entries()) engines.add(engine);
    return [...engines].map((engine) => ({ engine, ...this.figures(day, engine) }));
  }

  /** One reservation, open or not, if it exists. */
  reservation(id: string): ReservationRecord | undefined {
    this.journal.sync();
    return this.open().get(id);
  }

  /** At most `limit` open reservations whose TTL has passed at `nowMs`, oldest expiry first. */
  expiredReservations(nowMs: number, limit: number): ReservationRecord[] {
    this.journal.sync();
    return this.open().expired(nowMs, limit);
  }

  /**
   * Books a reservation: its RESERVE event (the one row it writes), then exposure and an
   * action on today's ledger and open risk, for the engine and GLOBAL. RESOURCE_EXHAUSTED,
   * before anything is written, when a sum would pass int64.
   */
  reserve(r: OpenReservation, entry: RiskEntry, nowMs: number): void {
    this.journal.sync();
    const ledger = this.dayLedger(r.day);
    const delta: LedgerDelta = { exposure: r.amount, actions: 1 };
    ledger.assertFits(r.engine, delta);
    const open = this.open();
    open.assertFits(r.engine, r.amount);
    const link = this.append("RESERVE", r.engine, r.amount, entry, nowMs, {
      expiresMs: r.expiresMs,
    });
    const undoOpen = open.open(r, link.seq);
    this.bookOn(r.day, r.engine, delta);
    this.journal.record(link, () => {
      this.bookOn(r.day, r.engine, negate(delta));
      undoOpen();
    });
  }

  /** Books a denial: its DENY event, counted on the day's ledgers when `counted`. */
  deny(engine: string, amount: bigint, entry: RiskEntry, nowMs: number, counted: boolean): void {
    const day = utcDay(nowMs);
    this.journal.sync();
    if (counted) this.dayLedger(day);
    const link = this.append("DENY", engine, amount, entry, nowMs, { denialCounted: counted });
    if (!counted) return;
    this.bookOn(day, engine, { denials: 1 });
    this.journal.record(link, () => this.bookOn(day, engine, { denials: -1 }));
  }

  /**
   * Closes a reservation: its SETTLE or RELEASE event, then its open risk freed (unless its
   * TTL already did) and the loss booked on today's ledger.
   */
  close(
    r: ReservationRecord,
    status: "SETTLED" | "RELEASED" | "EXPIRED",
    loss: bigint,
    entry: RiskEntry,
    nowMs: number,
  ): void {
    const day = utcDay(nowMs);
    const delta: LedgerDelta = { loss };
    this.journal.sync();
    if (loss > 0n) this.dayLedger(day).assertFits(r.engine, delta);
    const open = this.open();
    const action = status === "SETTLED" ? "SETTLE" : "RELEASE";
    const amount = status === "SETTLED" ? loss : r.amount;
    const link = this.append(action, r.engine, amount, { ...entry, reservationId: r.id }, nowMs);
    const undoClose = open.close(r, status, loss, link.seq);
    if (loss > 0n) this.bookOn(day, r.engine, delta);
    this.journal.record(link, () => {
      undoClose();
      if (loss > 0n) this.bookOn(day, r.engine, negate(delta));
    });
  }

  /**
   * Folds at most `maxEvents` decisions into the stored tables, inside the caller's
   * transaction (the sidecar does it beside the TTL sweep); returns how far it went.
   */
  fold(maxEvents = 20_000): number {
    this.journal.sync();
    const folded = this.foldSnapshot(maxEvents);
    if (folded > 0) this.journal.afterCommit();
    this.foldedHint = Math.max(this.foldedHint, this.snapshot.foldedSeq());
    return folded;
  }

  /** Changes of the book not known to be committed yet (for tests). */
  get uncommitted(): number {
    return this.journal.pending;
  }

  private append(
    action: string,
    subject: string,
    amount: bigint,
    entry: RiskEntry,
    nowMs: number,
    extra: Pick<AuditEntry, "expiresMs" | "denialCounted"> = {},
  ): ChainLink {
    const link = this.audit.appendLinked(
      { ...entry, ...extra, lever: "risk", action, subject, amount },
      nowMs,
    );
    if (link.seq - this.foldedHint >= SELF_FOLD_EVERY) {
      this.foldedHint = link.seq;
      // Before this decision's own booking: the fold reads the store, which holds its event.
      this.foldSnapshot(SELF_FOLD_EVERY * 2);
      this.journal.afterCommit();
    }
    return link;
  }

  /**
   * Folds into the tables, with the open-risk book built first: built after a fold its
   * transaction then rolled back, it would take the folded reservations for stored ones and
   * hold none of them (the table, rolled back, neither).
   */
  private foldSnapshot(maxEvents: number): number {
    this.open();
    return this.snapshot.fold(maxEvents);
  }

  /** Books on the day's ledger if it is the one in memory (a ledger loaded later reads it). */
  private bookOn(day: string, engine: string, delta: LedgerDelta): void {
    if (this.ledger?.day === day) this.ledger.book(engine, delta);
  }

  /** The open-risk book, built from the store on first use (after a `journal.sync()`). */
  private open(): OpenRiskBook {
    if (this.openBook) return this.openBook;
    const book = new OpenRiskBook(this.snapshot);
    for (const e of this.snapshot.eventsAfter()) {
      if (e.action === "RESERVE") book.open(reservationOf(e), e.seq);
      else if (e.action === "SETTLE" || e.action === "RELEASE") {
        const r = book.get(e.reservation_id);
        const state = closingState(e);
        if (r) book.close(r, state, state === "SETTLED" ? (e.amount ?? 0n) : 0n, e.seq);
      }
    }
    this.openBook = book;
    return book;
  }

  /** The ledger of `day`, loaded from the store when the day changes (after a `journal.sync()`). */
  private dayLedger(day: string): DayLedger {
    if (this.ledger?.day === day) return this.ledger;
    const ledger = new DayLedger(day, this.snapshot.dayAtSnapshot(day));
    for (const e of this.snapshot.eventsAfter()) {
      if (utcDay(e.time_ms) === day) applyToLedger(ledger, e);
    }
    this.ledger = ledger;
    return ledger;
  }
}

/** What one event adds to its day's ledger. */
function applyToLedger(ledger: DayLedger, e: RiskEventRow): void {
  const amount = e.amount ?? 0n;
  if (e.action === "RESERVE") ledger.book(e.subject, { exposure: amount, actions: 1 });
  else if (e.action === "DENY" && e.denial_counted === 1) ledger.book(e.subject, { denials: 1 });
  else if (e.action === "SETTLE" && amount > 0n) ledger.book(e.subject, { loss: amount });
}

function negate(d: LedgerDelta): LedgerDelta {
  return {
    exposure: d.exposure === undefined ? undefined : -d.exposure,
    loss: d.loss === undefined ? undefined : -d.loss,
    actions: d.actions === undefined ? undefined : -d.actions,
    denials: d.denials === undefined ? undefined : -d.denials,
  };
}
