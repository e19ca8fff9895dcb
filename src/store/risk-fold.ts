/**
 * The risk fold: the risk lever's tables (risk_ledger, risk_reservation, risk_open) as a
 * snapshot of the audit trail up to one event. Since migration 8 a Reserve, Settle or Release
 * writes only its audit event; the ledgers, open risk and open reservations live in memory
 * (RiskBook) and are folded into these tables off the decision path. A store is read back as
 * "the tables at meta.risk_folded_seq, then the events after it".
 *
 * One set of statements does the fold, so the sidecar's fold and migration 8's down step (which
 * hands an older govd tables that hold every event) cannot disagree. It folds the risk events with
 * risk_folded_seq < seq <= risk_fold_to (both in meta), then sets risk_folded_seq to
 * risk_fold_to. Run it inside a transaction.
 */

const FROM = "(SELECT value FROM meta WHERE key = 'risk_folded_seq')";
const TO = "(SELECT value FROM meta WHERE key = 'risk_fold_to')";
/** The UTC day (YYYY-MM-DD) of an event, as utcDay formats it. */
const DAY = "strftime('%Y-%m-%d', time_ms / 1000, 'unixepoch')";
// `+lever`: walk the events by seq (the range is small), not the whole of the lever's index.
const RANGE = `seq > ${FROM} AND seq <= ${TO} AND +lever = 'risk'`;

/** The ledger effect of one risk event on its engine (GLOBAL gets the same, see below). */
const EFFECTS = `
  SELECT ${DAY} AS day, subject AS engine,
    CASE WHEN action = 'RESERVE' THEN amount ELSE 0 END AS exposure,
    CASE WHEN action = 'SETTLE' THEN amount ELSE 0 END AS loss,
    CASE WHEN action = 'RESERVE' THEN 1 ELSE 0 END AS actions,
    CASE WHEN action = 'DENY' AND denial_counted = 1 THEN 1 ELSE 0 END AS denials
  FROM audit_event WHERE ${RANGE} AND action IN ('RESERVE', 'SETTLE', 'DENY')`;

/**
 * The fold's scratch table, created once per connection. Each fold empties it first; it is never
 * dropped: a CREATE or DROP, even of a TEMP table, changes the schema, and SQLite then prepares
 * every statement of the connection again on its next use (the decisions' included).
 */
export const RISK_FOLD_TABLES = `CREATE TEMP TABLE IF NOT EXISTS risk_fold_close (
  id TEXT PRIMARY KEY, status TEXT NOT NULL, loss INTEGER NOT NULL, time_ms INTEGER NOT NULL)`;

/**
 * Folds the events in (risk_folded_seq, risk_fold_to] into the risk tables: one statement
 * each, in order, after RISK_FOLD_TABLES (prepared once by the sidecar, see `FoldStatements`).
 */
export const RISK_FOLD_STEPS: readonly string[] = [
  "DELETE FROM temp.risk_fold_close",
  `INSERT INTO risk_ledger (day, engine, exposure, realized_loss, actions, denials)
  SELECT day, engine, sum(exposure), sum(loss), sum(actions), sum(denials) FROM (
    SELECT * FROM (${EFFECTS})
    UNION ALL SELECT day, 'GLOBAL', exposure, loss, actions, denials FROM (${EFFECTS}))
  WHERE exposure <> 0 OR loss <> 0 OR actions <> 0 OR denials <> 0
  GROUP BY day, engine
  ON CONFLICT (day, engine) DO UPDATE SET exposure = exposure + excluded.exposure,
    realized_loss = realized_loss + excluded.realized_loss,
    actions = actions + excluded.actions, denials = denials + excluded.denials`,
  `INSERT INTO risk_reservation (id, engine, amount, day, status, realized_loss, created_ms, expires_ms)
  SELECT reservation_id, subject, amount, ${DAY}, 'OPEN', 0, time_ms, coalesce(expires_ms, time_ms)
  FROM audit_event WHERE ${RANGE} AND action = 'RESERVE' ORDER BY seq`,
  `INSERT INTO temp.risk_fold_close
  SELECT reservation_id, status, loss, time_ms FROM (
    SELECT reservation_id, time_ms,
      CASE WHEN action = 'SETTLE' THEN 'SETTLED'
        WHEN json_extract(metadata, '$.ttl') = 'expired' THEN 'EXPIRED' ELSE 'RELEASED' END AS status,
      CASE WHEN action = 'SETTLE' THEN amount ELSE 0 END AS loss,
      row_number() OVER (PARTITION BY reservation_id ORDER BY seq DESC) AS newest
    FROM audit_event WHERE ${RANGE} AND action IN ('SETTLE', 'RELEASE'))
  WHERE newest = 1`,
  `WITH delta (engine, amount) AS (
    SELECT subject, amount FROM audit_event WHERE ${RANGE} AND action = 'RESERVE'
    UNION ALL SELECT r.engine, -r.amount FROM temp.risk_fold_close c
      CROSS JOIN risk_reservation r ON r.id = c.id WHERE r.status = 'OPEN')
INSERT INTO risk_open (engine, open_risk)
  SELECT engine, sum(amount) FROM (
    SELECT engine, amount FROM delta UNION ALL SELECT 'GLOBAL', amount FROM delta)
  WHERE true GROUP BY engine
  ON CONFLICT (engine) DO UPDATE SET open_risk = open_risk + excluded.open_risk`,
  `UPDATE risk_reservation SET
    status = (SELECT status FROM temp.risk_fold_close c WHERE c.id = risk_reservation.id),
    realized_loss = (SELECT loss FROM temp.risk_fold_close c WHERE c.id = risk_reservation.id),
    closed_ms = (SELECT time_ms FROM temp.risk_fold_close c WHERE c.id = risk_reservation.id)
  WHERE id IN (SELECT id FROM temp.risk_fold_close)`,
  `UPDATE meta SET value = ${TO} WHERE key = 'risk_folded_seq'`,
];

/** The whole fold as one SQL text (migration 8's down step runs it with `exec`). */
export const RISK_FOLD_SQL = `${RISK_FOLD_TABLES};\n${RISK_FOLD_STEPS.join(";\n")};\n`;

/** Sets how far the next RISK_FOLD_SQL goes: to the newest audit event. */
export const FOLD_TO_HEAD_SQL = `
UPDATE meta SET value = coalesce((SELECT max(seq) FROM audit_event), 0) WHERE key = 'risk_fold_to';`;
