/** Stored risk policies, daily ledgers, open risk and reservations. */
import type { Db } from "../../store/database.js";
import { CommittedValue } from "../../store/policy-revision.js";
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
  amount: number;
  day: string;
  status: ReservationState;
  realizedLoss: number;
  createdMs: number;
  expiresMs: number;
}

/** One ledger row with its open risk and denials. */
export interface LedgerRecord extends Usage {
  engine: string;
  denials: number;
}

interface PolicyRow {
  engine: string;
  max_daily_loss: number;
  max_daily_exposure: number;
  max_open_risk: number;
  max_actions_per_day: number;
  enabled: number;
  updated_by: string;
  updated_ms: number;
}

interface ReservationRow {
  id: string;
  engine: string;
  amount: number;
  day: string;
  status: ReservationState;
  realized_loss: number;
  created_ms: number;
  expires_ms: number;
}

function toPolicy(r: PolicyRow): RiskPolicyRecord {
  return {
    engine: r.engine,
    maxDailyLoss: r.max_daily_loss,
    maxDailyExposure: r.max_daily_exposure,
    maxOpenRisk: r.max_open_risk,
    maxActionsPerDay: r.max_actions_per_day,
    enabled: r.enabled === 1,
    updatedBy: r.updated_by,
    updatedMs: r.updated_ms,
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
    createdMs: r.created_ms,
    expiresMs: r.expires_ms,
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
      policies: db.prepare<[], PolicyRow>(
        "SELECT * FROM risk_policy ORDER BY engine <> 'GLOBAL', engine",
      ),
      upsertPolicy: db.prepare(
        `INSERT INTO risk_policy VALUES (@engine, @maxDailyLoss, @maxDailyExposure, @maxOpenRisk,
          @maxActionsPerDay, @enabled, @updatedBy, @updatedMs)
         ON CONFLICT (engine) DO UPDATE SET max_daily_loss = excluded.max_daily_loss,
          max_daily_exposure = excluded.max_daily_exposure, max_open_risk = excluded.max_open_risk,
          max_actions_per_day = excluded.max_actions_per_day, enabled = excluded.enabled,
          updated_by = excluded.updated_by, updated_ms = excluded.updated_ms`,
      ),
      ledger: db.prepare<
        [string, string],
        { exposure: number; realized_loss: number; actions: number; denials: number }
      >(
        "SELECT exposure, realized_loss, actions, denials FROM risk_ledger WHERE day = ? AND engine = ?",
      ),
      ledgerDay: db.prepare<
        [string],
        {
          engine: string;
          exposure: number;
          realized_loss: number;
          actions: number;
          denials: number;
        }
      >("SELECT engine, exposure, realized_loss, actions, denials FROM risk_ledger WHERE day = ?"),
      bookPair: db.prepare(
        `INSERT INTO risk_ledger (day, engine, exposure, realized_loss, actions, denials)
         VALUES (@day, @engine, @exposure, @loss, @actions, @denials),
          (@day, 'GLOBAL', @exposure, @loss, @actions, @denials)
         ON CONFLICT (day, engine) DO UPDATE SET exposure = exposure + excluded.exposure,
          realized_loss = realized_loss + excluded.realized_loss,
          actions = actions + excluded.actions, denials = denials + excluded.denials`,
      ),
      addOpenPair: db.prepare(
        `INSERT INTO risk_open (engine, open_risk) VALUES (@engine, @amount), ('GLOBAL', @amount)
         ON CONFLICT (engine) DO UPDATE SET open_risk = open_risk + excluded.open_risk`,
      ),
      openRisk: db
        .prepare<[string], number>("SELECT open_risk FROM risk_open WHERE engine = ?")
        .pluck(),
      openRiskAll: db.prepare<[], { engine: string; open_risk: number }>(
        "SELECT engine, open_risk FROM risk_open",
      ),
      insertReservation: db.prepare(
        `INSERT INTO risk_reservation (id, engine, amount, day, status, realized_loss, created_ms, expires_ms)
         VALUES (@id, @engine, @amount, @day, 'OPEN', 0, @createdMs, @expiresMs)`,
      ),
      reservation: db.prepare<[string], ReservationRow>(
        "SELECT * FROM risk_reservation WHERE id = ?",
      ),
      closeReservation: db.prepare(
        "UPDATE risk_reservation SET status = ?, realized_loss = ?, closed_ms = ? WHERE id = ?",
      ),
      expired: db.prepare<[number, number], ReservationRow>(
        "SELECT * FROM risk_reservation WHERE status = 'OPEN' AND expires_ms <= ? ORDER BY expires_ms LIMIT ?",
      ),
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

  /** Today's usage of one engine (or GLOBAL), with its open risk. */
  usage(day: string, engine: string): UsageRecord {
    const row = this.s.ledger.get(day, engine);
    const openRisk = this.s.openRisk.get(engine) ?? 0;
    if (!row) return { ...NO_USAGE, openRisk, denials: 0 };
    return {
      exposure: row.exposure,
      realizedLoss: row.realized_loss,
      actions: row.actions,
      openRisk,
      denials: row.denials,
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
        actions: r.actions,
        denials: r.denials,
        openRisk: 0,
      });
    }
    for (const r of this.s.openRiskAll.all()) {
      const entry = byEngine.get(r.engine) ?? { engine: r.engine, ...NO_USAGE, denials: 0 };
      entry.openRisk = r.open_risk;
      byEngine.set(r.engine, entry);
    }
    return [...byEngine.values()];
  }

  /** Adds the same delta to the day's ledger rows of `engine` and of GLOBAL, in one statement. */
  bookWithGlobal(
    day: string,
    engine: string,
    delta: { exposure?: number; loss?: number; actions?: number; denials?: number },
  ): void {
    notGlobal(engine);
    this.s.bookPair.run({
      day,
      engine,
      exposure: delta.exposure ?? 0,
      loss: delta.loss ?? 0,
      actions: delta.actions ?? 0,
      denials: delta.denials ?? 0,
    });
  }

  /** Adds (or frees) open risk of `engine` and of GLOBAL, in one statement. */
  addOpenRiskWithGlobal(engine: string, amount: number): void {
    notGlobal(engine);
    this.s.addOpenPair.run({ engine, amount });
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
    realizedLoss: number,
    nowMs: number,
  ): void {
    this.s.closeReservation.run(status, realizedLoss, nowMs, id);
  }

  /** At most `limit` open reservations whose TTL has passed at `nowMs`, oldest expiry first. */
  expiredReservations(nowMs: number, limit: number): ReservationRecord[] {
    return this.s.expired.all(nowMs, limit).map(toReservation);
  }
}
