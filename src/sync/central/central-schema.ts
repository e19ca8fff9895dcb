/**
 * Central's tables, as Kysely types and as the migrations that create them. The same schema
 * builder code creates them on SQLite and on PostgreSQL; integers that can grow (revisions,
 * times in ms) are BIGINT, flags are 0/1 integers, entity bytes are BLOB / BYTEA.
 */
import { type Generated, type Kysely, sql } from "kysely";
import { backfillOpenRisk } from "./fleet-open-risk.js";

/** The one-row head of the revision log (id = 1). */
export interface MetaTable {
  id: number;
  revision: number | string;
  digest: string;
  committed_ms: number | string;
}

/** One committed change: the revision log. */
export interface ChangeTable {
  revision: number | string;
  kind: string;
  entity_key: string;
  entity: Uint8Array;
  digest: string;
  committed_ms: number | string;
  actor: string;
  reason: string;
  correlation_id: string;
}

/** The current value of every entity, with the revision that last wrote it. */
export interface EntityTable {
  kind: string;
  entity_key: string;
  entity: Uint8Array;
  revision: number | string;
}

/** What central knows of one sidecar (the fleet view). */
export interface SidecarTable {
  sidecar_id: string;
  /** JSON array of engine names. */
  engines: string;
  applied_revision: number | string;
  applied_digest: string;
  last_nack_revision: number | string;
  last_nack_error: string;
  /** The replica holding its Watch stream, "" when none. */
  replica: string;
  connected: number;
  last_heard_ms: number | string;
  last_resync: string;
  /** Event shipping (migration 2): the newest event held, every one before it too. */
  shipped_seq: Generated<number | string>;
  shipped_hash: Generated<string>;
  /** The chain head and outbox the sidecar last reported. */
  head_seq: Generated<number | string>;
  head_hash: Generated<string>;
  outbox_events: Generated<number | string>;
  outbox_oldest_ms: Generated<number | string>;
  /** Why central last refused its events as a diverged history; "" when it never did. */
  ship_conflict: Generated<string>;
  last_shipped_ms: Generated<number | string>;
  /** Sandbox trials of its shipped events booked on the fleet scorecard (migration 3). */
  trials_shipped: Generated<number | string>;
}

/** One event of a sidecar's audit trail, as shipped (migration 2). */
export interface EventTable {
  sidecar_id: string;
  seq: number | string;
  time_ms: number | string;
  lever: string;
  action: string;
  subject: string;
  /** Micro-units; null when the event carries no amount. */
  amount: number | string | bigint | null;
  ok: number;
  reason: string;
  actor: string;
  correlation_id: string;
  reservation_id: string;
  metadata: string;
  hash: string;
  denial_counted: number;
}

/** The fleet risk ledger: what every sidecar booked, per UTC day and engine (GLOBAL too). */
export interface FleetLedgerTable {
  day: string;
  engine: string;
  exposure: number | string | bigint;
  realized_loss: number | string | bigint;
  actions: number | string;
  denials: number | string;
}

/** The fleet Heimdall scorecard: sandbox trials per UTC day, domain and sidecar (migration 3). */
export interface FleetScorecardTable {
  day: string;
  domain: string;
  sidecar_id: string;
  trials: number | string;
  successes: number | string;
  confidence_sum: number;
}

/** A reservation a sidecar holds open, as its shipped events say (migration 5). */
export interface OpenReservationTable {
  sidecar_id: string;
  reservation_id: string;
  engine: string;
  amount: number | string | bigint;
}

/** The fleet's open risk per engine and GLOBAL: the sum of the open reservations (migration 5). */
export interface OpenRiskTable {
  engine: string;
  open_risk: number | string | bigint;
}

/** When a sidecar acked a revision (for WaitForAcks); the newest acks per sidecar are kept. */
export interface AckTable {
  sidecar_id: string;
  revision: number | string;
  acked_ms: number | string;
}

/** The first answer of an admin write, by (method scope, correlation_id). */
export interface IdempotencyTable {
  scope: string;
  correlation_id: string;
  request_hash: string;
  response: Uint8Array;
  created_ms: number | string;
}

/** Schema versions applied. */
export interface MigrationTable {
  version: number;
  name: string;
}

