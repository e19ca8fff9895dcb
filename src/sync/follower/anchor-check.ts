/**
 * The anchor check of `govd audit verify` on a connected sidecar: central holds the hash of
 * the newest event it received (and of the chain head the sidecar last reported), so events
 * removed from the end of the local trail, which the local chain walk cannot see, are caught.
 */
import type { Db } from "../../store/database.js";
import { trailHorizon } from "../../store/trail-horizon.js";
import type { CentralConnection } from "../tls/client-credentials.js";
import { SyncClient } from "./sync-client.js";

/** What central holds of one sidecar's chain. */
export interface ChainAnchor {
  /** The newest event central holds (every one before it too) and its hash. */
  shippedSeq: number;
  shippedHash: string;
  /** The chain head the sidecar last reported. */
  headSeq: number;
  headHash: string;
}

/** Asks central (the fleet view) for a sidecar's anchor; undefined when central never heard of it. */
export async function fetchAnchor(
  endpoint: CentralConnection,
  sidecarId: string,
): Promise<ChainAnchor | undefined> {
  const client = new SyncClient(endpoint);
  try {
    const view = await client.listSidecars();
    const row = view.sidecars.find((r) => r.sidecarId === sidecarId);
    if (!row) return undefined;
    return {
      shippedSeq: Number(row.shippedSeq),
      shippedHash: row.shippedHash,
      headSeq: Number(row.headSeq),
      headHash: row.headHash,
    };
  } finally {
    client.close();
    endpoint.close();
  }
}

/**
 * Checks the local trail against central's anchor: the events central anchored must be here
 * with the same hashes. Returns the problems found (empty when the trail holds them).
 */
export function checkAgainstAnchor(db: Db, anchor: ChainAnchor): string[] {
  const hashOf = db.prepare<[number], { hash: string }>(
    "SELECT hash FROM audit_event WHERE seq = ?",
  );
  const horizon = trailHorizon(db);
  const problems: string[] = [];
  const check = (seq: number, hash: string, what: string) => {
    if (seq === 0) return;
    const local = hashOf.get(seq)?.hash ?? (seq === horizon.seq ? horizon.hash : undefined);
    if (local === undefined && seq < horizon.seq) {
      problems.push(
        `central holds ${what} ${seq} only, but this store pruned events up to ${horizon.seq} after central had acked them: central lost acked events (restored from an older backup?)`,
      );
    } else if (local === undefined) {
      problems.push(
        `central holds ${what} ${seq} (hash ${hash.slice(0, 12)}...), which this store does not have: events were removed from the end of the trail (or the store was replaced by an older copy)`,
      );
    } else if (local !== hash) {
      problems.push(
        `event ${seq} here has hash ${local.slice(0, 12)}..., central holds ${hash.slice(0, 12)}... for ${what} ${seq}: this store's history differs from what it shipped`,
      );
    }
  };
  check(anchor.shippedSeq, anchor.shippedHash, "shipped event");
  if (anchor.headSeq > anchor.shippedSeq) check(anchor.headSeq, anchor.headHash, "reported head");
  return problems;
}
