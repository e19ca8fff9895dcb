/**
 * The seed's design: the same Reserve rules as one PostgreSQL transaction per request, from this
 * Node process over loopback with `pg`. In a schema of its own, dropped afterwards:
 *   BEGIN; SELECT the engine's and GLOBAL's ledger rows joined with their policies FOR UPDATE;
 *   check the caps (as decideReserve does); UPDATE both ledger rows; INSERT the event; COMMIT.
 * Named (prepared) statements, one round trip each. Timed per call.
 */
import pg from "pg";
import { BENCH_CAPS, ENGINE } from "./scenarios.js";
import { latencySummary } from "./stats.js";

/** Where the seed-design baseline runs: trust auth on loopback, database `test`. */
export const PG_URL = `postgresql://${process.env.PGUSER ?? "postgres"}@127.0.0.1:5432/test`;

/** What one baseline run measured; `synchronousCommit` as set on every connection. */
export interface PgResult {
  synchronousCommit: "on" | "off";
  p50: number;
  p99: number;
  n: number;
  /** Reserves per second with `connections` clients each one transaction at a time. */
  saturatedPerSec: number;
  connections: number;
}

async function client(schema: string, syncCommit: "on" | "off"): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: PG_URL });
  await c.connect();
  await c.query(`SET search_path = ${schema}; SET synchronous_commit = ${syncCommit}`);
  return c;
}

async function reserve(
  c: pg.Client,
  day: string,
  engine: string,
  amountMicros: number,
  seq: number,
) {
  await c.query("BEGIN");
  try {
    const rows = await c.query<{
      engine: string;
      exposure: string;
      realized_loss: string;
      actions: number;
      open_risk: string;
      max_daily_loss: string;
      max_daily_exposure: string;
      max_open_risk: string;
      max_actions_per_day: number;
      enabled: boolean;
    }>({
      name: "lock-ledgers",
      text: `SELECT l.engine, l.exposure, l.realized_loss, l.actions, l.open_risk, p.max_daily_loss,
               p.max_daily_exposure, p.max_open_risk, p.max_actions_per_day, p.enabled
             FROM risk_ledger l JOIN risk_policy p ON p.engine = l.engine
             WHERE l.day = $1 AND l.engine IN ($2, 'GLOBAL') ORDER BY l.engine FOR UPDATE OF l`,
      values: [day, engine],
    });
    if (rows.rows.length !== 2) throw new Error("ledger rows missing");
    for (const r of rows.rows) {
      const breach =
        Number(r.realized_loss) >= Number(r.max_daily_loss) ||
        r.actions + 1 > r.max_actions_per_day ||
        Number(r.exposure) + amountMicros > Number(r.max_daily_exposure) ||
        Number(r.open_risk) + amountMicros > Number(r.max_open_risk);
      if (breach && r.enabled) throw new Error(`baseline Reserve denied for ${r.engine}`);
    }
    await c.query({
      name: "book",
      text: `UPDATE risk_ledger SET exposure = exposure + $3, open_risk = open_risk + $3,
               actions = actions + 1 WHERE day = $1 AND engine IN ($2, 'GLOBAL')`,
      values: [day, engine, amountMicros],
    });
    await c.query({
      name: "event",
      text: `INSERT INTO risk_event (engine, action, amount, ok, reason, actor, correlation_id,
               reservation_id, metadata, time)
             VALUES ($1, 'RESERVE', $2, true, '', 'bench', $3, gen_random_uuid(), '{}', now())`,
      values: [engine, amountMicros, `pg-${seq}`],
    });
    await c.query("COMMIT");
  } catch (err) {
    await c.query("ROLLBACK");
    throw err;
  }
}

/** Runs the baseline: `count` timed Reserves one at a time, then a saturated run; drops the schema. */
export async function pgBaseline(options: {
  synchronousCommit: "on" | "off";
  count: number;
  warmup: number;
  saturatedMs: number;
  connections: number;
}): Promise<PgResult> {
  const schema = `govd_bench_${process.pid}`;
  const admin = new pg.Client({ connectionString: PG_URL });
  await admin.connect();
  const day = new Date().toISOString().slice(0, 10);
  const { micros: cap, actionsPerDay: actions } = BENCH_CAPS;
  try {
    await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE; CREATE SCHEMA ${schema};
      SET search_path = ${schema};
      CREATE TABLE risk_policy (engine text PRIMARY KEY, max_daily_loss bigint NOT NULL,
        max_daily_exposure bigint NOT NULL, max_open_risk bigint NOT NULL,
        max_actions_per_day integer NOT NULL, enabled boolean NOT NULL);
      CREATE TABLE risk_ledger (day date NOT NULL, engine text NOT NULL,
        exposure bigint NOT NULL DEFAULT 0, realized_loss bigint NOT NULL DEFAULT 0,
        actions integer NOT NULL DEFAULT 0, open_risk bigint NOT NULL DEFAULT 0,
        PRIMARY KEY (day, engine));
      CREATE TABLE risk_event (id bigserial PRIMARY KEY, engine text NOT NULL, action text NOT NULL,
        amount bigint, ok boolean NOT NULL, reason text NOT NULL, actor text NOT NULL,
        correlation_id text NOT NULL, reservation_id uuid, metadata jsonb NOT NULL,
        time timestamptz NOT NULL);
      INSERT INTO risk_policy VALUES ('GLOBAL', ${cap}, ${cap}, ${cap}, ${actions}, true),
        ('${ENGINE}', ${cap}, ${cap}, ${cap}, ${actions}, true);
      INSERT INTO risk_ledger (day, engine) VALUES ('${day}', 'GLOBAL'), ('${day}', '${ENGINE}');`);
    const c = await client(schema, options.synchronousCommit);
    let seq = 0;
    try {
      for (let i = 0; i < options.warmup; i++) await reserve(c, day, ENGINE, 10_000, seq++);
      const us = new Float64Array(options.count);
      for (let i = 0; i < options.count; i++) {
        const t0 = process.hrtime.bigint();
        await reserve(c, day, ENGINE, 10_000, seq++);
        us[i] = Number(process.hrtime.bigint() - t0) / 1000;
      }
      const latency = latencySummary(us);
      const clients = [
        c,
        ...(await Promise.all(
          Array.from({ length: options.connections - 1 }, () =>
            client(schema, options.synchronousCommit),
          ),
        )),
      ];
      let done = 0;
      const stopAt = Date.now() + options.saturatedMs;
      const t0 = process.hrtime.bigint();
      await Promise.all(
        clients.map(async (k) => {
          while (Date.now() < stopAt) {
            await reserve(k, day, ENGINE, 10_000, seq++);
            done++;
          }
        }),
      );
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      await Promise.all(clients.slice(1).map((k) => k.end()));
      return {
        synchronousCommit: options.synchronousCommit,
        ...latency,
        saturatedPerSec: done / seconds,
        connections: options.connections,
      };
    } finally {
      await c.end();
    }
  } finally {
    await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await admin.end();
  }
}

/** The server's version and whether fsync is on, for the record. */
export async function pgSettings(): Promise<{ version: string; fsync: string }> {
  const c = new pg.Client({ connectionString: PG_URL });
  await c.connect();
  try {
    const version = (await c.query<{ v: string }>("SELECT version() AS v")).rows[0]?.v ?? "";
    const fsync = (await c.query<{ fsync: string }>("SHOW fsync")).rows[0]?.fsync ?? "";
    return { version: version.split(" on ")[0] ?? version, fsync };
  } finally {
    await c.end();
  }
}
