/**
 * Fleet tripwires on central: every KPI outcome a sidecar ships (its RecordKpi audit events) is
 * appended to the fleet KPI stream of its (domain, metric) in the shipment's own transaction,
 * and central's wire of that stream is evaluated after each outcome with the sidecar's rule
 * (fleet-wire.ts). A trip is committed in the same transaction as a TripwireTrip change, so it
 * reaches every sidecar through Watch; a KILL_SWITCH wire engages the fleet's kill switch too.
 * Each stream keeps only the outcomes its wire reads (window + baseline), older ones are
 * pruned as new ones land.
 */
import { timestampFromMs, timestampMs } from "@bufbuild/protobuf/wkt";
import { type Kysely, sql, type Transaction } from "kysely";
import { TripwireAction } from "../../../gen/governance/v1/regression_pb.js";
import type { ShippedEvent } from "../../../gen/governance/v1/sync_pb.js";
import { kpiOutcomeOf } from "../../levers/regression/kpi-outcome.js";
import { tripwirePolicyOf } from "../../levers/regression/policy-request.js";
import type { TripwirePolicy } from "../../levers/regression/tripwires.js";
import { decode, encode, Kind, wireKey } from "./central-entities.js";
import type { CentralTables } from "./central-schema.js";
import type { CentralStore } from "./central-store.js";
import {
  caughtUp,
  type FleetWireRow,
  fleetFigures,
  NEW_FLEET_WIRE,
  outcomesKept,
  rearmed,
  runFleetWire,
  seriesOf,
  type TripEntity,
} from "./fleet-wire.js";
import { changeSwitches } from "./golive-admin.js";
import { RevisionWrite } from "./revision-write.js";

type Db = Kysely<CentralTables> | Transaction<CentralTables>;

/** Outcome rows inserted per statement (6 parameters each). */
const INSERT_CHUNK = 250;

/** Who commits a fleet trip in the revision log. */
export const FLEET_TRIP_ACTOR = "central:fleet-tripwire";

/** A stream's wire: its policy and trip entity as central holds them now. */
interface WireEntities {
  policy: TripwirePolicy | undefined;
  policyRevision: number;
  trip: TripEntity | undefined;
}

/** The policies and trip entities of `keys`, read in `db` (a transaction or the store). */
async function wireEntities(db: Db, keys: readonly string[]): Promise<Map<string, WireEntities>> {
  const out = new Map<string, WireEntities>(
    keys.map((k) => [k, { policy: undefined, policyRevision: 0, trip: undefined }]),
  );
  if (keys.length === 0) return out;
  const rows = await db
    .selectFrom("central_entity")
    .select(["kind", "entity_key", "entity", "revision"])
    .where("kind", "in", [Kind.regression, Kind.trip])
    .where("entity_key", "in", [...keys])
    .execute();
  for (const r of rows) {
    const w = out.get(r.entity_key);
    if (!w) continue;
    if (r.kind === Kind.regression) {
      const p = decode.regression(r.entity);
      w.policy = tripwirePolicyOf(
        { ...p, actor: p.updatedBy },
        p.updatedAt ? timestampMs(p.updatedAt) : 0,
      );
      w.policyRevision = Number(r.revision);
    } else {
      const t = decode.trip(r.entity);
      w.trip = {
        revision: Number(r.revision),
        tripped: t.tripped,
        reason: t.reason,
        trippedMs: t.trippedAt ? timestampMs(t.trippedAt) : null,
      };
    }
  }
  return out;
}

function rowOf(r: CentralTables["central_kpi_series"] | undefined): FleetWireRow {
  if (!r) return NEW_FLEET_WIRE;
  return {
    eventsSeen: Number(r.events_seen),
    restartAfter: Number(r.restart_after),
    armedAfter: Number(r.armed_after),
    frozenBaseline: r.frozen_baseline === null ? null : Number(r.frozen_baseline),
    cusum: Number(r.cusum),
    design: r.cusum_design ? JSON.parse(r.cusum_design) : null,
    dryRunTripped: Number(r.dry_run_tripped) === 1,
    trippedMs: r.tripped_ms === null ? null : Number(r.tripped_ms),
    lastTripReason: r.last_trip_reason,
    policyRevision: Number(r.policy_revision),
    tripRevision: Number(r.trip_revision),
  };
}

