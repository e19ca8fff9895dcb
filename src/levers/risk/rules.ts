/** Risk-guard rules as plain functions: caps per engine and GLOBAL, checked together. */
import { DenyReason, ExecutionClass } from "../../../gen/governance/v1/common_pb.js";
import { maxMoney } from "../../money.js";
import { ALLOW, decideExecution, type GoLiveFlags, type Verdict } from "../golive/rules.js";

/** The caps of one policy, money in micro-units. */
export interface Caps {
  maxDailyLoss: bigint;
  maxDailyExposure: bigint;
  maxOpenRisk: bigint;
  maxActionsPerDay: number;
  enabled: boolean;
}

/** What a ledger has used today (open risk: right now), money in micro-units. */
export interface Usage {
  exposure: bigint;
  realizedLoss: bigint;
  actions: number;
  openRisk: bigint;
}

/** Headroom per dimension, money in micro-units. */
export interface Headroom {
  exposure: bigint;
  openRisk: bigint;
  loss: bigint;
  actions: number;
}

/** No usage yet. */
export const NO_USAGE: Usage = Object.freeze({
  exposure: 0n,
  realizedLoss: 0n,
  actions: 0,
  openRisk: 0n,
});

/** Headroom left under `caps` given `usage` (never below zero). */
export function headroom(caps: Caps, usage: Usage): Headroom {
  return {
    exposure: maxMoney(0n, caps.maxDailyExposure - usage.exposure),
    openRisk: maxMoney(0n, caps.maxOpenRisk - usage.openRisk),
    loss: maxMoney(0n, caps.maxDailyLoss - usage.realizedLoss),
    actions: Math.max(0, caps.maxActionsPerDay - usage.actions),
  };
}

const REASONS = {
  ENGINE: {
    loss: DenyReason.ENGINE_LOSS_CAP,
    actions: DenyReason.ENGINE_ACTION_CAP,
    exposure: DenyReason.ENGINE_EXPOSURE_CAP,
    openRisk: DenyReason.ENGINE_OPEN_RISK_CAP,
  },
  GLOBAL: {
    loss: DenyReason.GLOBAL_LOSS_CAP,
    actions: DenyReason.GLOBAL_ACTION_CAP,
    exposure: DenyReason.GLOBAL_EXPOSURE_CAP,
    openRisk: DenyReason.GLOBAL_OPEN_RISK_CAP,
  },
} as const;

/**
 * The first cap a reservation of `amount` would break, or undefined when it fits:
 * realized loss < max_daily_loss; actions + 1 <= max_actions_per_day;
 * exposure + amount <= max_daily_exposure; open risk + amount <= max_open_risk.
 */
export function capBreach(
  scope: "ENGINE" | "GLOBAL",
  name: string,
  caps: Caps,
  usage: Usage,
  amount: bigint,
): Verdict | undefined {
  const reasons = REASONS[scope];
  const deny = (reason: DenyReason, message: string): Verdict => ({
    allowed: false,
    reason,
    message: `${name}: ${message}`,
  });
  if (usage.realizedLoss >= caps.maxDailyLoss) {
    return deny(reasons.loss, "daily loss cap reached");
  }
  if (usage.actions + 1 > caps.maxActionsPerDay) {
    return deny(reasons.actions, `daily action cap of ${caps.maxActionsPerDay} reached`);
  }
  if (usage.exposure + amount > caps.maxDailyExposure) {
    return deny(reasons.exposure, "daily exposure cap would be exceeded");
  }
  if (usage.openRisk + amount > caps.maxOpenRisk) {
    return deny(reasons.openRisk, "open risk cap would be exceeded");
  }
  return undefined;
}

/** Everything a Reserve decision reads. */
export interface ReserveInputs {
  engine: string;
  amount: bigint;
  flags: GoLiveFlags;
  /** Why the policy cannot be trusted now (see decideExecution); undefined when fresh. */
  staleBecause?: string;
  throttled: ReadonlySet<string>;
  enginePolicy?: Caps;
  globalPolicy?: Caps;
  engineUsage: Usage;
  globalUsage: Usage;
}

/** A Reserve decision, with the breaches of disabled policies that were only logged. */
export interface ReserveDecision {
  verdict: Verdict;
  notEnforced: string[];
}

/** Decides a reservation: go-live, known engine, tripwire throttle, then engine and GLOBAL caps. */
export function decideReserve(i: ReserveInputs): ReserveDecision {
  const notEnforced: string[] = [];
  const gate = decideExecution(ExecutionClass.PROD_EXEC, i.flags, i.staleBecause);
  if (!gate.allowed) return { verdict: gate, notEnforced };
  if (!i.enginePolicy) {
    return {
      verdict: {
        allowed: false,
        reason: DenyReason.UNKNOWN_ENGINE,
        message: `engine ${i.engine} has no risk policy: an operator must upsert one before it can reserve`,
      },
      notEnforced,
    };
  }
  if (i.throttled.has(i.engine)) {
    return {
      verdict: {
        allowed: false,
        reason: DenyReason.TRIPWIRE_THROTTLED,
        message: `engine ${i.engine} is throttled by a tripped regression tripwire`,
      },
      notEnforced,
    };
  }
  const scopes = [
    ["ENGINE", i.engine, i.enginePolicy, i.engineUsage],
    ["GLOBAL", "GLOBAL", i.globalPolicy, i.globalUsage],
  ] as const;
  for (const [scope, name, caps, usage] of scopes) {
    if (!caps) continue;
    const breach = capBreach(scope, name, caps, usage, i.amount);
    if (!breach) continue;
    if (caps.enabled) return { verdict: breach, notEnforced };
    notEnforced.push(
      `${DenyReason[breach.reason]}: ${breach.message} (policy disabled, not enforced)`,
    );
  }
  return { verdict: ALLOW, notEnforced };
}