/** One fleet KPI stream and the state of its wire (migration 4; see fleet-wire.ts). */
export interface KpiSeriesTable {
  domain: string;
  metric: string;
  events_seen: number | string;
  restart_after: number | string;
  armed_after: number | string;
  frozen_baseline: number | null;
  cusum: number;
  /** SEQUENTIAL: the chart's design as JSON, null until the baseline froze. */
  cusum_design: string | null;
  dry_run_tripped: number;
  tripped_ms: number | string | null;
  last_trip_reason: string;
  policy_revision: number | string;
  trip_revision: number | string;
}

/** The newest outcomes of a fleet KPI stream, numbered in ingest order (migration 4). */
export interface KpiOutcomeTable {
  domain: string;
  metric: string;
  n: number | string;
  success: number;
  sidecar_id: string;
  seq: number | string;
}

/** Every table of central's store. */
export interface CentralTables {
  central_meta: MetaTable;
  central_change: ChangeTable;
  central_entity: EntityTable;
  central_sidecar: SidecarTable;
  central_ack: AckTable;
  central_idempotency: IdempotencyTable;
  central_migration: MigrationTable;
  central_event: EventTable;
  central_fleet_ledger: FleetLedgerTable;
  central_fleet_scorecard: FleetScorecardTable;
  central_kpi_series: KpiSeriesTable;
  central_kpi_outcome: KpiOutcomeTable;
  central_open_reservation: OpenReservationTable;
  central_open_risk: OpenRiskTable;
}

/** One schema change, written once for both engines with Kysely's schema builder. */
interface CentralMigration {
  version: number;
  name: string;
  up: (db: Kysely<CentralTables>, bytes: "blob" | "bytea") => Promise<void>;
}

