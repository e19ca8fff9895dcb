/** HeimdallService handlers: policies, scorecards, sandbox trials, Recommend and RequireProdEligible. */
import { randomUUID } from "node:crypto";
import { Code, ConnectError } from "@connectrpc/connect";
import { DenyReason, ExecutionClass } from "../../../gen/governance/v1/common_pb.js";
import {
  HeimdallPolicySchema,
  HeimdallService,
  SuccessRateBound,
} from "../../../gen/governance/v1/heimdall_pb.js";
import { utcDay } from "../../clock.js";
import { policiesAnswer } from "../answer-pages.js";
import type { LeverContext } from "../context.js";
import { actorOf, timestamp } from "../convert.js";
import { decideExecution, type Verdict } from "../golive/rules.js";
import { bindService, type ServiceBinding } from "../service-binding.js";
import { addTallies } from "./fleet-evidence.js";
import { evaluateGates, failedGates, type GateResult, lookbackStartDay } from "./rules.js";
import type { HeimdallPolicyRecord, ScorecardRecord } from "./sandbox-evidence.js";
import { trialEntry } from "./trial-event.js";

/** Lookback of a policy that gives none. */
export const DEFAULT_LOOKBACK_DAYS = 30;

/** Confidence of a Wilson bound when the policy gives none. */
export const DEFAULT_BOUND_CONFIDENCE = 0.95;

function policyMessage(p: HeimdallPolicyRecord) {
  return {
    ...p,
    successRateBound:
      p.successRateBound === "WILSON_LOWER" ? SuccessRateBound.WILSON_LOWER : SuccessRateBound.RAW,
    updatedAt: timestamp(p.updatedMs),
  };
}

function scorecardMessage(s: ScorecardRecord) {
  return {
    domain: s.domain,
    day: s.day,
    trials: s.trials,
    successes: s.successes,
    successRate: s.trials === 0 ? 0 : s.successes / s.trials,
    avgConfidence: s.trials === 0 ? 0 : s.confidenceSum / s.trials,
  };
}

function knownPolicy(ctx: LeverContext, domain: string): HeimdallPolicyRecord {
  const policy = ctx.evidence.policy(domain);
  if (!policy) {
    throw new ConnectError(
      `no Heimdall policy for domain ${domain}: an operator must upsert one first`,
      Code.NotFound,
    );
  }
  return policy;
}

function gatesNow(
  ctx: LeverContext,
  policy: HeimdallPolicyRecord,
  confidence: number,
): GateResult[] {
  const from = lookbackStartDay(ctx.clock.now(), policy.lookbackDays);
  // This sidecar's own trials (shipped or not) and, when connected, the other sidecars' (memory).
  const tally = addTallies(
    ctx.evidence.tally(policy.domain, from),
    ctx.fleetEvidence.tally(policy.domain, from),
  );
  return evaluateGates(policy, confidence, tally);
}

function checkJson(field: string, text: string): void {
  if (text === "") return;
  try {
    JSON.parse(text);
  } catch {
    throw new ConnectError(`invalid request: ${field}: must be valid JSON`, Code.InvalidArgument);
  }
}

/** The production verdict of a recommendation: go-live, throttle, prod use, then every gate. */
export function prodVerdict(
  ctx: LeverContext,
  policy: HeimdallPolicyRecord,
  gates: GateResult[],
): Verdict {
  const gate = decideExecution(ExecutionClass.PROD_EXEC, ctx.goLive.get(), ctx.staleBecause());
  if (!gate.allowed) return gate;
  if (ctx.tripwires.throttled().has(policy.domain)) {
    return {
      allowed: false,
      reason: DenyReason.TRIPWIRE_THROTTLED,
      message: `domain ${policy.domain} is throttled by a tripped regression tripwire`,
    };
  }
  if (!policy.prodUseEnabled) {
    return {
      allowed: false,
      reason: DenyReason.PROD_USE_DISABLED,
      message: `production use is disabled for domain ${policy.domain}`,
    };
  }
  const failed = failedGates(gates);
  if (failed.length > 0) {
    return {
      allowed: false,
      reason: DenyReason.GATE_FAILED,
      message: `gates failed: ${failed.join(", ")}`,
    };
  }
  return { allowed: true, reason: DenyReason.UNSPECIFIED, message: "allowed: every gate passed" };
}

