/**
 * Event listings on central (RiskService.ListEvents): the events the sidecars shipped, each
 * with the sidecar it came from, paged exactly. A seq counts one sidecar's events, so
 * `after_seq` reads on within the sidecar `sidecar_id` names; across the fleet the events come
 * in (sidecar_id, seq) order and `page_token` (`next_page_token` of the page before) reads on.
 */
import type { DescMessage, MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Kysely } from "kysely";
import { eventPage } from "../../levers/answer-pages.js";
import type { CentralTables } from "./central-schema.js";
import { type CentralTrailRow, readTrail } from "./central-trail.js";

/** The paging fields of a listing request on central. */
export interface FleetListing {
  sidecarId: string;
  afterSeq: bigint;
  pageToken: string;
  limit: number;
}

/** Where a page starts: after this sidecar ("" before the first) and seq. */
export interface ListingStart {
  sidecarId: string;
  seq: number;
}

/** The page token that reads on after `at`. */
export function pageTokenOf(at: ListingStart): string {
  return `${at.seq}:${at.sidecarId}`;
}

/**
 * Where a listing starts, from `after_seq` (within `sidecar_id`) or `page_token`;
 * INVALID_ARGUMENT, naming the field, when they do not fit together.
 */
export function listingStart(req: Omit<FleetListing, "limit">): ListingStart {
  if (req.pageToken !== "") {
    const m = /^(\d{1,19}):([A-Za-z0-9][A-Za-z0-9._-]{0,127})$/.exec(req.pageToken);
    if (!m) {
      throw new ConnectError(
        `invalid request: page_token: "${req.pageToken}" is not a next_page_token central gave; pass it unchanged, or leave it empty for the first page`,
        Code.InvalidArgument,
      );
    }
    const at = { sidecarId: m[2] ?? "", seq: Number(m[1]) };
    if (req.afterSeq > 0n || (req.sidecarId !== "" && req.sidecarId !== at.sidecarId)) {
      throw new ConnectError(
        "invalid request: page_token: it reads on where the page before ended; send it with the same sidecar_id as that page and after_seq 0",
        Code.InvalidArgument,
      );
    }
    return at;
  }
  if (req.afterSeq > 0n && req.sidecarId === "") {
    throw new ConnectError(
      "invalid request: after_seq: on central a seq counts one sidecar's events; name the sidecar in sidecar_id, or page the whole fleet with page_token",
      Code.InvalidArgument,
    );
  }
  return { sidecarId: req.sidecarId, seq: Number(req.afterSeq) };
}

/**
 * One page of shipped events of `lever` (and `actions`, `subject`), as `schema` messages made
 * by `messageOf`, under `maxAnswerBytes`: with `next_after_seq` (with sidecar_id) and
 * `next_page_token`.
 */
export async function fleetEventPage<
  D extends DescMessage,
  T extends MessageInitShape<D> & { seq?: bigint },
>(
  db: Kysely<CentralTables>,
  schema: D,
  req: FleetListing,
  filter: { lever: string; actions?: readonly string[]; subject?: string },
  messageOf: (row: CentralTrailRow) => T,
  maxAnswerBytes: number,
) {
  const limit = req.limit || 100;
  const start = listingStart(req);
  const rows = await readTrail(db, { sidecarId: req.sidecarId, after: start, limit, ...filter });
  const page = eventPage(schema, rows.map(messageOf), limit, maxAnswerBytes);
  const last = rows[page.events.length - 1];
  return {
    events: page.events,
    nextAfterSeq: req.sidecarId === "" ? 0n : page.nextAfterSeq,
    nextPageToken:
      page.nextAfterSeq > 0n && last
        ? pageTokenOf({ sidecarId: last.sidecar_id, seq: last.seq })
        : "",
  };
}
