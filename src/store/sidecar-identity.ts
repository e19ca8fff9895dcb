/**
 * The sidecar id a store recorded when it first followed central (sidecar migration 13): the
 * id its audit trail ships under. A standalone store that never followed central has none.
 */
import type { Db } from "./database.js";

/** The id this store recorded at a connected start, if any. */
export function recordedSidecarId(db: Db): string | undefined {
  return db
    .prepare<[], { sidecar_id: string }>("SELECT sidecar_id FROM sidecar_identity WHERE id = 1")
    .get()?.sidecar_id;
}
