/**
 * The fleet's open risk on central (migration 5): every reservation a sidecar holds open, as
 * its shipped events say (`central_open_reservation`, by sidecar and reservation id), and the
 * sum per engine and GLOBAL (`central_open_risk`). Booked in the shipment's own transaction by
 * `openRiskMovesOf`, the rule the sidecar's open-risk book follows, so once a sidecar's events
 * are shipped central's open risk of it equals its own.
 */
import { type Kysely, sql, type Transaction } from "kysely";
import {
  closedReservationIds,
  type HeldReservation,
  type OpenRiskEvent,
  openRiskMovesOf,
} from "../../levers/risk/open-risk-moves.js";
import type { CentralTables } from "./central-schema.js";
import { readTrail } from "./central-trail.js";

/** Ids per IN list, and rows per insert (4 parameters each), under both engines' limits. */
const CHUNK = 250;

type Db = Kysely<CentralTables> | Transaction<CentralTables>;

/** Books what `events` (one sidecar's, consecutive, in seq order) do to the fleet's open risk. */
export async function bookOpenRisk(
  trx: Db,
  sidecarId: string,
  events: readonly OpenRiskEvent[],
): Promise<void> {
  await bookOpenRiskSums(trx, await bookOpenReservations(trx, sidecarId, events));
}

/**
 * Books the sidecar's own rows (its open reservations) and returns how each engine's open risk
 * moves, for `bookOpenRiskSums`: the sums are rows every shipment books, so ingest books them
 * last.
 */
export async function bookOpenReservations(
  trx: Db,
  sidecarId: string,
  events: readonly OpenRiskEvent[],
): Promise<ReadonlyMap<string, bigint>> {
  const ids = closedReservationIds(events);
  const held = new Map<string, HeldReservation>();
  for (let i = 0; i < ids.length; i += CHUNK) {
    const { rows } = await sql<{ reservation_id: string; engine: string; amount: string }>`
      SELECT reservation_id, engine, CAST(amount AS TEXT) AS amount FROM central_open_reservation
      WHERE sidecar_id = ${sidecarId}
        AND reservation_id IN (${sql.join(ids.slice(i, i + CHUNK).map((id) => sql`${id}`))})`.execute(
      trx,
    );
    for (const r of rows)
      held.set(r.reservation_id, { engine: r.engine, amount: BigInt(r.amount) });
  }
  const moves = openRiskMovesOf(events, held);
  for (let i = 0; i < moves.closed.length; i += CHUNK) {
    await sql`DELETE FROM central_open_reservation WHERE sidecar_id = ${sidecarId}
      AND reservation_id IN (${sql.join(moves.closed.slice(i, i + CHUNK).map((id) => sql`${id}`))})`.execute(
      trx,
    );
  }
  const opened = [...moves.opened];
  for (let i = 0; i < opened.length; i += CHUNK) {
    const values = opened
      .slice(i, i + CHUNK)
      .map(([id, r]) => sql`(${sidecarId}, ${id}, ${r.engine}, ${r.amount})`);
    await sql`INSERT INTO central_open_reservation (sidecar_id, reservation_id, engine, amount)
      VALUES ${sql.join(values)}`.execute(trx);
  }
  return moves.shifts;
}

/** Adds the shifts to the fleet's open risk per engine (GLOBAL included), in one statement. */
export async function bookOpenRiskSums(
  trx: Db,
  shifts: ReadonlyMap<string, bigint>,
): Promise<void> {
  if (shifts.size === 0) return;
  // In name order: replicas booking at once lock the rows in one order (no deadlock).
  const rows = [...shifts.keys()]
    .sort()
    .map((engine) => sql`(${engine}, ${shifts.get(engine) ?? 0n})`);
  await sql`INSERT INTO central_open_risk (engine, open_risk) VALUES ${sql.join(rows)}
    ON CONFLICT (engine) DO UPDATE SET open_risk = central_open_risk.open_risk + excluded.open_risk`.execute(
    trx,
  );
}

/** The fleet's open risk now, by engine (GLOBAL included), money exact. */
export async function fleetOpenRiskOf(db: Db): Promise<Map<string, bigint>> {
  const { rows } = await sql<{ engine: string; open_risk: string }>`
    SELECT engine, CAST(open_risk AS TEXT) AS open_risk FROM central_open_risk`.execute(db);
  return new Map(rows.map((r) => [r.engine, BigInt(r.open_risk)]));
}

/** Events read per page when migration 5 books the events central already held. */
const BACKFILL_PAGE = 5_000;

/**
 * Books the open risk of every risk event central held before migration 5 (run once, inside
 * the migration's transaction), a page at a time in (sidecar, seq) order.
 */
export async function backfillOpenRisk(db: Db): Promise<void> {
  let after = { sidecarId: "", seq: 0 };
  for (;;) {
    const page = await readTrail(db, {
      sidecarId: "",
      after,
      lever: "risk",
      actions: ["RESERVE", "SETTLE", "RELEASE"],
      limit: BACKFILL_PAGE,
    });
    let from = 0;
    for (let i = 1; i <= page.length; i++) {
      if (i < page.length && page[i]?.sidecar_id === page[from]?.sidecar_id) continue;
      const run = page.slice(from, i);
      await bookOpenRisk(db, run[0]?.sidecar_id ?? "", run.map(openRiskEventOf));
      from = i;
    }
    const last = page.at(-1);
    if (!last || page.length < BACKFILL_PAGE) return;
    after = { sidecarId: last.sidecar_id, seq: last.seq };
  }
}

/** The open-risk fields of a stored audit row. */
export function openRiskEventOf(r: {
  lever: string;
  action: string;
  subject: string;
  amount: bigint | null;
  reservation_id: string;
}): OpenRiskEvent {
  return {
    lever: r.lever,
    action: r.action,
    subject: r.subject,
    amount: r.amount,
    reservationId: r.reservation_id,
  };
}
