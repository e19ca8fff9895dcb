/** The regression part of the audit trail as TripwireEvent messages. */
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { AuditRow } from "../../store/audit-log.js";

/** The tripwire part of the trail ListTripwireEvents reads (KPI outcomes are not listed). */
export const TRIPWIRE_EVENT_ACTIONS: readonly string[] = [
  "TRIP",
  "DRY_RUN_TRIP",
  "RESET",
  "POLICY_UPSERT",
];

/** The TripwireEvent of one stored regression audit row (a sidecar's, or one central holds). */
export function tripwireEventOf(r: AuditRow) {
  const [domain = "", metric = ""] = r.subject.split("/");
  return {
    seq: BigInt(r.seq),
    domain,
    metric,
    action: r.action,
    reason: r.reason,
    actor: r.actor,
    correlationId: r.correlation_id,
    metadata: JSON.parse(r.metadata) as Record<string, string>,
    time: timestampFromMs(r.time_ms),
    hash: r.hash,
  };
}