/** Every migration of central's store, in order. */
export const centralMigrations: readonly CentralMigration[] = [
  {
    version: 1,
    name: "revision log, entities, fleet and idempotency keys",
    async up(db, bytes) {
      await db.schema
        .createTable("central_meta")
        .addColumn("id", "integer", (c) => c.primaryKey())
        .addColumn("revision", "bigint", (c) => c.notNull())
        .addColumn("digest", "text", (c) => c.notNull())
        .addColumn("committed_ms", "bigint", (c) => c.notNull())
        .execute();
      await db.schema
        .createTable("central_change")
        .addColumn("revision", "bigint", (c) => c.primaryKey())
        .addColumn("kind", "text", (c) => c.notNull())
        .addColumn("entity_key", "text", (c) => c.notNull())
        .addColumn("entity", bytes, (c) => c.notNull())
        .addColumn("digest", "text", (c) => c.notNull())
        .addColumn("committed_ms", "bigint", (c) => c.notNull())
        .addColumn("actor", "text", (c) => c.notNull())
        .addColumn("reason", "text", (c) => c.notNull())
        .addColumn("correlation_id", "text", (c) => c.notNull())
        .execute();
      await db.schema
        .createTable("central_entity")
        .addColumn("kind", "text", (c) => c.notNull())
        .addColumn("entity_key", "text", (c) => c.notNull())
        .addColumn("entity", bytes, (c) => c.notNull())
        .addColumn("revision", "bigint", (c) => c.notNull())
        .addPrimaryKeyConstraint("central_entity_pk", ["kind", "entity_key"])
        .execute();
      await db.schema
        .createTable("central_sidecar")
        .addColumn("sidecar_id", "text", (c) => c.primaryKey())
        .addColumn("engines", "text", (c) => c.notNull())
        .addColumn("applied_revision", "bigint", (c) => c.notNull())
        .addColumn("applied_digest", "text", (c) => c.notNull())
        .addColumn("last_nack_revision", "bigint", (c) => c.notNull())
        .addColumn("last_nack_error", "text", (c) => c.notNull())
        .addColumn("replica", "text", (c) => c.notNull())
        .addColumn("connected", "integer", (c) => c.notNull())
        .addColumn("last_heard_ms", "bigint", (c) => c.notNull())
        .addColumn("last_resync", "text", (c) => c.notNull())
        .execute();
      await db.schema
        .createTable("central_ack")
        .addColumn("sidecar_id", "text", (c) => c.notNull())
        .addColumn("revision", "bigint", (c) => c.notNull())
        .addColumn("acked_ms", "bigint", (c) => c.notNull())
        .addPrimaryKeyConstraint("central_ack_pk", ["sidecar_id", "revision"])
        .execute();
      await db.schema
        .createTable("central_idempotency")
        .addColumn("scope", "text", (c) => c.notNull())
        .addColumn("correlation_id", "text", (c) => c.notNull())
        .addColumn("request_hash", "text", (c) => c.notNull())
        .addColumn("response", bytes, (c) => c.notNull())
        .addColumn("created_ms", "bigint", (c) => c.notNull())
        .addPrimaryKeyConstraint("central_idempotency_pk", ["scope", "correlation_id"])
        .execute();
      await db
        .insertInto("central_meta")
        .values({ id: 1, revision: 0, digest: "", committed_ms: 0 })
        .execute();
    },
  },
  {
    version: 2,
    name: "shipped sidecar events, the fleet risk ledger, each sidecar's anchor and outbox",
    async up(db) {
      await db.schema
        .createTable("central_event")
        .addColumn("sidecar_id", "text", (c) => c.notNull())
        .addColumn("seq", "bigint", (c) => c.notNull())
        .addColumn("time_ms", "bigint", (c) => c.notNull())
        .addColumn("lever", "text", (c) => c.notNull())
        .addColumn("action", "text", (c) => c.notNull())
        .addColumn("subject", "text", (c) => c.notNull())
        .addColumn("amount", "bigint")
        .addColumn("ok", "integer", (c) => c.notNull())
        .addColumn("reason", "text", (c) => c.notNull())
        .addColumn("actor", "text", (c) => c.notNull())
        .addColumn("correlation_id", "text", (c) => c.notNull())
        .addColumn("reservation_id", "text", (c) => c.notNull())
        .addColumn("metadata", "text", (c) => c.notNull())
        .addColumn("hash", "text", (c) => c.notNull())
        .addColumn("denial_counted", "integer", (c) => c.notNull())
        .addPrimaryKeyConstraint("central_event_pk", ["sidecar_id", "seq"])
        .execute();
      await db.schema
        .createTable("central_fleet_ledger")
        .addColumn("day", "text", (c) => c.notNull())
        .addColumn("engine", "text", (c) => c.notNull())
        .addColumn("exposure", "bigint", (c) => c.notNull())
        .addColumn("realized_loss", "bigint", (c) => c.notNull())
        .addColumn("actions", "bigint", (c) => c.notNull())
        .addColumn("denials", "bigint", (c) => c.notNull())
        .addPrimaryKeyConstraint("central_fleet_ledger_pk", ["day", "engine"])
        .execute();
      const columns = [
        ["shipped_seq", "bigint", 0],
        ["shipped_hash", "text", ""],
        ["head_seq", "bigint", 0],
        ["head_hash", "text", ""],
        ["outbox_events", "bigint", 0],
        ["outbox_oldest_ms", "bigint", 0],
        ["ship_conflict", "text", ""],
        ["last_shipped_ms", "bigint", 0],
      ] as const;
      for (const [name, type, value] of columns) {
        await db.schema
          .alterTable("central_sidecar")
          .addColumn(name, type, (c) => c.notNull().defaultTo(value))
          .execute();
      }
    },
  },
  {
    version: 3,
    name: "the fleet Heimdall scorecard per UTC day, domain and sidecar",
    async up(db) {
      await db.schema
        .createTable("central_fleet_scorecard")
        .addColumn("day", "text", (c) => c.notNull())
        .addColumn("domain", "text", (c) => c.notNull())
        .addColumn("sidecar_id", "text", (c) => c.notNull())
        .addColumn("trials", "bigint", (c) => c.notNull())
        .addColumn("successes", "bigint", (c) => c.notNull())
        .addColumn("confidence_sum", "double precision", (c) => c.notNull())
        .addPrimaryKeyConstraint("central_fleet_scorecard_pk", ["day", "domain", "sidecar_id"])
        .execute();
      // Moves with every shipment that books a trial: the cheap "did the evidence change" read.
      await db.schema
        .alterTable("central_sidecar")
        .addColumn("trials_shipped", "bigint", (c) => c.notNull().defaultTo(0))
        .execute();
    },
  },
  {
    version: 4,
    name: "fleet KPI streams (the newest outcomes each wire reads) and each fleet wire's state",
    async up(db) {
      await db.schema
        .createTable("central_kpi_series")
        .addColumn("domain", "text", (c) => c.notNull())
        .addColumn("metric", "text", (c) => c.notNull())
        .addColumn("events_seen", "bigint", (c) => c.notNull())
        .addColumn("restart_after", "bigint", (c) => c.notNull())
        .addColumn("armed_after", "bigint", (c) => c.notNull())
        .addColumn("frozen_baseline", "double precision")
        .addColumn("cusum", "double precision", (c) => c.notNull())
        .addColumn("cusum_design", "text")
        .addColumn("dry_run_tripped", "integer", (c) => c.notNull())
        .addColumn("tripped_ms", "bigint")
        .addColumn("last_trip_reason", "text", (c) => c.notNull())
        .addColumn("policy_revision", "bigint", (c) => c.notNull())
        .addColumn("trip_revision", "bigint", (c) => c.notNull())
        .addPrimaryKeyConstraint("central_kpi_series_pk", ["domain", "metric"])
        .execute();
      await db.schema
        .createTable("central_kpi_outcome")
        .addColumn("domain", "text", (c) => c.notNull())
        .addColumn("metric", "text", (c) => c.notNull())
        .addColumn("n", "bigint", (c) => c.notNull())
        .addColumn("success", "integer", (c) => c.notNull())
        .addColumn("sidecar_id", "text", (c) => c.notNull())
        .addColumn("seq", "bigint", (c) => c.notNull())
        .addPrimaryKeyConstraint("central_kpi_outcome_pk", ["domain", "metric", "n"])
        .execute();
    },
  },
  {
    version: 5,
    name: "the fleet's open risk: each sidecar's open reservations and the sum per engine",
    async up(db) {
      await db.schema
        .createTable("central_open_reservation")
        .addColumn("sidecar_id", "text", (c) => c.notNull())
        .addColumn("reservation_id", "text", (c) => c.notNull())
        .addColumn("engine", "text", (c) => c.notNull())
        .addColumn("amount", "bigint", (c) => c.notNull())
        .addPrimaryKeyConstraint("central_open_reservation_pk", ["sidecar_id", "reservation_id"])
        .execute();
      await db.schema
        .createTable("central_open_risk")
        .addColumn("engine", "text", (c) => c.primaryKey())
        .addColumn("open_risk", "bigint", (c) => c.notNull())
        .execute();
      // The events central already holds, booked as ingest books new ones.
      await backfillOpenRisk(db);
    },
  },
];

