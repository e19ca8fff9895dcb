/**
 * The sidecar id a store ships its trail as. Central keeps each event by (sidecar_id, seq), so
 * the same trail shipped under a second id is taken again in full and counted twice in the
 * fleet ledger, scorecard and KPI streams. That happens without anyone choosing it when the id
 * defaults to the host name and a pod comes back under a new name with the same volume. So a
 * connected start records its id in the store, a later start without `--sidecar-id` keeps that
 * id, and once central acked events of the store, a start with another `--sidecar-id` is
 * refused.
 */
import type { Db } from "../../store/database.js";
import { recordedSidecarId } from "../../store/sidecar-identity.js";

/** How the id a sidecar runs under was chosen. */
export type SidecarIdSource = "flag" | "store" | "host name";

/** The id a connected sidecar ships as, where it came from, and whether the store holds it. */
export interface TrailOwner {
  sidecarId: string;
  source: SidecarIdSource;
  /** The store already holds this id (nothing to record). */
  recorded: boolean;
}

/** What a sidecar id may look like (the proto's pattern for sidecar_id). */
const SIDECAR_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** Refuses an id central would refuse, naming where it came from. */
export function assertSidecarIdForm(id: string, source: SidecarIdSource): void {
  if (SIDECAR_ID.test(id)) return;
  const from = source === "flag" ? "--sidecar-id" : `the ${source}`;
  const hint = source === "flag" ? "" : "; pass --sidecar-id";
  throw new Error(
    `${from} ${id} is not a valid sidecar id: use letters, digits, '.', '_' and '-' (at most 128, starting with a letter or digit)${hint}`,
  );
}

/**
 * The id a connected sidecar on `db` ships as: `given` (`--sidecar-id`), else the one the
 * store recorded, else the host name. Throws, saying how to go on, when `given` differs from
 * the recorded id and central already acked events of this store, or when no id is given nor
 * recorded but the store shipped before (an older govd did not record it). Writes nothing.
 */
export function trailOwner(
  db: Db,
  given: string | undefined,
  hostName: string,
  storeFile: string,
): TrailOwner {
  const recorded = recordedSidecarId(db);
  if (given === undefined) {
    if (recorded === undefined && shippedSeq(db) > 0) {
      // Shipped by a govd from before migration 13, under an id the store did not record: the
      // host name may not be that id, and guessing wrong counts the whole trail twice.
      throw new Error(
        `the store ${storeFile} shipped events to central before govd recorded the sidecar id it ships as: start it once with --sidecar-id set to the id it shipped as (govctl fleet lists the sidecars central knows); later starts keep that id`,
      );
    }
    const owner: TrailOwner =
      recorded !== undefined
        ? { sidecarId: recorded, source: "store", recorded: true }
        : { sidecarId: hostName, source: "host name", recorded: false };
    assertSidecarIdForm(owner.sidecarId, owner.source);
    return owner;
  }
  if (recorded !== undefined && given !== recorded && shippedSeq(db) > 0) {
    throw new Error(
      `--sidecar-id ${given}: the store ${storeFile} ships its trail to central as sidecar ${recorded}, and central holds events of it; under another id central would take every event again and count each twice in the fleet. Start it with --sidecar-id ${recorded} (or without --sidecar-id), or run ${given} on a new --data-dir`,
    );
  }
  assertSidecarIdForm(given, "flag");
  return { sidecarId: given, source: "flag", recorded: given === recorded };
}

/** Records the id the store ships as (once the sidecar's other settings were accepted). */
export function recordTrailOwner(db: Db, owner: TrailOwner, nowMs: number): void {
  if (owner.recorded) return;
  db.prepare(
    `INSERT INTO sidecar_identity (id, sidecar_id, claimed_ms) VALUES (1, ?, ?)
     ON CONFLICT (id) DO UPDATE SET sidecar_id = excluded.sidecar_id, claimed_ms = excluded.claimed_ms`,
  ).run(owner.sidecarId, nowMs);
}

/** Every audit event up to this seq is held by central, as central last said (migration 9). */
function shippedSeq(db: Db): number {
  return (
    db.prepare<[], { value: number }>("SELECT value FROM meta WHERE key = 'shipped_seq'").get()
      ?.value ?? 0
  );
}
