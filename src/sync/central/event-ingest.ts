/**
 * Event ingest on central: a sidecar's shipment of audit events, checked against the chain
 * central holds of it and stored with its fleet ledger bookings in one transaction. A shipment
 * either lands whole (events, ledger, open risk, anchor) or changes nothing, so a kill -9 of central in
 * the middle of one neither loses nor doubles an event; the sidecar resends from what central
 * answers it holds.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { type Kysely, sql, type Transaction } from "kysely";
import type { ShipEventsRequest, ShippedEvent } from "../../../gen/governance/v1/sync_pb.js";
import { utcDay } from "../../clock.js";
import { type LedgerDelta, ledgerDeltaOf } from "../../levers/risk/day-ledger.js";
import { GENESIS_HASH, linkHash } from "../../store/audit-log.js";
import type { CentralTables } from "./central-schema.js";
import type { CentralStore } from "./central-store.js";
import { auditRowOf, insertEvents } from "./event-rows.js";
import { bookOpenReservations, bookOpenRiskSums } from "./fleet-open-risk.js";
import { bookFleetScorecard } from "./fleet-scorecard.js";
import { announceFleetTrip, bookFleetKpis } from "./fleet-tripwires.js";

/** What central answers a shipment: the highest contiguous seq it holds and that event's hash. */
export interface ShipmentAck {
  ackedSeq: number;
  ackedHash: string;
  /** The revision of a fleet trip the shipment's KPI outcomes committed, 0 when none. */
  tripRevision: number;
}

/** A refusal of events central already holds with other contents: the history diverged. */
class Diverged extends ConnectError {
  constructor(readonly note: string) {
    super(
      `${note}: the sidecar's history diverged from what it shipped (restored from an old backup, or another store under the same id?); nothing was changed, central keeps the events it holds`,
      Code.FailedPrecondition,
    );
  }
}

/** Ingests one shipment; records a diverged history in the fleet row before refusing it. */
export async function ingestShipment(
  store: CentralStore,
  req: ShipEventsRequest,
): Promise<ShipmentAck> {
  const events = req.events;
  for (let i = 1; i < events.length; i++) {
    if ((events[i] as ShippedEvent).seq !== (events[0] as ShippedEvent).seq + BigInt(i)) {
      throw new ConnectError(
        `events must be consecutive and in seq order: event ${i} has seq ${(events[i] as ShippedEvent).seq}, expected ${(events[0] as ShippedEvent).seq + BigInt(i)}; nothing was changed`,
        Code.InvalidArgument,
      );
    }
  }
  const last = events.at(-1);
  if (last && req.headSeq < last.seq) {
    throw new ConnectError(
      `head_seq ${req.headSeq} is below the newest event shipped (${last.seq}): the head is the sidecar's newest event; nothing was changed`,
      Code.InvalidArgument,
    );
  }
  const now = store.clock.now();
  try {
    // Without fsync: the sidecar keeps the events and ships again what a power cut took back.
    const ack = await store.withoutFsync((trx) => ingestIn(trx, store, req, now));
    await announceFleetTrip(store, ack.tripRevision);
    return ack;
  } catch (err) {
    if (err instanceof Diverged) {
      await store.db
        .updateTable("central_sidecar")
        .set({ ship_conflict: `${new Date(now).toISOString()} ${err.note}`, last_heard_ms: now })
        .where("sidecar_id", "=", req.sidecarId)
        .execute();
    }
    throw err;
  }
}

