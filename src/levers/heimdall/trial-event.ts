/**
 * The audit event of a sandbox trial: what RecordSandboxTrial appends to the sidecar's trail,
 * and how central reads a trial back from the shipped event, so the sidecar's scorecard and
 * the fleet's are booked from the same facts (the event's UTC day, its domain, its outcome).
 */
import { utcDay } from "../../clock.js";
import type { AuditEntry } from "../../store/audit-log.js";

/** The action of a sandbox trial's audit event (lever `heimdall`, subject the domain). */
export const SANDBOX_TRIAL_ACTION = "SANDBOX_TRIAL";

/** One sandbox trial as a scorecard books it. */
export interface TrialBooking {
  day: string;
  domain: string;
  success: boolean;
  confidence: number;
}

/** The audit entry of one sandbox trial: ok is the trial's success, metadata its confidence. */
export function trialEntry(
  domain: string,
  success: boolean,
  confidence: number,
  actor: string,
  correlationId: string,
): AuditEntry {
  return {
    lever: "heimdall",
    action: SANDBOX_TRIAL_ACTION,
    subject: domain,
    ok: success,
    reason: "",
    actor,
    correlationId,
    // String(x) of a double reads back as the same double.
    metadata: { confidence: String(confidence) },
  };
}

/** The fields of a stored or shipped event a booking is read from. */
export interface TrialEventFields {
  lever: string;
  action: string;
  subject: string;
  ok: boolean;
  timeMs: number;
  /** The metadata as the JSON text the trail holds. */
  metadataJson: string;
}

/**
 * The scorecard booking of an event: a sandbox trial on the UTC day of its time, or undefined
 * for every other event. A trial whose confidence cannot be read books confidence 0 (its trial
 * and outcome still count, as on the sidecar that recorded it).
 */
export function trialOf(e: TrialEventFields): TrialBooking | undefined {
  if (e.lever !== "heimdall" || e.action !== SANDBOX_TRIAL_ACTION) return undefined;
  let confidence = 0;
  try {
    const m = JSON.parse(e.metadataJson) as { confidence?: unknown };
    const c = Number(m?.confidence);
    if (typeof m?.confidence === "string" && Number.isFinite(c)) confidence = c;
  } catch {
    // not JSON: confidence stays 0
  }
  return { day: utcDay(e.timeMs), domain: e.subject, success: e.ok, confidence };
}
