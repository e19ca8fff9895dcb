/**
 * `govd audit verify` on central: every sidecar's shipped trail in `central_event` walked from
 * genesis with the sidecar's own link rule, read in pages, and checked to end exactly at the
 * anchor central keeps of it (`shipped_seq`, `shipped_hash` in `central_sidecar`). An edited
 * event, a removed one in the middle and removed newest events are each named by seq.
 */
import type { Kysely } from "kysely";
import { GENESIS_HASH } from "../../store/audit-log.js";
import { chainLinkProblem } from "../../store/audit-trail.js";
import type { CentralTables } from "./central-schema.js";
import { readTrail, type TrailAnchor, trailAnchor, trailAnchors } from "./central-trail.js";

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

/**
 * Walks one sidecar's shipped trail from genesis, `pageSize` events at a time, then checks it
 * against the anchor read after the walk. While central serves, a shipment may land after the
 * walk's last page: its events and the anchor move in one transaction, so an anchor past the
 * walk's end has the walk read on, and only a pass that finds nothing new while the anchor is
 * still ahead means the newest events are gone.
 */
export async function verifySidecarTrail(
  db: Kysely<CentralTables>,
  sidecarId: string,
  pageSize = VERIFY_PAGE,
): Promise<SidecarTrailReport> {
  let prev = GENESIS_HASH;
  let lastSeq = 0;
  let events = 0;
  /** The anchor seen after the pass before (none yet). */
  let anchorBefore = -1;
  for (;;) {
    let read = 0;
    for (;;) {
      const page = await readTrail(db, {
        sidecarId,
        after: { sidecarId, seq: lastSeq },
        limit: pageSize,
      });
      read += page.length;
      for (const row of page) {
        events++;
        const problem = chainLinkProblem(prev, lastSeq + 1, row);
        if (problem) {
          const anchor = await trailAnchor(db, sidecarId);
          const seq = Math.min(row.seq, lastSeq + 1);
          return {
            sidecarId,
            ok: false,
            events,
            anchorSeq: anchor.shippedSeq,
            firstBroken: { seq, problem },
          };
        }
        prev = row.hash;
        lastSeq = row.seq;
      }
      if (page.length < pageSize) break;
    }
    const anchor = await trailAnchor(db, sidecarId);
    // Events shipped since this pass began (an anchor commits with its events, so a pass after
    // reading it sees them): read on. Only an anchor that stays put over a pass that found
    // nothing new is a trail ending short of it.
    if (lastSeq < anchor.shippedSeq && (read > 0 || anchor.shippedSeq !== anchorBefore)) {
      anchorBefore = anchor.shippedSeq;
      continue;
    }
    const broken = anchorProblem(lastSeq, lastSeq === 0 ? "" : prev, anchor);
    return broken
      ? { sidecarId, ok: false, events, anchorSeq: anchor.shippedSeq, firstBroken: broken }
      : { sidecarId, ok: true, events, anchorSeq: anchor.shippedSeq };
  }
}

/** Walks every sidecar's shipped trail, one at a time, yielding each report as it is done. */
export async function* verifyFleetTrails(
  db: Kysely<CentralTables>,
  pageSize = VERIFY_PAGE,
): AsyncGenerator<SidecarTrailReport> {
  for (const { sidecarId } of await trailAnchors(db)) {
    yield verifySidecarTrail(db, sidecarId, pageSize);
  }
}
