/**
 * List answers cut to a page: at most the count asked for and at most a byte budget below the
 * message limit, with the cursor to read on. An event trail can hold events of up to tens of
 * kilobytes each (bounded metadata), so a count alone cannot keep an answer under the limit.
 */
import { create, type DescMessage, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { recordedSidecarId } from "../store/sidecar-identity.js";
import type { LeverContext } from "./context.js";

/** A page of events and where the next one starts. */
export interface EventPage<T> {
  events: T[];
  /** The `after_seq` that reads on from this page; 0 when this page reached the newest event. */
  nextAfterSeq: bigint;
}

/** Bytes a repeated message field adds per element besides the element: tag and length. */
const ELEMENT_OVERHEAD = 6;

/**
 * The events (oldest first, `limit` of them read from the store) that fit `budgetBytes` once
 * encoded as `schema`; always at least one, so a reader can never be stuck. `readLimit` is the
 * count read, which tells whether more may follow.
 */
export function eventPage<D extends DescMessage, T extends MessageInitShape<D> & { seq?: bigint }>(
  schema: D,
  events: T[],
  readLimit: number,
  budgetBytes: number,
): EventPage<T> {
  let used = 0;
  let kept = 0;
  for (const e of events) {
    const size = toBinary(schema, create(schema, e)).byteLength + ELEMENT_OVERHEAD;
    if (kept > 0 && used + size > budgetBytes) break;
    used += size;
    kept += 1;
  }
  const page = events.slice(0, kept);
  const cut = kept < events.length || events.length >= readLimit;
  const last = page[page.length - 1];
  return { events: page, nextAfterSeq: cut && last?.seq !== undefined ? last.seq : 0n };
}

/** A page of a keyed list (policies) and the token that reads on. */
export interface KeyedPage<T> {
  items: T[];
  /** The `page_token` of the next page; empty on the last page. */
  nextPageToken: string;
}

/**
 * The items after the one keyed `pageToken` (all from the start when empty), at most `limit`
 * (0: no count limit) and at most `budgetBytes` once encoded as `schema`; at least one.
 */
export function keyedPage<D extends DescMessage, T extends MessageInitShape<D>>(
  schema: D,
  items: readonly T[],
  keyOf: (item: T) => string,
  pageToken: string,
  limit: number,
  budgetBytes: number,
): KeyedPage<T> {
  const start = pageToken === "" ? 0 : items.findIndex((i) => keyOf(i) === pageToken) + 1;
  if (start === 0 && pageToken !== "") return { items: [], nextPageToken: "" };
  const page: T[] = [];
  let used = 0;
  for (const item of items.slice(start)) {
    if (limit > 0 && page.length >= limit) break;
    const size = toBinary(schema, create(schema, item)).byteLength + ELEMENT_OVERHEAD;
    if (page.length > 0 && used + size > budgetBytes) break;
    used += size;
    page.push(item);
  }
  const last = page[page.length - 1];
  const more = start + page.length < items.length;
  return { items: page, nextPageToken: more && last ? keyOf(last) : "" };
}

/** A ListPolicies answer: one page of a lever's policies, with the revision they are at. */
export function policiesAnswer<D extends DescMessage, T extends MessageInitShape<D>>(
  ctx: Pick<LeverContext, "revision" | "settings">,
  schema: D,
  policies: readonly T[],
  keyOf: (policy: T) => string,
  request: { pageToken: string; limit: number },
) {
  const page = keyedPage(
    schema,
    policies,
    keyOf,
    request.pageToken,
    request.limit,
    ctx.settings.maxAnswerBytes,
  );
  return {
    policies: page.items,
    policyRevision: ctx.revision.current(),
    nextPageToken: page.nextPageToken,
  };
}

/**
 * A sidecar lists its own trail only: refuses another sidecar's id (central holds every
 * sidecar's) and a page_token (central's fleet-wide paging; a sidecar pages by after_seq).
 */
export function assertOwnTrail(ctx: LeverContext, sidecarId: string, pageToken: string): void {
  if (pageToken !== "") {
    throw new ConnectError(
      "page_token pages central's listing of every sidecar's events; on a sidecar, read on with after_seq set to the answer's next_after_seq",
      Code.InvalidArgument,
    );
  }
  if (sidecarId === "") return;
  const own = recordedSidecarId(ctx.db);
  if (sidecarId === own) return;
  const here = own === undefined ? "has not followed central under any id" : `is ${own}`;
  throw new ConnectError(
    `this sidecar ${here} and lists only its own trail: ask central for sidecar ${sidecarId}'s events, or leave sidecar_id empty`,
    Code.InvalidArgument,
  );
}
