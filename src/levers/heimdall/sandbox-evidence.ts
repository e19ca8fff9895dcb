/** Heimdall policies, daily sandbox scorecards (kept by ScorecardBook) and recommendations. */
import type { AuditEntry } from "../../store/audit-log.js";
import type { Db } from "../../store/database.js";
import type { GatePolicy, GateResult, SandboxTally } from "./rules.js";
import { ScorecardBook, type ScorecardRecord } from "./scorecard-book.js";

export type { ScorecardRecord };

/** A domain policy as stored. */
export interface HeimdallPolicyRecord extends GatePolicy {
  domain: string;
  lookbackDays: number;
  updatedBy: string;
  updatedMs: number;
}

/** A stored recommendation with the gates it was given. */
export interface RecommendationRecord {
  id: string;
  domain: string;
  confidence: number;
  prodEligible: boolean;
  gates: GateResult[];
  createdMs: number;
}

interface PolicyRow {
  domain: string;
  min_confidence_prod: number;
  min_sandbox_trials: number;
  min_sandbox_success_rate: number;
  prod_use_enabled: number;
  lookback_days: number;
  updated_by: string;
  updated_ms: number;
  success_rate_bound: "RAW" | "WILSON_LOWER";
  bound_confidence: number;
}

function toPolicy(r: PolicyRow): HeimdallPolicyRecord {
  return {
    domain: r.domain,
    minConfidenceProd: r.min_confidence_prod,
    minSandboxTrials: r.min_sandbox_trials,
    minSandboxSuccessRate: r.min_sandbox_success_rate,
    prodUseEnabled: r.prod_use_enabled === 1,
    lookbackDays: r.lookback_days,
    successRateBound: r.success_rate_bound,
    boundConfidence: r.bound_confidence,
    updatedBy: r.updated_by,
    updatedMs: r.updated_ms,
  };
}

/** Data access for the Heimdall lever. */
export class SandboxEvidence {
  private readonly s;
  /** The day's scorecards, in memory since the last fold (scorecard-book.ts). */
  private readonly book;

  constructor(db: Db) {
    this.book = new ScorecardBook(db);
    this.s = {
      policies: db.prepare<[], PolicyRow>("SELECT * FROM heimdall_policy ORDER BY domain"),
      policy: db.prepare<[string], PolicyRow>("SELECT * FROM heimdall_policy WHERE domain = ?"),
      upsert: db.prepare(
        `INSERT INTO heimdall_policy (domain, min_confidence_prod, min_sandbox_trials,
          min_sandbox_success_rate, prod_use_enabled, lookback_days, updated_by, updated_ms,
          success_rate_bound, bound_confidence)
         VALUES (@domain, @minConfidenceProd, @minSandboxTrials, @minSandboxSuccessRate,
          @prodUseEnabled, @lookbackDays, @updatedBy, @updatedMs, @successRateBound, @boundConfidence)
         ON CONFLICT (domain) DO UPDATE SET min_confidence_prod = excluded.min_confidence_prod,
          min_sandbox_trials = excluded.min_sandbox_trials,
          min_sandbox_success_rate = excluded.min_sandbox_success_rate,
          prod_use_enabled = excluded.prod_use_enabled, lookback_days = excluded.lookback_days,
          success_rate_bound = excluded.success_rate_bound, bound_confidence = excluded.bound_confidence,
          updated_by = excluded.updated_by, updated_ms = excluded.updated_ms`,
      ),
      remove: db.prepare("DELETE FROM heimdall_policy WHERE domain = ?"),
      saveRecommendation: db.prepare(
        `INSERT INTO heimdall_recommendation VALUES (@id, @domain, @confidence, @recommendationJson,
          @evidenceJson, @prodEligible, @gatesJson, @actor, @correlationId, @createdMs)`,
      ),
      recommendation: db.prepare<
        [string],
        {
          id: string;
          domain: string;
          confidence: number;
          prod_eligible: number;
          gates_json: string;
          created_ms: number;
        }
      >(
        "SELECT id, domain, confidence, prod_eligible, gates_json, created_ms FROM heimdall_recommendation WHERE id = ?",
      ),
    };
  }

  /** Every domain policy. */
  policies(): HeimdallPolicyRecord[] {
    return this.s.policies.all().map(toPolicy);
  }

  /** The policy of one domain, if any. */
  policy(domain: string): HeimdallPolicyRecord | undefined {
    const row = this.s.policy.get(domain);
    return row ? toPolicy(row) : undefined;
  }

  /** Creates or replaces a domain policy. */
  savePolicy(p: HeimdallPolicyRecord): void {
    this.s.upsert.run({ ...p, prodUseEnabled: p.prodUseEnabled ? 1 : 0 });
  }

  /** Removes a domain's policy (central's snapshot no longer has it). */
  removePolicy(domain: string): void {
    this.s.remove.run(domain);
  }

  /**
   * Records one sandbox trial: its audit event (`entry`, the one row it writes), then the day's
   * scorecard in memory; returns the scorecard.
   */
  recordTrial(
    entry: AuditEntry,
    nowMs: number,
    success: boolean,
    confidence: number,
  ): ScorecardRecord {
    return this.book.record(entry, nowMs, success, confidence);
  }

  /** One domain's scorecard for a day (zeros when no trial was recorded). */
  scorecard(day: string, domain: string): ScorecardRecord {
    return this.book.scorecard(day, domain);
  }

  /** Every scorecard of a day. */
  scorecards(day: string): ScorecardRecord[] {
    return this.book.scorecards(day);
  }

  /** Trials and successes of a domain from `fromDay` (inclusive) on. */
  tally(domain: string, fromDay: string): SandboxTally {
    return this.book.tally(domain, fromDay);
  }

  /**
   * Books the trials of at most `maxEvents` sequence numbers of the trail into the scorecard
   * table (inside the caller's transaction); returns how many it advanced.
   */
  fold(maxEvents?: number): number {
    return this.book.fold(maxEvents);
  }

  /** Stores a recommendation with its gates. */
  saveRecommendation(
    r: RecommendationRecord & {
      recommendationJson: string;
      evidenceJson: string;
      actor: string;
      correlationId: string;
    },
  ): void {
    this.s.saveRecommendation.run({
      id: r.id,
      domain: r.domain,
      confidence: r.confidence,
      recommendationJson: r.recommendationJson,
      evidenceJson: r.evidenceJson,
      prodEligible: r.prodEligible ? 1 : 0,
      gatesJson: JSON.stringify(r.gates),
      actor: r.actor,
      correlationId: r.correlationId,
      createdMs: r.createdMs,
    });
  }

  /** One recommendation, if it exists. */
  recommendation(id: string): RecommendationRecord | undefined {
    const row = this.s.recommendation.get(id);
    if (!row) return undefined;
    return {
      id: row.id,
      domain: row.domain,
      confidence: row.confidence,
      prodEligible: row.prod_eligible === 1,
      gates: JSON.parse(row.gates_json) as GateResult[],
      createdMs: row.created_ms,
    };
  }
}
