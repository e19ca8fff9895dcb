/** Versioned schema changes of the sidecar store, each with its down step. */
import { KPI_FOLD_SQL, KPI_FOLD_TO_HEAD_SQL } from "./kpi-fold.js";
import { FOLD_TO_HEAD_SQL, RISK_FOLD_SQL } from "./risk-fold.js";
import { SCORECARD_FOLD_DOWN_SQL } from "./scorecard-fold.js";

/** One schema change: `up` moves from version-1 to version, `down` moves back. */
export interface Migration {
  version: number;
  name: string;
  up: string;
  down: string;
}

const M = 1_000_000;

// Seed numbers from DESIGN.md "Seed rows". Where the seed gives none: GLOBAL open risk 800
// (the sum of the engine caps), actions per day GLOBAL 10000, WHOLESALE 5000, CAPITAL 2000;
// NOTIFY (disabled, so only logged) loss 50, exposure 250, open risk 100, 1000 actions.
const riskSeed = [
  ["GLOBAL", 250, 1500, 800, 10000, 1],
  ["WHOLESALE", 200, 1000, 500, 5000, 1],
  ["CAPITAL", 150, 750, 300, 2000, 1],
  ["NOTIFY", 50, 250, 100, 1000, 0],
] as const;

const heimdallSeed = [
  ["WHOLESALE_OFFER", 0.92, 75, 0.82],
  ["BUYER_MATCH", 0.9, 50, 0.8],
  ["CAPITAL_ROUTE", 0.95, 100, 0.85],
  ["FOLLOWUP_ACTION", 0.9, 60, 0.8],
] as const;

const regressionSeed = [
  ["WHOLESALE", "contract_rate", 0.2, "THROTTLE"],
  ["WHOLESALE", "offer_accept_rate", 0.15, "THROTTLE"],
  ["BUYER_MATCH", "match_success", 0.25, "THROTTLE"],
  ["CAPITAL", "roi_event", 0.3, "KILL_SWITCH"],
] as const;

const seedRows = [
  `INSERT INTO golive_state VALUES (1, 0, 0, 'seed', 'initial state: go-live disabled, kill switch released', 0, 0);`,
  `INSERT INTO meta VALUES ('policy_revision', 1);`,
  ...riskSeed.map(
    ([engine, loss, exposure, open, actions, enabled]) =>
      `INSERT INTO risk_policy VALUES ('${engine}', ${loss * M}, ${exposure * M}, ${open * M}, ${actions}, ${enabled}, 'seed', 0);`,
  ),
  ...heimdallSeed.map(
    ([domain, confidence, trials, rate]) =>
      `INSERT INTO heimdall_policy VALUES ('${domain}', ${confidence}, ${trials}, ${rate}, 0, 30, 'seed', 0);`,
  ),
  ...regressionSeed.map(
    ([domain, metric, drop, action]) =>
      `INSERT INTO regression_policy VALUES ('${domain}', '${metric}', 50, 200, 250, ${drop}, '${action}', '[]', 0, 'seed', 0);`,
  ),
].join("\n");

/** The idempotency table as version 2 made it (version 5 changes it, and its down restores it). */
const idempotencyByKey = `
CREATE TABLE idempotency (
  method TEXT NOT NULL, correlation_id TEXT NOT NULL, request_hash BLOB NOT NULL,
  response BLOB NOT NULL, created_ms INTEGER NOT NULL,
  PRIMARY KEY (method, correlation_id)) WITHOUT ROWID;`;

/** Version 1's guard of the audit trail (version 11 narrows it, and its down restores it). */
const noUpdateAtAll = `CREATE TRIGGER audit_event_no_update BEFORE UPDATE ON audit_event
  BEGIN SELECT RAISE(ABORT, 'audit events are immutable'); END;`;

