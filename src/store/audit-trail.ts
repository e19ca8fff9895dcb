/**
 * Reading the audit trail back: a lever's events by range (what the List RPCs and the books'
 * start-up replays read), and the walk that verifies the whole hash chain.
 */
import {
  type AuditRow,
  CHAIN_COLUMNS,
  fromStored,
  GENESIS_HASH,
  type Lever,
  linkHash,
  type StoredRow,
} from "./audit-log.js";
import type { Db } from "./database.js";
import { trailHorizon } from "./trail-horizon.js";

/** The outcome of walking the chain. */
export interface ChainReport {
  ok: boolean;
  events: number;
  /** The hash of the newest event: record it elsewhere to detect removal of the newest events. */
  head: string;
  /** Events 1..prunedSeq were pruned after central acked them (central holds them). */
  prunedSeq: number;
  /** The first event whose link does not hold, and why. */
  firstBroken?: { seq: number; problem: string };
}

/**
 * The check of one event in a chain walk: it must be event `expectedSeq` and its hash must link
 * it to `prevHash` (the hash of the event before it, GENESIS_HASH for the first). Returns why it
 * does not, or undefined when it holds. Shared by the sidecar's walk and central's.
 */
export function chainLinkProblem(
  prevHash: string,
  expectedSeq: number,
  row: AuditRow,
): string | undefined {
  if (row.seq !== expectedSeq) return `expected event ${expectedSeq} here: events were removed`;
  const { hash, ...fields } = row;
  if (linkHash(prevHash, fields) !== hash) {
    return "its hash does not match its content: it was edited";
  }
  return undefined;
}

/**
 * Walks the whole chain (from the horizon, when events were pruned after central acked them)
 * and reports the first broken link (edited, removed or reordered).
 */
export function verifyChain(db: Db): ChainReport {
  const horizon = trailHorizon(db);
  let prev = horizon.seq > 0 ? horizon.hash : GENESIS_HASH;
  let expectedSeq = horizon.seq + 1;
  let events = 0;
  const rows = db
    .prepare<[], StoredRow>(`SELECT ${CHAIN_COLUMNS} FROM audit_event ORDER BY seq`)
    .safeIntegers(true)
    .iterate();
  for (const stored of rows) {
    const row = fromStored(stored);
    events++;
    const problem = chainLinkProblem(prev, expectedSeq, row);
    if (problem) {
      return {
        ok: false,
        events,
        head: prev,
        prunedSeq: horizon.seq,
        firstBroken: { seq: row.seq, problem },
      };
    }
    prev = row.hash;
    expectedSeq++;
  }
  return { ok: true, events, head: prev, prunedSeq: horizon.seq };
}

/** Which events to read back. */
export interface AuditQuery {
  lever: Lever;
  /** Only these actions; empty for all. */
  actions?: readonly string[];
  /** Only subjects equal to this or starting with `this/`; empty for all. */
  subject?: string;
  afterSeq: number;
  limit: number;
}

/** The levers whose events are decisions: every reader of them scans a range of seq. */
const DECISION_LEVERS: readonly Lever[] = ["risk", "kpi", "heimdall"];

/**
 * The term of the partial index `audit_event_occasional` (migration 14) over the other levers'
 * events (operator actions, trips, changes from central): a query that carries it reads a
 * lever with few events through that index instead of scanning the whole trail.
 */
const OCCASIONAL = `AND lever NOT IN (${DECISION_LEVERS.map((l) => `'${l}'`).join(", ")})`;

/** Events of one lever after `afterSeq`, oldest first. */
export function readAuditEvents(db: Db, q: AuditQuery): AuditRow[] {
  const [text, params] = auditRead(q);
  return db
    .prepare<unknown[], StoredRow>(text)
    .safeIntegers(true)
    .all(...params)
    .map(fromStored);
}

/** How SQLite reads the events of `q` (its query plan, one step a line): for tests. */
export function auditReadPlan(db: Db, q: AuditQuery): string {
  const [text, params] = auditRead(q);
  return db
    .prepare<unknown[], { detail: string }>(`EXPLAIN QUERY PLAN ${text}`)
    .all(...params)
    .map((r) => r.detail)
    .join("\n");
}

function auditRead(q: AuditQuery): [string, unknown[]] {
  const actions = q.actions ?? [];
  const actionFilter = actions.length ? `AND action IN (${actions.map(() => "?").join(", ")})` : "";
  const subject = q.subject ?? "";
  const occasional = DECISION_LEVERS.includes(q.lever) ? "" : OCCASIONAL;
  return [
    `SELECT ${CHAIN_COLUMNS} FROM audit_event WHERE lever = ? ${occasional} AND seq > ?
      ${actionFilter} AND (? = '' OR subject = ? OR subject LIKE ? || '/%') ORDER BY seq LIMIT ?`,
    [q.lever, q.afterSeq, ...actions, subject, subject, subject, q.limit],
  ];
}
