/**
 * A backlog of reservations whose TTL ran out while the sidecar was down, written straight into
 * a store with SQL (one transaction, about a second for 300,000), with the open risk and
 * ledger rows their Reserves would have booked, so the ledgers stay consistent.
 */
import { utcDay } from "../src/clock.js";
import type { Db } from "../src/store/database.js";

/** How many reservations, of which engine and amount (micro-units), expired when. */
export interface Backlog {
  count: number;
  engine: string;
  amountMicros: number;
  expiredMs: number;
}

/** Inserts `b.count` OPEN reservations that expired at `b.expiredMs`, booked as their Reserves would. */
export function fillExpiredBacklog(db: Db, b: Backlog): void {
  const createdMs = b.expiredMs - 15 * 60_000;
  const day = utcDay(createdMs);
  const total = b.count * b.amountMicros;
  db.transaction(() => {
    db.prepare(
      `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < @count)
       INSERT INTO risk_reservation (id, engine, amount, day, status, realized_loss, created_ms, expires_ms)
       SELECT printf('backlog-%08d', i), @engine, @amount, @day, 'OPEN', 0, @createdMs, @expiredMs + i % 1000
       FROM n`,
    ).run({
      count: b.count,
      engine: b.engine,
      amount: b.amountMicros,
      day,
      createdMs,
      expiredMs: b.expiredMs,
    });
    for (const engine of [b.engine, "GLOBAL"]) {
      db.prepare(
        `INSERT INTO risk_open (engine, open_risk) VALUES (?, ?)
         ON CONFLICT (engine) DO UPDATE SET open_risk = open_risk + excluded.open_risk`,
      ).run(engine, total);
      db.prepare(
        `INSERT INTO risk_ledger (day, engine, exposure, actions) VALUES (?, ?, ?, ?)
         ON CONFLICT (day, engine) DO UPDATE SET exposure = exposure + excluded.exposure,
          actions = actions + excluded.actions`,
      ).run(day, engine, total, b.count);
    }
  })();
}
