/**
 * A KPI outcome in the audit trail: RecordKpi appends one event per outcome (lever `kpi`,
 * action `KPI`, subject `DOMAIN/metric`, ok = the outcome, the value in the
 * metadata; a lever of its own, so that listing tripwire events never walks the outcomes), which ships to central like every event; central reads its fleet KPI streams back
 * out of the shipped events with `kpiOutcomeOf`.
 */
import type { AuditEntry } from "../../store/audit-log.js";

/** The audit action of a recorded KPI outcome. */
export const KPI_ACTION = "KPI";

/** One outcome of a KPI series. */
export interface KpiOutcome {
  domain: string;
  metric: string;
  success: boolean;
}

/** The audit event RecordKpi appends for one outcome. */
export function kpiAuditEntry(
  req: { domain: string; metric: string; success: boolean; value: number; correlationId: string },
  actor: string,
): AuditEntry {
  return {
    lever: "kpi",
    action: KPI_ACTION,
    subject: `${req.domain}/${req.metric}`,
    ok: req.success,
    reason: "",
    actor,
    correlationId: req.correlationId,
    metadata: { value: String(req.value) },
  };
}

/** The KPI outcome an audit event records, or null when it records something else. */
export function kpiOutcomeOf(e: {
  lever: string;
  action: string;
  subject: string;
  ok: boolean;
}): KpiOutcome | null {
  if (e.lever !== "kpi" || e.action !== KPI_ACTION) return null;
  const slash = e.subject.indexOf("/");
  if (slash <= 0 || slash === e.subject.length - 1) return null;
  return { domain: e.subject.slice(0, slash), metric: e.subject.slice(slash + 1), success: e.ok };
}
