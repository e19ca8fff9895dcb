/**
 * The go-live rule an engine applies in-process: the same function as the sidecar's
 * `decideExecution` (src/levers/golive/rules.ts), kept as a copy because this package carries
 * its own generated descriptors and must not import the sidecar's; test/engine-execution.test.ts
 * checks that both agree on every input.
 */
import { DenyReason, ExecutionClass } from "../gen/governance/v1/common_pb.js";

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

/** Whether an action of the given class may run under the current switches. */
export function decideExecution(executionClass: ExecutionClass, flags: GoLiveFlags): Verdict {
  if (executionClass === ExecutionClass.EXEMPT) return ALLOW;
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

/** The execution classes by the names a route table uses. */
export type ExecutionClassName = "EXEMPT" | "PROD" | "PROD_EXEC";

/** The enum value of a class name. */
export function executionClassOf(name: ExecutionClassName): ExecutionClass {
  switch (name) {
    case "EXEMPT":
      return ExecutionClass.EXEMPT;
    case "PROD":
      return ExecutionClass.PROD;
    case "PROD_EXEC":
      return ExecutionClass.PROD_EXEC;
    default:
      throw new TypeError(
        `unknown execution class ${JSON.stringify(name)}: use EXEMPT, PROD or PROD_EXEC`,
      );
  }
}

/** The full enum name of a deny reason, as the contract spells it (DENY_REASON_...). */
export function denyReasonName(reason: DenyReason): string {
  const short = DenyReason[reason];
  return short === undefined ? `DENY_REASON_${reason}` : `DENY_REASON_${short}`;
}
