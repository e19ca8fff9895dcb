/**
 * A sidecar's audit event as ShipEvents carries it: the one mapping from a stored audit row
 * (the fields its chain link covers, its hash, and `denial_counted` beside the chain) to the
 * shipped message, shared by the sidecar's shipper, the ingest benchmark and the tests. The
 * reverse, on central, is `auditRowOf` in central/event-ingest.ts.
 */
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { ShippedEventSchema } from "../../gen/governance/v1/sync_pb.js";

/** An audit_event row, with its integers as numbers or (safeIntegers) bigints. */
export interface ShippableRow {
  seq: number | bigint;
  time_ms: number | bigint;
  lever: string;
  action: string;
  subject: string;
  amount: number | bigint | null;
  ok: number | bigint;
  reason: string;
  actor: string;
  correlation_id: string;
  reservation_id: string;
  metadata: string;
  hash: string;
  denial_counted?: number | bigint | null;
}

/** The ShippedEvent of a stored audit row. */
export function shippedEventOf(r: ShippableRow): MessageInitShape<typeof ShippedEventSchema> {
  return {
    seq: BigInt(r.seq),
    timeMs: BigInt(r.time_ms),
    lever: r.lever,
    action: r.action,
    subject: r.subject,
    amount: r.amount === null ? undefined : BigInt(r.amount),
    ok: Number(r.ok) === 1,
    reason: r.reason,
    actor: r.actor,
    correlationId: r.correlation_id,
    reservationId: r.reservation_id,
    metadataJson: r.metadata,
    hash: r.hash,
    denialCounted: Number(r.denial_counted ?? 0) === 1,
  };
}
