/** Reads the risk part of the audit trail as RiskEvent messages. */
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { RiskAction } from "../../../gen/governance/v1/risk_pb.js";
import { formatMoney } from "../../money.js";
import type { AuditRow } from "../../store/audit-log.js";
import { readAuditEvents } from "../../store/audit-trail.js";
import type { Db } from "../../store/database.js";

const ACTIONS: Record<string, RiskAction> = {
  RESERVE: RiskAction.RESERVE,
  DENY: RiskAction.DENY,
  SETTLE: RiskAction.SETTLE,
  RELEASE: RiskAction.RELEASE,
};

/** The audit actions that are risk decisions (what ListEvents lists). */
export const RISK_EVENT_ACTIONS: readonly string[] = Object.keys(ACTIONS);

/** The RiskEvent of one stored risk audit row (a sidecar's, or one central holds). */
export function riskEventOf(r: AuditRow) {
  return {
    seq: BigInt(r.seq),
    engine: r.subject,
    action: ACTIONS[r.action] ?? RiskAction.UNSPECIFIED,
    amount: r.amount === null ? "" : formatMoney(r.amount),
    ok: r.ok === 1,
    reason: r.reason,
    actor: r.actor,
    correlationId: r.correlation_id,
    metadata: JSON.parse(r.metadata) as Record<string, string>,
    time: timestampFromMs(r.time_ms),
    reservationId: r.reservation_id,
    hash: r.hash,
  };
}

/** Risk decisions (RESERVE, DENY, SETTLE, RELEASE) after `afterSeq`, oldest first. */
export function listRiskEvents(db: Db, engine: string, afterSeq: number, limit: number) {
  const rows = readAuditEvents(db, {
    lever: "risk",
    actions: RISK_EVENT_ACTIONS,
    subject: engine,
    afterSeq,
    limit,
  });
  return rows.map(riskEventOf);
}
