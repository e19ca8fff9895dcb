/**
 * The fleet Heimdall scorecard on central: the sandbox trials of every sidecar's shipped
 * events, per UTC day, domain and sidecar, booked in the shipment's own transaction (so exactly
 * once, as ingest is), and the figures read from it: the fleet's day for GetScorecardToday and,
 * for each sidecar, the other sidecars' evidence it is sent on its Watch stream.
 */
import { type Kysely, sql, type Transaction } from "kysely";
import type { ShippedEvent } from "../../../gen/governance/v1/sync_pb.js";
import { trialOf } from "../../levers/heimdall/trial-event.js";
import type { CentralTables } from "./central-schema.js";

/** One (day, domain) of a scorecard: trials, successes and the sum of their confidences. */
export interface ScorecardFigures {
  day: string;
  domain: string;
  trials: number;
  successes: number;
  confidenceSum: number;
}

/** One row of the fleet scorecard: one sidecar's figures of one (day, domain). */
export interface FleetScorecardRow extends ScorecardFigures {
  sidecarId: string;
}

/** The scorecard bookings of a shipment's events, summed per (day, domain); trials only. */
export function scorecardBookings(events: readonly ShippedEvent[]): ScorecardFigures[] {
  const sums = new Map<string, ScorecardFigures>();
  for (const e of events) {
    const trial = trialOf({
      lever: e.lever,
      action: e.action,
      subject: e.subject,
      ok: e.ok,
      timeMs: Number(e.timeMs),
      metadataJson: e.metadataJson,
    });
    if (!trial) continue;
    const key = `${trial.day}\u0000${trial.domain}`;
    const s = sums.get(key) ?? {
      day: trial.day,
      domain: trial.domain,
      trials: 0,
      successes: 0,
      confidenceSum: 0,
    };
    s.trials += 1;
    s.successes += trial.success ? 1 : 0;
    s.confidenceSum += trial.confidence;
    sums.set(key, s);
  }
  return [...sums.values()];
}

/**
 * Books a shipment's sandbox trials on the fleet scorecard and moves the sidecar's
 * `trials_shipped`, inside the ingest transaction (the sidecar's row is already locked by it).
 */
export async function bookFleetScorecard(
  trx: Transaction<CentralTables>,
  sidecarId: string,
  events: readonly ShippedEvent[],
): Promise<void> {
  let booked = 0;
  for (const s of scorecardBookings(events)) {
    booked += s.trials;
    await sql`INSERT INTO central_fleet_scorecard (day, domain, sidecar_id, trials, successes, confidence_sum)
      VALUES (${s.day}, ${s.domain}, ${sidecarId}, ${s.trials}, ${s.successes}, ${s.confidenceSum})
      ON CONFLICT (day, domain, sidecar_id) DO UPDATE SET
        trials = central_fleet_scorecard.trials + excluded.trials,
        successes = central_fleet_scorecard.successes + excluded.successes,
        confidence_sum = central_fleet_scorecard.confidence_sum + excluded.confidence_sum`.execute(
      trx,
    );
  }
  if (booked === 0) return;
  await trx
    .updateTable("central_sidecar")
    .set((eb) => ({ trials_shipped: eb("trials_shipped", "+", booked) }))
    .where("sidecar_id", "=", sidecarId)
    .execute();
}

/** Every row of the fleet scorecard from `fromDay` (inclusive) on. */
export async function fleetScorecardRows(
  db: Kysely<CentralTables>,
  fromDay: string,
): Promise<FleetScorecardRow[]> {
  const rows = await db
    .selectFrom("central_fleet_scorecard")
    .selectAll()
    .where("day", ">=", fromDay)
    .orderBy("day")
    .orderBy("domain")
    .orderBy("sidecar_id")
    .execute();
  return rows.map((r) => ({
    day: r.day,
    domain: r.domain,
    sidecarId: r.sidecar_id,
    trials: Number(r.trials),
    successes: Number(r.successes),
    confidenceSum: Number(r.confidence_sum),
  }));
}

/**
 * A number that grows whenever any sidecar's shipment books a trial (the sum of every
 * sidecar's `trials_shipped`): one cheap read tells a replica whether to re-read the evidence,
 * also when another replica ingested the shipment.
 */
export async function fleetScorecardVersion(db: Kysely<CentralTables>): Promise<string> {
  const { rows } = await sql<{
    version: string | null;
  }>`SELECT CAST(sum(trials_shipped) AS TEXT) AS version
    FROM central_sidecar`.execute(db);
  return rows[0]?.version ?? "0";
}

/** Sums rows per (day, domain) over the sidecars: the fleet's figures, in (day, domain) order. */
export function fleetFigures(rows: readonly ScorecardFigures[]): ScorecardFigures[] {
  const sums = new Map<string, ScorecardFigures>();
  for (const r of rows) {
    const key = `${r.day}\u0000${r.domain}`;
    const s = sums.get(key) ?? {
      day: r.day,
      domain: r.domain,
      trials: 0,
      successes: 0,
      confidenceSum: 0,
    };
    s.trials += r.trials;
    s.successes += r.successes;
    s.confidenceSum += r.confidenceSum;
    sums.set(key, s);
  }
  return [...sums.values()].sort((a, b) =>
    a.day === b.day ? cmp(a.domain, b.domain) : cmp(a.day, b.day),
  );
}

/**
 * The evidence of the other sidecars for one recipient: the fleet's figures minus the
 * recipient's own shipped rows (it adds its own complete scorecard, shipped or not, so none
 * is counted twice). Entries left with no trial are dropped.
 */
export function othersEvidence(
  fleet: readonly ScorecardFigures[],
  own: readonly ScorecardFigures[],
): ScorecardFigures[] {
  const mine = new Map(own.map((r) => [`${r.day}\u0000${r.domain}`, r]));
  const out: ScorecardFigures[] = [];
  for (const f of fleet) {
    const o = mine.get(`${f.day}\u0000${f.domain}`);
    const trials = f.trials - (o?.trials ?? 0);
    if (trials <= 0) continue;
    out.push({
      day: f.day,
      domain: f.domain,
      trials,
      successes: f.successes - (o?.successes ?? 0),
      confidenceSum: Math.max(0, f.confidenceSum - (o?.confidenceSum ?? 0)),
    });
  }
  return out;
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