async function ingestIn(
  trx: Transaction<CentralTables>,
  store: CentralStore,
  req: ShipEventsRequest,
  now: number,
): Promise<ShipmentAck> {
  const id = req.sidecarId;
  // A sidecar may ship before its first Watch: its row starts here.
  await trx
    .insertInto("central_sidecar")
    .values({
      sidecar_id: id,
      engines: "[]",
      applied_revision: 0,
      applied_digest: "",
      last_nack_revision: 0,
      last_nack_error: "",
      replica: "",
      connected: 0,
      last_heard_ms: now,
      last_resync: "",
    })
    .onConflict((oc) => oc.column("sidecar_id").doNothing())
    .execute();
  // One shipment of a sidecar at a time, across replicas (SQLite runs one transaction anyway).
  let q = trx
    .selectFrom("central_sidecar")
    .select(["shipped_seq", "shipped_hash"])
    .where("sidecar_id", "=", id);
  if (store.engine === "postgres") q = q.forUpdate();
  const row = await q.executeTakeFirstOrThrow();
  const held = Number(row.shipped_seq);
  const heldHash = row.shipped_hash;
  const headSeq = Number(req.headSeq);
  if (headSeq < held) {
    throw new Diverged(
      `sidecar ${id} reports its newest event is ${headSeq}, but central holds its events up to ${held}`,
    );
  }
  const first = req.events[0];
  if (first && Number(first.seq) <= held) {
    const last = Math.min(held, Number(first.seq) + req.events.length - 1);
    const kept = await trx
      .selectFrom("central_event")
      .select(["seq", "hash"])
      .where("sidecar_id", "=", id)
      .where("seq", ">=", Number(first.seq))
      .where("seq", "<=", last)
      .execute();
    const hashes = new Map(kept.map((k) => [Number(k.seq), k.hash]));
    for (const e of req.events) {
      const seq = Number(e.seq);
      if (seq > held) break;
      const hash = hashes.get(seq);
      if (hash !== undefined && hash !== e.hash) {
        throw new Diverged(
          `event ${seq} of sidecar ${id} was shipped before with hash ${hash.slice(0, 12)}..., now with ${e.hash.slice(0, 12)}...`,
        );
      }
    }
    throw new ConnectError(
      `a replay: central already holds events up to ${held} of sidecar ${id} (this batch starts at ${first.seq}); nothing was changed, ship from seq ${held + 1}`,
      Code.FailedPrecondition,
    );
  }
  if (first && Number(first.seq) !== held + 1) {
    throw new ConnectError(
      `a gap: central holds events of sidecar ${id} up to ${held}, so the next batch must start at seq ${held + 1}, not ${first.seq}; nothing was changed`,
      Code.FailedPrecondition,
    );
  }
  if (first && held > 0 && req.prevHash !== heldHash) {
    throw new Diverged(
      `event ${first.seq} of sidecar ${id} does not link to event ${held} that central holds (the sidecar holds ${req.prevHash === "" ? "no hash" : `${req.prevHash.slice(0, 12)}...`} there, central ${heldHash.slice(0, 12)}...)`,
    );
  }
  let prev = held === 0 ? GENESIS_HASH : heldHash;
  for (const e of req.events) {
    if (linkHash(prev, auditRowOf(e)) === e.hash) {
      prev = e.hash;
      continue;
    }
    throw new ConnectError(
      `event ${e.seq} of sidecar ${id} does not match its hash (its fields were changed, or it does not link to event ${Number(e.seq) - 1}); nothing was changed`,
      Code.InvalidArgument,
    );
  }
  const ackedSeq = held + req.events.length;
  await insertEvents(trx, store.engine, id, req.events);
  await bookFleetScorecard(trx, id, req.events);
  const tripRevision = await bookFleetKpis(trx, store, id, req.events, now);
  const openRiskShifts = await bookOpenReservations(
    trx,
    id,
    req.events.map((e) => ({ ...e, amount: e.amount ?? null })),
  );
  await trx
    .updateTable("central_sidecar")
    .set({
      shipped_seq: ackedSeq,
      shipped_hash: prev === GENESIS_HASH ? "" : prev,
      head_seq: headSeq,
      head_hash: req.headHash,
      // The outbox the sidecar reported, less what this shipment took from it.
      outbox_events: Math.max(0, headSeq - ackedSeq),
      outbox_oldest_ms: headSeq > ackedSeq ? Number(req.outboxOldestMs) : 0,
      last_shipped_ms: now,
      last_heard_ms: now,
      // Accepted events after a refusal: the history links again (the refusal is history).
      ...(req.events.length > 0 ? { ship_conflict: "" } : {}),
    })
    .where("sidecar_id", "=", id)
    .execute();
  // Last, since every shipment of the fleet books these same rows (on PostgreSQL each waits for
  // the one before to commit): one statement each, just before the commit.
  await bookFleetLedger(trx, req.events);
  await bookOpenRiskSums(trx, openRiskShifts);
  return { ackedSeq, ackedHash: prev === GENESIS_HASH ? "" : prev, tripRevision };
}