/** The newest schema version of central's store. */
export const CENTRAL_SCHEMA_VERSION = centralMigrations[centralMigrations.length - 1]?.version ?? 0;

/**
 * Applies the migrations not applied yet, each in a transaction. On PostgreSQL an advisory lock
 * keeps two replicas starting at once from migrating twice. Returns the names applied.
 */
export async function migrateCentral(
  db: Kysely<CentralTables>,
  engine: "sqlite" | "postgres",
): Promise<string[]> {
  await db.schema
    .createTable("central_migration")
    .ifNotExists()
    .addColumn("version", "integer", (c) => c.primaryKey())
    .addColumn("name", "text", (c) => c.notNull())
    .execute()
    .catch(async (err: unknown) => {
      // Two replicas creating it at once on PostgreSQL: the loser finds it made.
      if (engine !== "postgres") throw err;
    });
  return db.transaction().execute(async (trx) => {
    if (engine === "postgres") await sql`SELECT pg_advisory_xact_lock(711013)`.execute(trx);
    const done = new Set(
      (await trx.selectFrom("central_migration").select("version").execute()).map((r) =>
        Number(r.version),
      ),
    );
    const applied: string[] = [];
    for (const m of centralMigrations) {
      if (done.has(m.version)) continue;
      await m.up(trx, engine === "postgres" ? "bytea" : "blob");
      await trx
        .insertInto("central_migration")
        .values({ version: m.version, name: m.name })
        .execute();
      applied.push(m.name);
    }
    return applied;
  });
}
