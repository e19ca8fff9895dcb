/**
 * The digest that ties each revision of central's policy to the whole history before it:
 * SHA-256 over the previous revision's digest (hex) and the change's entity bytes (the
 * protobuf binary of the changed GoLiveState, policy or TripwireTrip). Central computes it when
 * it commits a change; a sidecar recomputes it for every change it applies, so a change applied
 * on top of another history (a restored central backup, a reset store, a message replayed or
 * out of order) is refused instead of silently mixed in.
 */
import { createHash } from "node:crypto";

/** The digest of a revision; `previousDigest` is "" for revision 1. */
export function revisionDigest(previousDigest: string, entityBytes: Uint8Array): string {
  return createHash("sha256").update(previousDigest, "utf8").update(entityBytes).digest("hex");
}
