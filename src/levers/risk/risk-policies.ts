/**
 * Stored risk policies, kept in memory between this process's writes (CommittedValue). Money
 * columns are read as bigint (better-sqlite3's safeIntegers), so every cap is exact.
 */
import type { Db } from "../../store/database.js";
import { CommittedValue } from "../../store/policy-revision.js";
import type { Caps } from "./rules.js";

/** A risk policy as stored (money in micro-units). */
export interface RiskPolicyRecord extends Caps {
  engine: string;
  updatedBy: string;
  updatedMs: number;
}

/** A policy row as read with safeIntegers: every INTEGER column is a bigint. */
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

/** The risk policies of one store: read, cached, replaced. */
export class RiskPolicies {
  private readonly all;
  private readonly upsert;
  private readonly remove;
  /** Policies by engine, GLOBAL first (kept between writes; see CommittedValue). */
  private readonly cache;

  constructor(db: Db) {
    this.cache = new CommittedValue<ReadonlyMap<string, Readonly<RiskPolicyRecord>>>(db);
    this.all = db
      .prepare<[], PolicyRow>("SELECT * FROM risk_policy ORDER BY engine <> 'GLOBAL', engine")
      .safeIntegers(true);
    this.upsert = db.prepare(
      `INSERT INTO risk_policy VALUES (@engine, @maxDailyLoss, @maxDailyExposure, @maxOpenRisk,
        @maxActionsPerDay, @enabled, @updatedBy, @updatedMs)
       ON CONFLICT (engine) DO UPDATE SET max_daily_loss = excluded.max_daily_loss,
        max_daily_exposure = excluded.max_daily_exposure, max_open_risk = excluded.max_open_risk,
        max_actions_per_day = excluded.max_actions_per_day, enabled = excluded.enabled,
        updated_by = excluded.updated_by, updated_ms = excluded.updated_ms`,
    );
    this.remove = db.prepare("DELETE FROM risk_policy WHERE engine = ?");
  }

  private byEngine(): ReadonlyMap<string, Readonly<RiskPolicyRecord>> {
    return this.cache.get(
      () => new Map(this.all.all().map((r) => [r.engine, Object.freeze(toPolicy(r))])),
    );
  }

  /** Every policy, GLOBAL first. */
  list(): Readonly<RiskPolicyRecord>[] {
    return [...this.byEngine().values()];
  }

  /** The policy of one engine (or GLOBAL), if any. */
  get(engine: string): Readonly<RiskPolicyRecord> | undefined {
    return this.byEngine().get(engine);
  }

  /** Creates or replaces a policy (inside the caller's transaction). */
  save(p: RiskPolicyRecord): void {
    this.upsert.run({ ...p, enabled: p.enabled ? 1 : 0 });
    this.cache.invalidate();
  }

  /** Removes an engine's policy (inside the caller's transaction). */
  delete(engine: string): void {
    this.remove.run(engine);
    this.cache.invalidate();
  }
}
