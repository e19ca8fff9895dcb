/**
 * The KPI fold: the regression lever's derived tables (kpi_event, and tripwire_state's event
 * count and CUSUM statistic) as a snapshot of the audit trail up to one event. Since migration
 * 12 a RecordKpi writes only its audit event (lever `kpi`); the series' outcomes, counts and
 * charts live in memory (Tripwires) and are folded into these tables off the decision path. A
 * series is read back as "its tables at meta.kpi_folded_seq, then its KPI events after it".
 *
 * The outcome of the KPI event at sequence number `seq` has the id kpi_id_base + seq in
 * kpi_event (kpi_id_base is the newest id when the store migrated, so ids keep growing, and a
 * SEQUENTIAL chart's armed_after_kpi keeps its meaning).
 *
 * The chart of a SEQUENTIAL wire steps on an event after armed_after_kpi while its policy is
 * enabled and it is neither tripped nor dry-run tripped, exactly as a RecordKpi steps it. Every
 * other write of a wire's state (arming, freezing, tripping) and every policy change folds the
 * trail first, so the events a fold reads were all decided under the state and policy it reads.
 *
 * One set of statements does the fold, so the sidecar's fold and migration 12's down step (which
 * hands an older govd tables that hold every outcome) cannot disagree. It folds the KPI events with
 * kpi_folded_seq < seq <= kpi_fold_to (both in meta), then sets kpi_folded_seq to kpi_fold_to.
 * Run it inside a transaction.
 */

const FROM = "(SELECT value FROM meta WHERE key = 'kpi_folded_seq')";
const TO = "(SELECT value FROM meta WHERE key = 'kpi_fold_to')";
const BASE = "(SELECT value FROM meta WHERE key = 'kpi_id_base')";

/**
 * The fold's scratch tables, created once per connection. Each fold empties them first; they are
 * never dropped (a CREATE or DROP, even of a TEMP table, makes SQLite prepare every statement of
 * the connection again). No column types: values are kept as the fold computes them.
 */
export const KPI_FOLD_TABLES = `CREATE TEMP TABLE IF NOT EXISTS kpi_fold_event (
  seq, domain, metric, ok, time_ms, value, n);
CREATE INDEX IF NOT EXISTS temp.kpi_fold_event_n ON kpi_fold_event (domain, metric, n);
CREATE TEMP TABLE IF NOT EXISTS kpi_fold_chart (domain, metric, cusum)`;

/**
 * Folds the KPI events in (kpi_folded_seq, kpi_fold_to] into kpi_event and tripwire_state: one
 * statement each, in order, after KPI_FOLD_TABLES (prepared once, see `FoldStatements`).
 */
export const KPI_FOLD_STEPS: readonly string[] = [
  "DELETE FROM temp.kpi_fold_event",
  "DELETE FROM temp.kpi_fold_chart",
  `INSERT INTO temp.kpi_fold_event (seq, domain, metric, ok, time_ms, value, n)
  SELECT seq, substr(subject, 1, instr(subject, '/') - 1),
    substr(subject, instr(subject, '/') + 1), ok, time_ms,
    coalesce(CAST(json_extract(metadata, '$.value') AS REAL), 0.0),
    row_number() OVER (PARTITION BY subject ORDER BY seq)
  FROM audit_event WHERE seq > ${FROM} AND seq <= ${TO} AND +lever = 'kpi' AND action = 'KPI'`,
  `INSERT INTO kpi_event (id, domain, metric, success, value, time_ms)
  SELECT ${BASE} + seq, domain, metric, ok, value, time_ms FROM temp.kpi_fold_event ORDER BY seq`,
  `WITH RECURSIVE chart (domain, metric, n, cusum) AS (
    SELECT s.domain, s.metric, 0, s.cusum FROM tripwire_state s
      JOIN regression_policy p ON p.domain = s.domain AND p.metric = s.metric
      WHERE s.cusum_design IS NOT NULL AND s.tripped = 0 AND s.dry_run_tripped = 0
        AND p.enabled = 1 AND p.method = 'SEQUENTIAL'
    UNION ALL
    SELECT c.domain, c.metric, e.n,
      CASE WHEN ${BASE} + e.seq <= s.armed_after_kpi THEN c.cusum
        WHEN e.ok = 1 THEN max(0, c.cusum - json_extract(s.cusum_design, '$.down'))
        ELSE c.cusum + json_extract(s.cusum_design, '$.up') END
    FROM chart c
      JOIN temp.kpi_fold_event e ON e.domain = c.domain AND e.metric = c.metric AND e.n = c.n + 1
      JOIN tripwire_state s ON s.domain = c.domain AND s.metric = c.metric)
INSERT INTO temp.kpi_fold_chart (domain, metric, cusum)
  SELECT domain, metric, cusum FROM chart c WHERE n > 0 AND n = (
    SELECT max(n) FROM temp.kpi_fold_event e WHERE e.domain = c.domain AND e.metric = c.metric)`,
  `INSERT INTO tripwire_state (domain, metric, events_seen, tripped, tripped_ms, last_trip_reason)
  SELECT domain, metric, count(*), 0, NULL, '' FROM temp.kpi_fold_event WHERE true
  GROUP BY domain, metric
  ON CONFLICT (domain, metric) DO UPDATE SET events_seen = events_seen + excluded.events_seen`,
  `UPDATE tripwire_state SET cusum = (SELECT c.cusum FROM temp.kpi_fold_chart c
    WHERE c.domain = tripwire_state.domain AND c.metric = tripwire_state.metric)
  WHERE (domain, metric) IN (SELECT domain, metric FROM temp.kpi_fold_chart)`,
  `UPDATE meta SET value = ${TO} WHERE key = 'kpi_folded_seq'`,
];

/** The whole fold as one SQL text (migration 12's down step runs it with `exec`). */
export const KPI_FOLD_SQL = `${KPI_FOLD_TABLES};\n${KPI_FOLD_STEPS.join(";\n")};\n`;

/** Sets how far the next KPI_FOLD_SQL goes: to the newest audit event. */
export const KPI_FOLD_TO_HEAD_SQL = `
UPDATE meta SET value = coalesce((SELECT max(seq) FROM audit_event), 0) WHERE key = 'kpi_fold_to';`;
