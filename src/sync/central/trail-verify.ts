/**
 * `govd audit verify` on central: every sidecar's shipped trail in `central_event` walked from
 * genesis with the sidecar's own link rule, read in pages, and checked to end exactly at the
 * anchor central keeps of it (`shipped_seq`, `shipped_hash` in `central_sidecar`). An edited
 * event, a removed one in the middle and removed newest events are each named by seq.
 */
import type { Kysely } from "kysely";
import { chainLinkProblem, GENESIS_HASH } from "../../store/audit-log.js";
import type { CentralTables } from "./central-schema.js";
import { readTrail, type TrailAnchor, trailAnchors } from "./central-trail.js";

/** Events read per page of the walk. */
export const VERIFY_PAGE = 2_000;

/** The outcome of walking one sidecar's shipped trail. */
export interface SidecarTrailReport {
  sidecarId: string;
  ok: boolean;
  /** Events walked (up to and including the first broken one). */
  events: number;
  /** The anchor central keeps of it. */
  anchorSeq: number;
  /** The first event that does not hold, and why. */
  firstBroken?: { seq: number; problem: string };
}

/**
 * Whether a trail whose walk ended intact at `lastSeq` (hash `lastHash`; 0 and "" when empty)
 * ends at `anchor`; the first seq that breaks it and why, or undefined.
 */
export function anchorProblem(
  lastSeq: number,
  lastHash: string,
  anchor: Pick<TrailAnchor, "shippedSeq" | "shippedHash">,
): { seq: number; problem: string } | undefined {
  if (lastSeq < anchor.shippedSeq) {
    return {
      seq: lastSeq + 1,
      problem: `the trail ends at event ${lastSeq} but central acked events up to ${anchor.shippedSeq} (hash ${anchor.shippedHash.slice(0, 12)}...): the newest events were removed`,
    };
  }
  if (lastSeq > anchor.shippedSeq) {
    return {
      seq: anchor.shippedSeq + 1,
      problem: `the trail holds events after ${anchor.shippedSeq}, the newest central acked: events were added behind ShipEvents`,
    };
  }
  if (lastSeq > 0 && lastHash !== anchor.shippedHash) {
    return {
      seq: lastSeq,
      problem: `event ${lastSeq} has hash ${lastHash.slice(0, 12)}..., central acked ${anchor.shippedHash.slice(0, 12)}...: the trail was rewritten`,
    };
  }
  return undefined;
}

/** Walks one sidecar's shipped trail from genesis, `pageSize` events at a time. */
export async function verifySidecarTrail(
  db: Kysely<CentralTables>,
  anchor: TrailAnchor,
  pageSize = VERIFY_PAGE,
): Promise<SidecarTrailReport> {
  const { sidecarId } = anchor;
  let prev = GENESIS_HASH;
  let lastSeq = 0;
  let events = 0;
  for (;;) {
    const page = await readTrail(db, {
      sidecarId,
      after: { sidecarId, seq: lastSeq },
      limit: pageSize,
    });
    for (const row of page) {
      events++;
      const problem = chainLinkProblem(prev, lastSeq + 1, row);
      if (problem) {
        return {
          sidecarId,
          ok: false,
          events,
          anchorSeq: anchor.shippedSeq,
          firstBroken: { seq: Math.min(row.seq, lastSeq + 1), problem },
        };
      }
      prev = row.hash;
      lastSeq = row.seq;
    }
    if (page.length < pageSize) break;
  }
  const broken = anchorProblem(lastSeq, lastSeq === 0 ? "" : prev, anchor);
  return broken
    ? { sidecarId, ok: false, events, anchorSeq: anchor.shippedSeq, firstBroken: broken }
    : { sidecarId, ok: true, events, anchorSeq: anchor.shippedSeq };
}

/** Walks every sidecar's shipped trail, one at a time, yielding each report as it is done. */
export async function* verifyFleetTrails(
  db: Kysely<CentralTables>,
  pageSize = VERIFY_PAGE,
): AsyncGenerator<SidecarTrailReport> {
  for (const anchor of await trailAnchors(db)) yield verifySidecarTrail(db, anchor, pageSize);
}
