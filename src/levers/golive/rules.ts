/** Go-live rules as plain functions: execution classes and the go-live checklist. */
import { DenyReason, ExecutionClass } from "../../../gen/governance/v1/common_pb.js";

/** The two switches every execution decision reads. */
export interface GoLiveFlags {
  goLiveEnabled: boolean;
  killSwitchEngaged: boolean;
}

/** A decision: allowed, or the reason and a sentence for humans. */
export interface Verdict {
  allowed: boolean;
  reason: DenyReason;
  message: string;
}

/** The verdict that lets an action through. */
export const ALLOW: Verdict = Object.freeze({
  allowed: true,
  reason: DenyReason.UNSPECIFIED,
  message: "allowed",
});

/**
 * Whether an action of the given class may run under the current switches. `staleBecause` says
 * why the policy behind the switches cannot be trusted now (a sidecar following central that
 * has not heard from it within its bound, or never received a snapshot): production then fails
 * closed whatever the switches say.
 */
export function decideExecution(
  executionClass: ExecutionClass,
  flags: GoLiveFlags,
  staleBecause?: string,
): Verdict {
  if (executionClass === ExecutionClass.EXEMPT) return ALLOW;
  if (staleBecause !== undefined) {
    return { allowed: false, reason: DenyReason.POLICY_STALE, message: staleBecause };
  }
  if (!flags.goLiveEnabled) {
    return {
      allowed: false,
      reason: DenyReason.GO_LIVE_DISABLED,
      message: "go-live is disabled: production actions are blocked until an operator enables it",
    };
  }
  if (executionClass === ExecutionClass.PROD_EXEC && flags.killSwitchEngaged) {
    return {
      allowed: false,
      reason: DenyReason.KILL_SWITCH_ENGAGED,
      message:
        "the kill switch is engaged: production execution is blocked until an operator releases it",
    };
  }
  return ALLOW;
}

/** What the checklist is computed from. */
export interface ChecklistInputs {
  schemaVersion: number;
  latestSchemaVersion: number;
  globalRiskPolicy: { present: boolean; enabled: boolean };
  policyCounts: { risk: number; heimdall: number; regression: number };
  trippedWires: string[];
  killSwitchEngaged: boolean;
  /** Undefined when standalone (no central node to be fresh against). */
  policyStalenessMs?: number;
  maxStalenessMs?: number;
}

/** One named check and whether it passes. */
export interface Check {
  name: string;
  ok: boolean;
  detail: string;
}

/** The named checks that must all pass before go-live can be enabled. */
export function buildChecklist(i: ChecklistInputs): Check[] {
  const emptyTables = Object.entries(i.policyCounts)
    .filter(([, n]) => n === 0)
    .map(([table]) => table);
  const checks: Check[] = [
    {
      name: "store_migrated",
      ok: i.schemaVersion === i.latestSchemaVersion,
      detail: `schema version ${i.schemaVersion} of ${i.latestSchemaVersion}`,
    },
    {
      name: "global_risk_policy",
      ok: i.globalRiskPolicy.present && i.globalRiskPolicy.enabled,
      detail: !i.globalRiskPolicy.present
        ? "no GLOBAL risk policy: upsert one"
        : i.globalRiskPolicy.enabled
          ? "GLOBAL risk policy present and enabled"
          : "GLOBAL risk policy is disabled",
    },
    {
      name: "policies_seeded",
      ok: emptyTables.length === 0,
      detail:
        emptyTables.length === 0
          ? "risk, heimdall and regression policies present"
          : `no policies in: ${emptyTables.join(", ")}`,
    },
    {
      name: "no_tripwire_triggered",
      ok: i.trippedWires.length === 0,
      detail:
        i.trippedWires.length === 0
          ? "no tripwire is tripped"
          : `tripped: ${i.trippedWires.join(", ")} (re-arm with ResetTripwire)`,
    },
    {
      name: "kill_switch_released",
      ok: !i.killSwitchEngaged,
      detail: i.killSwitchEngaged ? "the kill switch is engaged" : "the kill switch is released",
    },
  ];
  const fresh =
    i.policyStalenessMs === undefined ||
    i.maxStalenessMs === undefined ||
    i.policyStalenessMs <= i.maxStalenessMs;
  checks.push({
    name: "policy_fresh",
    ok: fresh,
    detail:
      i.policyStalenessMs === undefined
        ? "standalone: policies are local"
        : `policies ${i.policyStalenessMs} ms old (bound ${i.maxStalenessMs} ms)`,
  });
  return checks;
}