/** Binds HeimdallService to a lever context. */
export function heimdallService(ctx: LeverContext): ServiceBinding {
  return bindService(
    HeimdallService,
    {
      listPolicies: (req) =>
        policiesAnswer(
          ctx,
          HeimdallPolicySchema,
          ctx.evidence.policies().map(policyMessage),
          (p) => p.domain ?? "",
          req,
        ),
      upsertPolicy: (req) => {
        const now = ctx.clock.now();
        const record: HeimdallPolicyRecord = {
          domain: req.domain,
          minConfidenceProd: req.minConfidenceProd,
          minSandboxTrials: req.minSandboxTrials,
          minSandboxSuccessRate: req.minSandboxSuccessRate,
          prodUseEnabled: req.prodUseEnabled,
          lookbackDays: req.lookbackDays || DEFAULT_LOOKBACK_DAYS,
          successRateBound:
            req.successRateBound === SuccessRateBound.WILSON_LOWER ? "WILSON_LOWER" : "RAW",
          boundConfidence: req.boundConfidence || DEFAULT_BOUND_CONFIDENCE,
          updatedBy: req.actor,
          updatedMs: now,
        };
        ctx.evidence.savePolicy(record);
        const policyRevision = ctx.revision.next();
        ctx.audit.append(
          {
            lever: "heimdall",
            action: "POLICY_UPSERT",
            subject: req.domain,
            ok: true,
            reason: req.reason,
            actor: req.actor,
            correlationId: req.correlationId,
            metadata: {
              min_confidence_prod: String(record.minConfidenceProd),
              min_sandbox_trials: String(record.minSandboxTrials),
              min_sandbox_success_rate: String(record.minSandboxSuccessRate),
              prod_use_enabled: String(record.prodUseEnabled),
              lookback_days: String(record.lookbackDays),
              success_rate_bound: record.successRateBound,
              bound_confidence: String(record.boundConfidence),
            },
          },
          now,
        );
        return { policy: policyMessage(record), policyRevision };
      },
      getScorecardToday: (req) => {
        const day = utcDay(ctx.clock.now());
        const cards = req.domain
          ? [ctx.evidence.scorecard(day, req.domain)]
          : ctx.evidence.scorecards(day);
        return { day, scorecards: cards.map(scorecardMessage) };
      },
      recordSandboxTrial: (req) => {
        knownPolicy(ctx, req.domain);
        const now = ctx.clock.now();
        // One row: the trial's event, which the day's scorecard books in memory and central's
        // fleet scorecard books when it is shipped.
        const card = ctx.evidence.recordTrial(
          trialEntry(
            req.domain,
            req.success,
            req.confidence,
            actorOf(req.actor),
            req.correlationId,
          ),
          now,
          req.success,
          req.confidence,
        );
        return { scorecard: scorecardMessage(card) };
      },
      recommend: (req) => {
        checkJson("recommendation_json", req.recommendationJson);
        checkJson("evidence_json", req.evidenceJson);
        const policy = knownPolicy(ctx, req.domain);
        const gates = gatesNow(ctx, policy, req.confidence);
        const prodEligible = failedGates(gates).length === 0;
        const id = randomUUID();
        const now = ctx.clock.now();
        ctx.evidence.saveRecommendation({
          id,
          domain: req.domain,
          confidence: req.confidence,
          prodEligible,
          gates,
          createdMs: now,
          recommendationJson: req.recommendationJson,
          evidenceJson: req.evidenceJson,
          actor: actorOf(req.actor),
          correlationId: req.correlationId,
        });
        return {
          recommendationId: id,
          prodEligible,
          gates,
          ...ctx.stamp(),
        };
      },
      requireProdEligible: (req) => {
        const rec = ctx.evidence.recommendation(req.recommendationId);
        if (!rec)
          throw new ConnectError(`recommendation ${req.recommendationId} not found`, Code.NotFound);
        const policy = ctx.evidence.policy(rec.domain);
        const now = ctx.clock.now();
        const gates = policy ? gatesNow(ctx, policy, rec.confidence) : [];
        const verdict: Verdict = policy
          ? prodVerdict(ctx, policy, gates)
          : {
              allowed: false,
              reason: DenyReason.UNKNOWN_DOMAIN,
              message: `domain ${rec.domain} no longer has a Heimdall policy`,
            };
        ctx.audit.append(
          {
            lever: "heimdall",
            action: verdict.allowed ? "PROD_ELIGIBLE" : "PROD_DENIED",
            subject: rec.domain,
            ok: verdict.allowed,
            reason: verdict.message,
            actor: actorOf(req.actor),
            correlationId: req.correlationId,
            metadata: { recommendation_id: rec.id, failed_gates: failedGates(gates).join(",") },
          },
          now,
        );
        return {
          ...verdict,
          ...ctx.stamp(),
          domain: rec.domain,
          gates,
        };
      },
    },
    ["upsertPolicy"],
  );
}