/** Adds the events' ledger effects to the fleet ledger, per UTC day, on the engine and GLOBAL. */
async function bookFleetLedger(
  trx: Transaction<CentralTables>,
  events: readonly ShippedEvent[],
): Promise<void> {
  const sums = new Map<string, Required<LedgerDelta> & { day: string; engine: string }>();
  for (const e of events) {
    const delta = ledgerDeltaOf({
      lever: e.lever,
      action: e.action,
      subject: e.subject,
      amount: e.amount ?? null,
      denialCounted: e.denialCounted,
    });
    if (!delta) continue;
    const day = utcDay(Number(e.timeMs));
    for (const engine of [e.subject, "GLOBAL"]) {
      const key = `${day}\u0000${engine}`;
      const s = sums.get(key) ?? { day, engine, exposure: 0n, loss: 0n, actions: 0, denials: 0 };
      s.exposure += delta.exposure ?? 0n;
      s.loss += delta.loss ?? 0n;
      s.actions += delta.actions ?? 0;
      s.denials += delta.denials ?? 0;
      sums.set(key, s);
    }
  }
  if (sums.size === 0) return;
  // One statement, rows in key order: replicas booking at once lock the rows in one order (no
  // deadlock), and a shipment holds them for one round trip.
  const rows = [...sums.keys()].sort().map((key) => {
    const s = sums.get(key) as Required<LedgerDelta> & { day: string; engine: string };
    return sql`(${s.day}, ${s.engine}, ${s.exposure}, ${s.loss}, ${s.actions}, ${s.denials})`;
  });
  await sql`INSERT INTO central_fleet_ledger (day, engine, exposure, realized_loss, actions, denials)
      VALUES ${sql.join(rows)}
      ON CONFLICT (day, engine) DO UPDATE SET
        exposure = central_fleet_ledger.exposure + excluded.exposure,
        realized_loss = central_fleet_ledger.realized_loss + excluded.realized_loss,
        actions = central_fleet_ledger.actions + excluded.actions,
        denials = central_fleet_ledger.denials + excluded.denials`.execute(trx);
}

/** One row of the fleet ledger, money exact. */
export interface FleetLedgerRow {
  engine: string;
  exposure: bigint;
  realizedLoss: bigint;
  actions: number;
  denials: number;
}

/** The fleet ledger of one UTC day, by engine (GLOBAL included). */
export async function fleetLedgerOf(
  db: Kysely<CentralTables>,
  day: string,
): Promise<FleetLedgerRow[]> {
  const { rows } = await sql<{
    engine: string;
    exposure: string;
    realized_loss: string;
    actions: string;
    denials: string;
  }>`SELECT engine, CAST(exposure AS TEXT) AS exposure, CAST(realized_loss AS TEXT) AS realized_loss,
      CAST(actions AS TEXT) AS actions, CAST(denials AS TEXT) AS denials
    FROM central_fleet_ledger WHERE day = ${day} ORDER BY engine`.execute(db);
  return rows.map((r) => ({
    engine: r.engine,
    exposure: BigInt(r.exposure),
    realizedLoss: BigInt(r.realized_loss),
    actions: Number(r.actions),
    denials: Number(r.denials),
  }));
}