/** Every migration, in order. The newest version is the last one's. */
export const migrations: readonly Migration[] = [
  {
    version: 1,
    name: "levers and audit trail, with the seed policies",
    up: `
CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE golive_state (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  go_live_enabled INTEGER NOT NULL, kill_switch_engaged INTEGER NOT NULL,
  changed_by TEXT NOT NULL, reason TEXT NOT NULL, updated_ms INTEGER NOT NULL, revision INTEGER NOT NULL);
CREATE TABLE risk_policy (
  engine TEXT PRIMARY KEY, max_daily_loss INTEGER NOT NULL, max_daily_exposure INTEGER NOT NULL,
  max_open_risk INTEGER NOT NULL, max_actions_per_day INTEGER NOT NULL, enabled INTEGER NOT NULL,
  updated_by TEXT NOT NULL, updated_ms INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE risk_ledger (
  day TEXT NOT NULL, engine TEXT NOT NULL, exposure INTEGER NOT NULL DEFAULT 0,
  realized_loss INTEGER NOT NULL DEFAULT 0, actions INTEGER NOT NULL DEFAULT 0,
  denials INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (day, engine)) WITHOUT ROWID;
CREATE TABLE risk_open (engine TEXT PRIMARY KEY, open_risk INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE risk_reservation (
  id TEXT PRIMARY KEY, engine TEXT NOT NULL, amount INTEGER NOT NULL, day TEXT NOT NULL,
  status TEXT NOT NULL, realized_loss INTEGER NOT NULL DEFAULT 0, created_ms INTEGER NOT NULL,
  expires_ms INTEGER NOT NULL, closed_ms INTEGER) WITHOUT ROWID;
CREATE INDEX risk_reservation_open ON risk_reservation (expires_ms) WHERE status = 'OPEN';
CREATE TABLE heimdall_policy (
  domain TEXT PRIMARY KEY, min_confidence_prod REAL NOT NULL, min_sandbox_trials INTEGER NOT NULL,
  min_sandbox_success_rate REAL NOT NULL, prod_use_enabled INTEGER NOT NULL,
  lookback_days INTEGER NOT NULL, updated_by TEXT NOT NULL, updated_ms INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE heimdall_scorecard (
  day TEXT NOT NULL, domain TEXT NOT NULL, trials INTEGER NOT NULL, successes INTEGER NOT NULL,
  confidence_sum REAL NOT NULL, PRIMARY KEY (domain, day)) WITHOUT ROWID;
CREATE TABLE heimdall_recommendation (
  id TEXT PRIMARY KEY, domain TEXT NOT NULL, confidence REAL NOT NULL,
  recommendation_json TEXT NOT NULL, evidence_json TEXT NOT NULL, prod_eligible INTEGER NOT NULL,
  gates_json TEXT NOT NULL, actor TEXT NOT NULL, correlation_id TEXT NOT NULL,
  created_ms INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE regression_policy (
  domain TEXT NOT NULL, metric TEXT NOT NULL, window_events INTEGER NOT NULL,
  baseline_events INTEGER NOT NULL, min_events_to_enforce INTEGER NOT NULL,
  max_drop_fraction REAL NOT NULL, action TEXT NOT NULL, throttle_targets TEXT NOT NULL,
  enabled INTEGER NOT NULL, updated_by TEXT NOT NULL, updated_ms INTEGER NOT NULL,
  PRIMARY KEY (domain, metric)) WITHOUT ROWID;
CREATE TABLE kpi_event (
  id INTEGER PRIMARY KEY, domain TEXT NOT NULL, metric TEXT NOT NULL, success INTEGER NOT NULL,
  value REAL NOT NULL, time_ms INTEGER NOT NULL);
CREATE INDEX kpi_event_series ON kpi_event (domain, metric, id);
CREATE TABLE tripwire_state (
  domain TEXT NOT NULL, metric TEXT NOT NULL, events_seen INTEGER NOT NULL, tripped INTEGER NOT NULL, tripped_ms INTEGER,
  last_trip_reason TEXT NOT NULL, PRIMARY KEY (domain, metric)) WITHOUT ROWID;
CREATE TABLE audit_event (
  seq INTEGER PRIMARY KEY, time_ms INTEGER NOT NULL, lever TEXT NOT NULL, action TEXT NOT NULL,
  subject TEXT NOT NULL, amount INTEGER, ok INTEGER NOT NULL, reason TEXT NOT NULL,
  actor TEXT NOT NULL, correlation_id TEXT NOT NULL, reservation_id TEXT NOT NULL,
  metadata TEXT NOT NULL, hash TEXT NOT NULL);
CREATE INDEX audit_event_subject ON audit_event (lever, subject, seq);
${noUpdateAtAll}
CREATE TRIGGER audit_event_no_delete BEFORE DELETE ON audit_event
  BEGIN SELECT RAISE(ABORT, 'audit events are immutable'); END;
${seedRows}
`,
    down: `
DROP TABLE audit_event; DROP TABLE tripwire_state; DROP TABLE kpi_event;
DROP TABLE regression_policy; DROP TABLE heimdall_recommendation; DROP TABLE heimdall_scorecard;
DROP TABLE heimdall_policy; DROP TABLE risk_reservation; DROP TABLE risk_open;
DROP TABLE risk_ledger; DROP TABLE risk_policy; DROP TABLE golive_state; DROP TABLE meta;
`,
  },
  {
    version: 2,
    name: "idempotency keys (correlation_id) with the first answer",
    up: `${idempotencyByKey}
CREATE INDEX idempotency_age ON idempotency (created_ms);
`,
    down: `DROP TABLE idempotency;`,
  },
  {
    version: 3,
    name: "sequential tripwires (CUSUM, dry run) and Wilson-bound Heimdall gates",
    up: `
ALTER TABLE regression_policy ADD COLUMN method TEXT NOT NULL DEFAULT 'RELATIVE_DROP';
ALTER TABLE regression_policy ADD COLUMN false_alarm_events REAL NOT NULL DEFAULT 1000000;
ALTER TABLE regression_policy ADD COLUMN baseline_rate REAL NOT NULL DEFAULT 0;
ALTER TABLE regression_policy ADD COLUMN dry_run INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tripwire_state ADD COLUMN armed_after_kpi INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tripwire_state ADD COLUMN frozen_baseline REAL;
ALTER TABLE tripwire_state ADD COLUMN cusum INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tripwire_state ADD COLUMN cusum_design TEXT;
ALTER TABLE tripwire_state ADD COLUMN dry_run_tripped INTEGER NOT NULL DEFAULT 0;
ALTER TABLE heimdall_policy ADD COLUMN success_rate_bound TEXT NOT NULL DEFAULT 'RAW';
ALTER TABLE heimdall_policy ADD COLUMN bound_confidence REAL NOT NULL DEFAULT 0.95;
`,
    down: `
ALTER TABLE heimdall_policy DROP COLUMN bound_confidence;
ALTER TABLE heimdall_policy DROP COLUMN success_rate_bound;
ALTER TABLE tripwire_state DROP COLUMN dry_run_tripped;
ALTER TABLE tripwire_state DROP COLUMN cusum_design;
ALTER TABLE tripwire_state DROP COLUMN cusum;
ALTER TABLE tripwire_state DROP COLUMN frozen_baseline;
ALTER TABLE tripwire_state DROP COLUMN armed_after_kpi;
ALTER TABLE regression_policy DROP COLUMN dry_run;
ALTER TABLE regression_policy DROP COLUMN baseline_rate;
ALTER TABLE regression_policy DROP COLUMN false_alarm_events;
ALTER TABLE regression_policy DROP COLUMN method;
`,
  },
  {
    version: 4,
    name: "KPI series index covers the outcome (tripwires read windows from the index alone)",
    up: `
DROP INDEX kpi_event_series;
CREATE INDEX kpi_event_series ON kpi_event (domain, metric, id, success);
`,
    down: `
DROP INDEX kpi_event_series;
CREATE INDEX kpi_event_series ON kpi_event (domain, metric, id);
`,
  },
  {
    version: 5,
    name: "idempotency keys in arrival order, looked up by a unique key (one page less per decision)",
    // The rows (with their answers) append in id order, which is arrival order, so pruning by
    // age walks ids and needs no age index; lookups use the small (method, correlation_id) index.
    up: `
ALTER TABLE idempotency RENAME TO idempotency_by_key;
CREATE TABLE idempotency (
  id INTEGER PRIMARY KEY, method TEXT NOT NULL, correlation_id TEXT NOT NULL,
  request_hash BLOB NOT NULL, response BLOB NOT NULL, created_ms INTEGER NOT NULL);
INSERT INTO idempotency (method, correlation_id, request_hash, response, created_ms)
  SELECT method, correlation_id, request_hash, response, created_ms FROM idempotency_by_key
  ORDER BY created_ms;
DROP TABLE idempotency_by_key;
CREATE UNIQUE INDEX idempotency_key ON idempotency (method, correlation_id);
`,
    down: `
ALTER TABLE idempotency RENAME TO idempotency_by_arrival;${idempotencyByKey}
INSERT INTO idempotency SELECT method, correlation_id, request_hash, response, created_ms
  FROM idempotency_by_arrival;
DROP TABLE idempotency_by_arrival;
CREATE INDEX idempotency_age ON idempotency (created_ms);
`,
  },
  {
    version: 6,
    name: "idempotency keys scoped by service and method (UpsertPolicy of two levers no longer collide)",
    // Keys were scoped by the bare method name. Every method name but UpsertPolicy belongs to
    // one service; an UpsertPolicy key takes its service from the audit event it recorded under
    // the same correlation_id (a key without one cannot be placed and is dropped: it would only
    // have refused a new upsert as ALREADY_EXISTS). Down drops the service again, keeping one
    // key where two services used the same id.
    up: `
DELETE FROM idempotency WHERE method = 'UpsertPolicy' AND NOT EXISTS (
  SELECT 1 FROM audit_event a
  WHERE a.correlation_id = idempotency.correlation_id AND a.action = 'POLICY_UPSERT');
UPDATE idempotency SET method = 'governance.v1.' || CASE method
    WHEN 'Enable' THEN 'GoLiveService' WHEN 'Disable' THEN 'GoLiveService'
    WHEN 'EngageKillSwitch' THEN 'GoLiveService' WHEN 'ReleaseKillSwitch' THEN 'GoLiveService'
    WHEN 'Reserve' THEN 'RiskService' WHEN 'Settle' THEN 'RiskService'
    WHEN 'Release' THEN 'RiskService'
    WHEN 'RecordSandboxTrial' THEN 'HeimdallService' WHEN 'Recommend' THEN 'HeimdallService'
    WHEN 'RequireProdEligible' THEN 'HeimdallService'
    WHEN 'RecordKpi' THEN 'RegressionService' WHEN 'ResetTripwire' THEN 'RegressionService'
    WHEN 'Evaluate' THEN 'RegressionService'
    ELSE (SELECT CASE a.lever WHEN 'risk' THEN 'RiskService' WHEN 'heimdall' THEN 'HeimdallService'
            WHEN 'regression' THEN 'RegressionService' END
          FROM audit_event a
          WHERE a.correlation_id = idempotency.correlation_id AND a.action = 'POLICY_UPSERT'
          ORDER BY a.seq LIMIT 1)
  END || '/' || method
WHERE method NOT LIKE '%/%';
`,
    down: `
UPDATE OR IGNORE idempotency SET method = substr(method, instr(method, '/') + 1)
WHERE method LIKE '%/%';
DELETE FROM idempotency WHERE method LIKE '%/%';
`,
  },
  {
    version: 7,
    name: "a connected sidecar's applied central revision and its trip reports to central",
    // central_sync: the revision of central's policy this store holds, that revision's digest,
    // and when central was last heard from (staleness survives a restart). central_trip_report:
    // trips acted on here that central must record; kept until a revision central sent says so.
    up: `
CREATE TABLE central_sync (
  id INTEGER PRIMARY KEY CHECK (id = 1), revision INTEGER NOT NULL, digest TEXT NOT NULL,
  applied_ms INTEGER NOT NULL, heard_ms INTEGER NOT NULL);
CREATE TABLE central_trip_report (
  id TEXT PRIMARY KEY, domain TEXT NOT NULL, metric TEXT NOT NULL, action TEXT NOT NULL,
  reason TEXT NOT NULL, tripped_ms INTEGER NOT NULL, recorded_revision INTEGER) WITHOUT ROWID;
`,
    down: `DROP TABLE central_trip_report; DROP TABLE central_sync;`,
  },
  {
    version: 8,
    name: "one row per decision: risk ledgers, open risk and reservations derived from the audit trail",
    // From here a Reserve, Settle or Release writes only its audit event; the risk tables are a
    // snapshot folded from the trail up to meta.risk_folded_seq (see risk-fold.ts). Up: the
    // tables hold every event so far, so they are that snapshot at the newest event. Down: fold
    // the events after it, so an older govd finds tables that hold every event.
    up: `
ALTER TABLE audit_event ADD COLUMN expires_ms INTEGER;
ALTER TABLE audit_event ADD COLUMN denial_counted INTEGER;
INSERT INTO meta VALUES ('risk_folded_seq', coalesce((SELECT max(seq) FROM audit_event), 0));
INSERT INTO meta VALUES ('risk_fold_to', 0);
`,
    down: `${FOLD_TO_HEAD_SQL}
${RISK_FOLD_SQL}
DELETE FROM meta WHERE key IN ('risk_folded_seq', 'risk_fold_to');
ALTER TABLE audit_event DROP COLUMN denial_counted;
ALTER TABLE audit_event DROP COLUMN expires_ms;
`,
  },
  {
    version: 9,
    name: "a connected sidecar's shipped events: the newest audit event central acked",
    // meta.shipped_seq: every audit event up to it is held by central (as central last said).
    // Only acked events are ever pruned (version 10, --retain-shipped; default keep).
    up: `INSERT INTO meta VALUES ('shipped_seq', 0);`,
    down: `DELETE FROM meta WHERE key = 'shipped_seq';`,
  },
  {
    version: 10,
    name: "the audit trail's horizon: the newest event pruned after central acked it",
    // A connected sidecar with --retain-shipped prunes events central acked; the chain then
    // starts after the horizon row (seq 0 and no hash: nothing pruned). Going down leaves a
    // pruned trail that an older govd reports as removed events, which it is.
    // Events stay immutable: only those at or below the horizon may be deleted, and the horizon
    // is moved first, to the hash of the newest one deleted.
    up: `CREATE TABLE audit_horizon (
  id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT NULL, hash TEXT NOT NULL,
  pruned_ms INTEGER NOT NULL);
INSERT INTO audit_horizon VALUES (1, 0, '', 0);
CREATE TRIGGER audit_horizon_forward BEFORE UPDATE ON audit_horizon
  WHEN NEW.seq < OLD.seq OR NEW.seq >= (SELECT value FROM meta WHERE key = 'shipped_seq')
  BEGIN SELECT RAISE(ABORT, 'the audit horizon only moves forward, below the newest event central acked'); END;
DROP TRIGGER audit_event_no_delete;
CREATE TRIGGER audit_event_no_delete BEFORE DELETE ON audit_event
  WHEN OLD.seq > (SELECT seq FROM audit_horizon WHERE id = 1)
  BEGIN SELECT RAISE(ABORT, 'audit events are immutable'); END;`,
    down: `DROP TRIGGER audit_event_no_delete;
CREATE TRIGGER audit_event_no_delete BEFORE DELETE ON audit_event
  BEGIN SELECT RAISE(ABORT, 'audit events are immutable'); END;
DROP TABLE audit_horizon;`,
  },
  {
    version: 11,
    name: "idempotency keys on the call's own audit event (no row of their own for most calls)",
    // A call that appended an audit event under its correlation_id keeps its key there: its
    // scope (service/method), request hash and encoded answer, beside the chain (not hashed,
    // not shipped). Every column of the chain stays immutable; an answer is set once and may
    // only be forgotten (scope and answer NULL, request_hash X'': never set again). The sweep
    // forgets answers older than the retention, events after meta.answers_cleared_seq first.
    // Up leaves the keys in the table (looked up there too); down moves every key back into it.
    up: `
ALTER TABLE audit_event ADD COLUMN call_scope TEXT;
ALTER TABLE audit_event ADD COLUMN request_hash BLOB;
ALTER TABLE audit_event ADD COLUMN answer BLOB;
CREATE UNIQUE INDEX audit_event_answer ON audit_event (correlation_id, call_scope)
  WHERE call_scope IS NOT NULL;
DROP TRIGGER audit_event_no_update;
CREATE TRIGGER audit_event_no_update BEFORE UPDATE OF seq, time_ms, lever, action, subject,
  amount, ok, reason, actor, correlation_id, reservation_id, metadata, hash, expires_ms,
  denial_counted ON audit_event
  BEGIN SELECT RAISE(ABORT, 'audit events are immutable'); END;
CREATE TRIGGER audit_event_answer_once BEFORE UPDATE OF call_scope, request_hash, answer
  ON audit_event
  WHEN CASE WHEN OLD.request_hash IS NULL
    THEN NEW.call_scope IS NULL OR NEW.request_hash IS NULL OR NEW.answer IS NULL
    ELSE NOT (NEW.call_scope IS NULL AND NEW.answer IS NULL AND NEW.request_hash = X'') END
  BEGIN SELECT RAISE(ABORT, 'an answer on an audit event is set once, whole, and may only be forgotten'); END;
INSERT INTO meta VALUES ('answers_cleared_seq', coalesce((SELECT max(seq) FROM audit_event), 0));
`,
    down: `
INSERT OR IGNORE INTO idempotency (method, correlation_id, request_hash, response, created_ms)
  SELECT call_scope, correlation_id, request_hash, answer, time_ms FROM audit_event
  WHERE call_scope IS NOT NULL ORDER BY seq;
DELETE FROM meta WHERE key = 'answers_cleared_seq';
DROP TRIGGER audit_event_answer_once;
DROP TRIGGER audit_event_no_update;
${noUpdateAtAll}
DROP INDEX audit_event_answer;
ALTER TABLE audit_event DROP COLUMN answer;
ALTER TABLE audit_event DROP COLUMN request_hash;
ALTER TABLE audit_event DROP COLUMN call_scope;
`,
  },
  {
    version: 12,
    name: "one row per decision: KPI outcomes, event counts, CUSUM charts and sandbox scorecards derived from the audit trail",
    // From here a RecordKpi writes only its audit event; kpi_event and tripwire_state's counts
    // and charts are a snapshot folded from the trail up to meta.kpi_folded_seq (see
    // kpi-fold.ts). Up: the tables hold every outcome so far, so they are that snapshot at the
    // newest event, and new outcomes take ids after the newest one. Down: fold the events after
    // it, so an older govd finds tables that hold every outcome. The same for sandbox trials and
    // heimdall_scorecard after meta.scorecard_folded_seq (folded by ScorecardBook; down sums
    // the trials in SQL, which may round a confidence sum differently in its last bits).
    up: `
INSERT INTO meta VALUES ('kpi_folded_seq', coalesce((SELECT max(seq) FROM audit_event), 0));
INSERT INTO meta VALUES ('kpi_fold_to', 0);
INSERT INTO meta VALUES ('kpi_id_base', coalesce((SELECT max(id) FROM kpi_event), 0));
INSERT INTO meta VALUES ('scorecard_folded_seq', coalesce((SELECT max(seq) FROM audit_event), 0));
`,
    down: `${KPI_FOLD_TO_HEAD_SQL}
${KPI_FOLD_SQL}
${SCORECARD_FOLD_DOWN_SQL}
DELETE FROM meta WHERE key IN ('kpi_folded_seq', 'kpi_fold_to', 'kpi_id_base', 'scorecard_folded_seq');
`,
  },
  {
    version: 13,
    name: "the sidecar id a connected store ships its trail as",
    // A connected sidecar's trail is central's (sidecar_id, seq): the same store shipping under
    // a second id would count every event twice in the fleet. The first connected start records
    // its id; later starts keep it (see src/sync/follower/trail-owner.ts).
    up: `CREATE TABLE sidecar_identity (
  id INTEGER PRIMARY KEY CHECK (id = 1), sidecar_id TEXT NOT NULL, claimed_ms INTEGER NOT NULL);`,
    down: `DROP TABLE sidecar_identity;`,
  },
  {
    version: 14,
    name: "one appended row per decision: answer keys indexed by the fold, no subject index",
    // A decision's commit writes its audit event and nothing else. Its key stays on the event
    // (call_scope, request_hash, answer); the fold indexes it in audit_answer_key every second,
    // and memory holds the keys after meta.answer_keys_folded_seq (see idempotency-keys.ts).
    // The (lever, subject, seq) index goes: readers scan a range of seq, except for the levers
    // that write events only on operator actions and trips (golive, regression, sync), found
    // through a partial index no decision writes (see readAuditEvents). Down indexes
    // the keys not folded yet, forgets any answer another event under its key replaced (the
    // unique index holds one), and puts both indexes back.
    up: `
DROP INDEX audit_event_subject;
DROP INDEX audit_event_answer;
CREATE TABLE audit_answer_key (
  correlation_id TEXT NOT NULL, call_scope TEXT NOT NULL, seq INTEGER NOT NULL,
  PRIMARY KEY (correlation_id, call_scope)) WITHOUT ROWID;
INSERT INTO audit_answer_key SELECT correlation_id, call_scope, seq FROM audit_event
  WHERE call_scope IS NOT NULL ORDER BY seq;
INSERT INTO meta VALUES ('answer_keys_folded_seq', coalesce((SELECT max(seq) FROM audit_event), 0));
CREATE INDEX audit_event_occasional ON audit_event (lever, seq)
  WHERE lever NOT IN ('risk', 'kpi', 'heimdall');
`,
    down: `
DROP INDEX audit_event_occasional;
INSERT OR REPLACE INTO audit_answer_key SELECT correlation_id, call_scope, seq FROM audit_event
  WHERE seq > (SELECT value FROM meta WHERE key = 'answer_keys_folded_seq')
  AND call_scope IS NOT NULL ORDER BY seq;
UPDATE audit_event SET call_scope = NULL, request_hash = X'', answer = NULL
  WHERE call_scope IS NOT NULL AND NOT EXISTS (SELECT 1 FROM audit_answer_key k
    WHERE k.correlation_id = audit_event.correlation_id AND k.call_scope = audit_event.call_scope
    AND k.seq = audit_event.seq);
DELETE FROM meta WHERE key = 'answer_keys_folded_seq';
DROP TABLE audit_answer_key;
CREATE UNIQUE INDEX audit_event_answer ON audit_event (correlation_id, call_scope)
  WHERE call_scope IS NOT NULL;
CREATE INDEX audit_event_subject ON audit_event (lever, subject, seq);
`,
  },
];

/** The schema version this build knows. */
export const LATEST_VERSION = migrations[migrations.length - 1]?.version ?? 0;
