/** Stored Heimdall policies, daily sandbox scorecards and recommendations. */
import type { Db } from "../../store/database.js";
import type { GatePolicy, GateResult, SandboxTally } from "./rules.js";

/** A domain policy as stored. */
export interface HeimdallPolicyRecord extends GatePolicy {
  domain: string;
  lookbackDays: number;
  updatedBy: string;
  updatedMs: number;
}

/** One day's sandbox results of a domain. */
export interface ScorecardRecord {
  domain: string;
  day: string;
  trials: number;
  successes: number;
  confidenceSum: number;
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

interface ScorecardRow {
  domain: string;
  day: string;
  trials: number;
  successes: number;
  confidence_sum: number;
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

function toScorecard(r: ScorecardRow): ScorecardRecord {
  return {
    domain: r.domain,
    day: r.day,
    trials: r.trials,
    successes: r.successes,
    confidenceSum: r.confidence_sum,
  };
}

/** Data access for the Heimdall lever. */
export class SandboxEvidence {
  private readonly s;

  constructor(db: Db) {
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
      trial: db.prepare(
        `INSERT INTO heimdall_scorecard (day, domain, trials, successes, confidence_sum)
         VALUES (?, ?, 1, ?, ?)
         ON CONFLICT (domain, day) DO UPDATE SET trials = trials + 1,
          successes = successes + excluded.successes,
          confidence_sum = confidence_sum + excluded.confidence_sum`,
      ),
      scorecard: db.prepare<[string, string], ScorecardRow>(
        "SELECT * FROM heimdall_scorecard WHERE day = ? AND domain = ?",
      ),
      scorecards: db.prepare<[string], ScorecardRow>(
        "SELECT * FROM heimdall_scorecard WHERE day = ? ORDER BY domain",
      ),
      tally: db.prepare<[string, string], { trials: number | null; successes: number | null }>(
        "SELECT sum(trials) AS trials, sum(successes) AS successes FROM heimdall_scorecard WHERE domain = ? AND day >= ?",
      ),
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

  /** Adds one sandbox trial to the day's scorecard and returns the scorecard. */
  recordTrial(day: string, domain: string, success: boolean, confidence: number): ScorecardRecord {
    this.s.trial.run(day, domain, success ? 1 : 0, confidence);
    return this.scorecard(day, domain);
  }

  /** One domain's scorecard for a day (zeros when no trial was recorded). */
  scorecard(day: string, domain: string): ScorecardRecord {
    const row = this.s.scorecard.get(day, domain);
    return row ? toScorecard(row) : { domain, day, trials: 0, successes: 0, confidenceSum: 0 };
  }

  /** Every scorecard of a day. */
  scorecards(day: string): ScorecardRecord[] {
    return this.s.scorecards.all(day).map(toScorecard);
  }

  /** Trials and successes of a domain from `fromDay` (inclusive) on. */
  tally(domain: string, fromDay: string): SandboxTally {
    const row = this.s.tally.get(domain, fromDay);
    return { trials: row?.trials ?? 0, successes: row?.successes ?? 0 };
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
