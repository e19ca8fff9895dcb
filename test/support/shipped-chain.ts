/**
 * Linked audit events as a sidecar ships them, for central tests that ship through a raw
 * client: each row is chained (linkHash) to the one before, from genesis or `prev`.
 */
import { create } from "@bufbuild/protobuf";
import { ShippedEventSchema } from "../../gen/governance/v1/sync_pb.js";
import { GENESIS_HASH, linkHash } from "../../src/store/audit-log.js";
import { shippedEventOf } from "../../src/sync/shipped-event.js";

/** One event's chain fields, without seq and hash (given by its place). */
export interface ChainRow {
  time_ms?: number;
  lever?: string;
  action: string;
  subject: string;
  amount: bigint | null;
  ok?: number;
  reason?: string;
  actor?: string;
  correlation_id?: string;
  reservation_id?: string;
  metadata?: string;
  denial_counted?: number;
}

/** `rows` as linked ShippedEvents numbered from `first`, and the hash the first links to. */
export function linkedEvents(rows: readonly ChainRow[], first = 1, prev = GENESIS_HASH) {
  const prevHash = prev === GENESIS_HASH ? "" : prev;
  const events = rows.map((r, i) => {
    const seq = first + i;
    const row = {
      seq,
      time_ms: r.time_ms ?? Date.now(),
      lever: r.lever ?? "risk",
      action: r.action,
      subject: r.subject,
      amount: r.amount,
      ok: r.ok ?? 1,
      reason: r.reason ?? "",
      actor: r.actor ?? "engine",
      correlation_id: r.correlation_id ?? `c-${seq}`,
      reservation_id: r.reservation_id ?? "",
      metadata: r.metadata ?? "{}",
    };
    const hash = linkHash(prev, row);
    prev = hash;
    return create(
      ShippedEventSchema,
      shippedEventOf({ ...row, hash, denial_counted: r.denial_counted ?? 0 }),
    );
  });
  return { events, prevHash, head: prev };
}