function columnsOf(r: FleetWireRow) {
  return {
    events_seen: r.eventsSeen,
    restart_after: r.restartAfter,
    armed_after: r.armedAfter,
    frozen_baseline: r.frozenBaseline,
    cusum: r.cusum,
    cusum_design: r.design ? JSON.stringify(r.design) : null,
    dry_run_tripped: r.dryRunTripped ? 1 : 0,
    tripped_ms: r.trippedMs,
    last_trip_reason: r.lastTripReason,
    policy_revision: r.policyRevision,
    trip_revision: r.tripRevision,
  };
}

/** The outcomes a wire reads, oldest first: the newest `count` after its restart. */
async function keptOutcomes(
  db: Db,
  domain: string,
  metric: string,
  restartAfter: number,
  count: number,
): Promise<boolean[]> {
  const rows = await db
    .selectFrom("central_kpi_outcome")
    .select("success")
    .where("domain", "=", domain)
    .where("metric", "=", metric)
    .where("n", ">", restartAfter)
    .orderBy("n", "desc")
    .limit(count)
    .execute();
  return rows.map((r) => Number(r.success) === 1).reverse();
}

/** Commits a fleet trip (and for KILL_SWITCH the fleet's kill switch); 0 when already tripped. */
async function commitTrip(
  w: RevisionWrite,
  p: TripwirePolicy,
  reason: string,
  nowMs: number,
  n: number,
): Promise<number> {
  const key = wireKey(p.domain, p.metric);
  // The head is locked from here to commit: another replica's trip of this wire waits, then
  // finds it tripped.
  await w.lock();
  const held = await w.entity(Kind.trip, key);
  if (held && decode.trip(held).tripped) return 0;
  const author = { actor: FLEET_TRIP_ACTOR, reason, correlationId: `fleet:${key}:${n}` };
  const action = p.action === "KILL_SWITCH" ? TripwireAction.KILL_SWITCH : TripwireAction.THROTTLE;
  const revision = await w.append(
    Kind.trip,
    key,
    () =>
      encode.trip({
        domain: p.domain,
        metric: p.metric,
        tripped: true,
        action,
        reason,
        trippedAt: timestampFromMs(nowMs),
      }),
    author,
  );
  if (action === TripwireAction.KILL_SWITCH) {
    await changeSwitches(
      w,
      { killSwitchEngaged: true },
      { ...author, reason: `tripwire ${key} (KILL_SWITCH) tripped on the fleet stream: ${reason}` },
    );
  }
  return revision;
}

/**
 * Appends the KPI outcomes among a shipment's events to their fleet streams and evaluates
 * their wires, inside the shipment's transaction. Returns the last revision a trip committed
 * (0 when none): the caller announces it once the transaction commits (`announceFleetTrip`).
 */
