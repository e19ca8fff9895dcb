/**
 * Stored risk policies, daily ledgers, open risk and reservations. Money columns are read as
 * bigint (better-sqlite3's safeIntegers) and bound as bigint, so every sum is exact.
 */
import type { Db } from "../../store/database.js";
import { CommittedValue } from "../../store/policy-revision.js";
import { assertExact, type BookedRow } from "./ledger-limit.js";
import { type Caps, NO_USAGE, type Usage } from "./rules.js";

/** A risk policy as stored (money in micro-units). */
export interface RiskPolicyRecord extends Caps {
  engine: string;
  updatedBy: string;
  updatedMs: number;
}

/** Where a reservation stands. */
export type ReservationState = "OPEN" | "SETTLED" | "RELEASED" | "EXPIRED";

/** A reservation as stored. */
export interface ReservationRecord {
  id: string;
  engine: string;
  amount: bigint;
  day: string;
  status: ReservationState;
  realizedLoss: bigint;
  createdMs: number;
  expiresMs: number;
}

/** One ledger row with its open risk and denials. */
export interface LedgerRecord extends Usage {
  engine: string;
  denials: number;
}

/** Rows as read with safeIntegers: every INTEGER column is a bigint. */
interface PolicyRow {
  engine: string;
  max_daily_loss: bigint;
  max_daily_exposure: bigint;
  max_open_risk: bigint;
  max_actions_per_day: bigint;
  enabled: bigint;
  updated_by: string;
  updated_ms: bigint;
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

interface LedgerRow {
  engine: string;
  exposure: bigint;
  realized_loss: bigint;
  actions: bigint;
  denials: bigint;
}

function toPolicy(r: PolicyRow): RiskPolicyRecord {
  return {
    engine: r.engine,
    maxDailyLoss: r.max_daily_loss,
    maxDailyExposure: r.max_daily_exposure,
    maxOpenRisk: r.max_open_risk,
    maxActionsPerDay: Number(r.max_actions_per_day),
    enabled: r.enabled === 1n,
    updatedBy: r.updated_by,
    updatedMs: Number(r.updated_ms),
  };
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

/** The *WithGlobal writes book GLOBAL beside an engine; GLOBAL itself is not an engine. */
function notGlobal(engine: string): void {
  if (engine === "GLOBAL") throw new Error("GLOBAL is booked beside an engine, not as one");
}

/** A ledger row's usage with its denials. */
export type UsageRecord = Usage & { denials: number };

/** Data access for the risk lever; every write runs inside the caller's transaction. */
export class RiskBook {
  private readonly s;
  /** Policies by engine, GLOBAL first (kept between writes; see CommittedValue). */
  private readonly policyCache;

  constructor(db: Db) {
    this.policyCache = new CommittedValue<ReadonlyMap<string, Readonly<RiskPolicyRecord>>>(db);
    this.s = {
      policies: db
        .prepare<[], PolicyRow>("SELECT * FROM risk_policy ORDER BY engine <> 'GLOBAL', engine")
        .safeIntegers(true),
      upsertPolicy: db.prepare(
        `INSERT INTO risk_policy VALUES (@engine, @maxDailyLoss, @maxDailyExposure, @maxOpenRisk,
          @maxActionsPerDay, @enabled, @updatedBy, @updatedMs)
         ON CONFLICT (engine) DO UPDATE SET max_daily_loss = excluded.max_daily_loss,
          max_daily_exposure = excluded.max_daily_exposure, max_open_risk = excluded.max_open_risk,
          max_actions_per_day = excluded.max_actions_per_day, enabled = excluded.enabled,
          updated_by = excluded.updated_by, updated_ms = excluded.updated_ms`,
      ),
      deletePolicy: db.prepare("DELETE FROM risk_policy WHERE engine = ?"),
      ledger: db
        .prepare<[string, string], LedgerRow>(
          "SELECT engine, exposure, realized_loss, actions, denials FROM risk_ledger WHERE day = ? AND engine = ?",
        )
        .safeIntegers(true),
      ledgerDay: db
        .prepare<[string], LedgerRow>(
          "SELECT engine, exposure, realized_loss, actions, denials FROM risk_ledger WHERE day = ?",
        )
        .safeIntegers(true),
      bookPair: db.prepare(
        `INSERT INTO risk_ledger (day, engine, exposure, realized_loss, actions, denials)
         VALUES (@day, @engine, @exposure, @loss, @actions, @denials),
          (@day, 'GLOBAL', @exposure, @loss, @actions, @denials)
         ON CONFLICT (day, engine) DO UPDATE SET exposure = exposure + excluded.exposure,
          realized_loss = realized_loss + excluded.realized_loss,
          actions = actions + excluded.actions, denials = denials + excluded.denials
         RETURNING engine, typeof(exposure) AS exposure, typeof(realized_loss) AS realized_loss`,
      ),
      addOpenPair: db.prepare(
        `INSERT INTO risk_open (engine, open_risk) VALUES (@engine, @amount), ('GLOBAL', @amount)
         ON CONFLICT (engine) DO UPDATE SET open_risk = open_risk + excluded.open_risk
         RETURNING engine, typeof(open_risk) AS open_risk`,
      ),
      openRisk: db
        .prepare<[string], bigint>("SELECT open_risk FROM risk_open WHERE engine = ?")
        .pluck()
        .safeIntegers(true),
      openRiskAll: db
        .prepare<[], { engine: string; open_risk: bigint }>(
          "SELECT engine, open_risk FROM risk_open",
        )
        .safeIntegers(true),
      insertReservation: db.prepare(
        `INSERT INTO risk_reservation (id, engine, amount, day, status, realized_loss, created_ms, expires_ms)
         VALUES (@id, @engine, @amount, @day, 'OPEN', 0, @createdMs, @expiresMs)`,
      ),
      reservation: db
        .prepare<[string], ReservationRow>("SELECT * FROM risk_reservation WHERE id = ?")
        .safeIntegers(true),
      closeReservation: db.prepare(
        "UPDATE risk_reservation SET status = ?, realized_loss = ?, closed_ms = ? WHERE id = ?",
      ),
      expired: db
        .prepare<[number, number], ReservationRow>(
          "SELECT * FROM risk_reservation WHERE status = 'OPEN' AND expires_ms <= ? ORDER BY expires_ms LIMIT ?",
        )
        .safeIntegers(true),
    };
  }

  private policyMap(): ReadonlyMap<string, Readonly<RiskPolicyRecord>> {
    return this.policyCache.get(
      () => new Map(this.s.policies.all().map((r) => [r.engine, Object.freeze(toPolicy(r))])),
    );
  }

  /** Every policy, GLOBAL first. */
  policies(): Readonly<RiskPolicyRecord>[] {
    return [...this.policyMap().values()];
  }

  /** The policy of one engine (or GLOBAL), if any. */
  policy(engine: string): Readonly<RiskPolicyRecord> | undefined {
    return this.policyMap().get(engine);
  }

  /** Creates or replaces a policy. */
  savePolicy(p: RiskPolicyRecord): void {
    this.s.upsertPolicy.run({ ...p, enabled: p.enabled ? 1 : 0 });
    this.policyCache.invalidate();
  }

  /** Removes an engine's policy (central's snapshot no longer has it). */
  removePolicy(engine: string): void {
    this.s.deletePolicy.run(engine);
    this.policyCache.invalidate();
  }

  /** Today's usage of one engine (or GLOBAL), with its open risk. */
  usage(day: string, engine: string): UsageRecord {
    const row = this.s.ledger.get(day, engine);
    const openRisk = this.s.openRisk.get(engine) ?? 0n;
    if (!row) return { ...NO_USAGE, openRisk, denials: 0 };
    return {
      exposure: row.exposure,
      realizedLoss: row.realized_loss,
      actions: Number(row.actions),
      openRisk,
      denials: Number(row.denials),
    };
  }

  /** Every ledger row of a day, joined with current open risk, by engine. */
  ledgerOfDay(day: string): LedgerRecord[] {
    const byEngine = new Map<string, LedgerRecord>();
    for (const r of this.s.ledgerDay.all(day)) {
      byEngine.set(r.engine, {
        engine: r.engine,
        exposure: r.exposure,
        realizedLoss: r.realized_loss,
        actions: Number(r.actions),
        denials: Number(r.denials),
        openRisk: 0n,
      });
    }
    for (const r of this.s.openRiskAll.all()) {
      const entry = byEngine.get(r.engine) ?? { engine: r.engine, ...NO_USAGE, denials: 0 };
      entry.openRisk = r.open_risk;
      byEngine.set(r.engine, entry);
    }
    return [...byEngine.values()];
  }

  /**
   * Adds the same delta to the day's ledger rows of `engine` and of GLOBAL, in one statement;
   * RESOURCE_EXHAUSTED when a sum would pass int64 (the caller's savepoint undoes the call).
   */
  bookWithGlobal(
    day: string,
    engine: string,
    delta: { exposure?: bigint; loss?: bigint; actions?: number; denials?: number },
  ): void {
    notGlobal(engine);
    const booked = this.s.bookPair.all({
      day,
      engine,
      exposure: delta.exposure ?? 0n,
      loss: delta.loss ?? 0n,
      actions: delta.actions ?? 0,
      denials: delta.denials ?? 0,
    }) as BookedRow[];
    assertExact(booked);
  }

  /** Adds (or frees) open risk of `engine` and of GLOBAL, in one statement; as bookWithGlobal. */
  addOpenRiskWithGlobal(engine: string, amount: bigint): void {
    notGlobal(engine);
    assertExact(this.s.addOpenPair.all({ engine, amount }) as BookedRow[]);
  }

  /** Stores a new open reservation. */
  openReservation(r: Omit<ReservationRecord, "status" | "realizedLoss">): void {
    this.s.insertReservation.run(r);
  }

  /** One reservation, if it exists. */
  reservation(id: string): ReservationRecord | undefined {
    const row = this.s.reservation.get(id);
    return row ? toReservation(row) : undefined;
  }

  /** Marks a reservation closed. */
  closeReservation(
    id: string,
    status: ReservationState,
    realizedLoss: bigint,
    nowMs: number,
  ): void {
    this.s.closeReservation.run(status, realizedLoss, nowMs, id);
  }

  /** At most `limit` open reservations whose TTL has passed at `nowMs`, oldest expiry first. */
  expiredReservations(nowMs: number, limit: number): ReservationRecord[] {
    return this.s.expired.all(nowMs, limit).map(toReservation);
  }
}