export async function bookFleetKpis(
  trx: Transaction<CentralTables>,
  store: CentralStore,
  sidecarId: string,
  events: readonly ShippedEvent[],
  nowMs: number,
): Promise<number> {
  const streams = new Map<string, { domain: string; metric: string; outcomes: ShippedEvent[] }>();
  for (const e of events) {
    const o = kpiOutcomeOf(e);
    if (!o) continue;
    const key = wireKey(o.domain, o.metric);
    const s = streams.get(key) ?? { domain: o.domain, metric: o.metric, outcomes: [] };
    s.outcomes.push(e);
    streams.set(key, s);
  }
  if (streams.size === 0) return 0;
  // In key order, so two shipments of the same streams lock their rows in the same order.
  const ordered = [...streams].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  // One shipment per stream at a time across replicas. Every stream row of the shipment is
  // locked first, before a trip takes the revision head: a shipment holding the head (mid-trip)
  // and waiting for a stream row held by one that then waits for the head would deadlock.
  const locked = new Map<string, ReturnType<typeof rowOf>>();
  for (const [key, { domain, metric }] of ordered) {
    await trx
      .insertInto("central_kpi_series")
      .values({ domain, metric, ...columnsOf(NEW_FLEET_WIRE) })
      .onConflict((oc) => oc.columns(["domain", "metric"]).doNothing())
      .execute();
    let q = trx
      .selectFrom("central_kpi_series")
      .selectAll()
      .where("domain", "=", domain)
      .where("metric", "=", metric);
    if (store.engine === "postgres") q = q.forUpdate();
    locked.set(key, rowOf(await q.executeTakeFirst()));
  }
  let w: RevisionWrite | undefined;
  for (const [key, { domain, metric, outcomes }] of ordered) {
    // The entities are read after the lock.
    const stored = locked.get(key) as ReturnType<typeof rowOf>;
    const wire = (await wireEntities(trx, [key])).get(key) as WireEntities;
    const start = rearmed(stored, wire.policyRevision, wire.trip);
    const kept = await keptOutcomes(
      trx,
      domain,
      metric,
      start.restartAfter,
      outcomesKept(wire.policy),
    );
    const run = runFleetWire(
      wire.policy,
      start,
      wire.trip,
      kept,
      outcomes.map((e) => e.ok),
      nowMs,
      `fleet stream ${key}`,
    );
    let row = run.row;
    if (run.trip && wire.policy) {
      w ??= new RevisionWrite(trx, store.engine, store.clock);
      const revision = await commitTrip(w, wire.policy, run.trip.reason, nowMs, run.trip.at);
      if (revision > 0) row = { ...row, tripRevision: revision };
    }
    // Only what the wire reads is kept: of a long shipment, only its newest outcomes are stored.
    const keep = outcomesKept(wire.policy);
    for (let i = Math.max(0, outcomes.length - keep); i < outcomes.length; i += INSERT_CHUNK) {
      await trx
        .insertInto("central_kpi_outcome")
        .values(
          outcomes.slice(i, i + INSERT_CHUNK).map((e, j) => ({
            domain,
            metric,
            n: start.eventsSeen + i + j + 1,
            success: e.ok ? 1 : 0,
            sidecar_id: sidecarId,
            seq: Number(e.seq),
          })),
        )
        .execute();
    }
    const prune = Math.max(row.eventsSeen - keep, row.restartAfter);
    await trx
      .deleteFrom("central_kpi_outcome")
      .where("domain", "=", domain)
      .where("metric", "=", metric)
      .where("n", "<=", prune)
      .execute();
    await trx
      .updateTable("central_kpi_series")
      .set(columnsOf(row))
      .where("domain", "=", domain)
      .where("metric", "=", metric)
      .execute();
  }
  if (!w) return 0;
  const revision = await w.finish();
  // A trip is a revision sidecars apply: it waits for the disk, unlike the shipment around it.
  if (revision > 0 && store.engine === "postgres") {
    await sql`SET LOCAL synchronous_commit = on`.execute(trx);
  }
  return revision;
}

/**
 * After the shipment that tripped a fleet wire committed: makes the trip durable on SQLite
 * (the shipment committed without fsync; a checkpoint syncs the WAL first) and tells this
 * replica's Watch streams (PostgreSQL's NOTIFY tells every replica at commit).
 */
export async function announceFleetTrip(store: CentralStore, revision: number): Promise<void> {
  if (revision <= 0) return;
  if (store.engine === "sqlite") await sql`PRAGMA wal_checkpoint(PASSIVE)`.execute(store.db);
  store.changes.emit("revision", revision);
}

/** A fleet wire noted a dry-run trip (ResetTripwire on central may clear it). */
export async function fleetDryRunTripped(db: Db, domain: string, metric: string): Promise<boolean> {
  const r = await db
    .selectFrom("central_kpi_series")
    .select("dry_run_tripped")
    .where("domain", "=", domain)
    .where("metric", "=", metric)
    .executeTakeFirst();
  return Number(r?.dry_run_tripped ?? 0) === 1;
}

/**
 * The TripwireState figures of a wire on its fleet stream, as of now (a re-arm or a policy
 * change not yet met by a shipment is taken into account, as the next shipment will).
 */
export async function fleetWireFigures(db: Db, p: TripwirePolicy) {
  const key = wireKey(p.domain, p.metric);
  const wire = (await wireEntities(db, [key])).get(key) as WireEntities;
  const stored = await db
    .selectFrom("central_kpi_series")
    .selectAll()
    .where("domain", "=", p.domain)
    .where("metric", "=", p.metric)
    .executeTakeFirst();
  const start = rearmed(rowOf(stored), wire.policyRevision, wire.trip);
  const kept = await keptOutcomes(db, p.domain, p.metric, start.restartAfter, outcomesKept(p));
  const row = caughtUp(p, start, wire.trip, kept);
  const s = seriesOf(row, wire.trip);
  return { s, f: fleetFigures(p, s, kept) };
}
