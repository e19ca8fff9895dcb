/**
 * Reading the shipped trails central keeps (`central_event`) back as audit rows, exactly as the
 * sidecar's store holds them (integers and money read as text, so nothing is rounded on either
 * engine), one keyset page at a time: a trail of millions of events is never loaded at once.
 */
import { type Kysely, sql } from "kysely";
import type { AuditRow } from "../../store/audit-log.js";
import type { CentralTables } from "./central-schema.js";

/** A shipped event as central holds it: the sidecar's audit row and the sidecar it came from. */
export interface CentralTrailRow extends AuditRow {
  sidecar_id: string;
}

/** Which shipped events to read: one page, in (sidecar_id, seq) order. */
export interface TrailQuery {
  /** Only this sidecar's events; empty for every sidecar. */
  sidecarId: string;
  /**
   * Start after this position: a sidecar ("" before the first) and a seq within it; with
   * `sidecarId` set, only `after.seq` counts.
   */
  after: { sidecarId: string; seq: number };
  /** Only events of this lever and these actions (empty: all). */
  lever?: string;
  actions?: readonly string[];
  /** Only subjects equal to this or starting with `this/`; empty for all. */
  subject?: string;
  limit: number;
}

interface TextRow {
  sidecar_id: string;
  seq: string;
  time_ms: string;
  lever: string;
  action: string;
  subject: string;
  amount: string | null;
  ok: number | string;
  reason: string;
  actor: string;
  correlation_id: string;
  reservation_id: string;
  metadata: string;
  hash: string;
}

/** One page of shipped events after `q.after`, in (sidecar_id, seq) order. */
export async function readTrail(
  db: Kysely<CentralTables>,
  q: TrailQuery,
): Promise<CentralTrailRow[]> {
  const where = [
    q.sidecarId === ""
      ? sql`(e.sidecar_id > ${q.after.sidecarId} OR (e.sidecar_id = ${q.after.sidecarId} AND e.seq > ${q.after.seq}))`
      : sql`e.sidecar_id = ${q.sidecarId} AND e.seq > ${q.after.seq}`,
  ];
  if (q.lever !== undefined) where.push(sql`e.lever = ${q.lever}`);
  if (q.actions && q.actions.length > 0) {
    where.push(sql`e.action IN (${sql.join(q.actions.map((a) => sql`${a}`))})`);
  }
  if (q.subject) {
    // A prefix compared as text: LIKE would fold case on SQLite only, and read `_` as a wildcard.
    const prefix = `${q.subject}/`;
    where.push(
      sql`(e.subject = ${q.subject} OR substr(e.subject, 1, ${prefix.length}) = ${prefix})`,
    );
  }
  // Qualified names: the text aliases must not be what WHERE and ORDER BY compare.
  const { rows } = await sql<TextRow>`SELECT e.sidecar_id, CAST(e.seq AS TEXT) AS seq,
      CAST(e.time_ms AS TEXT) AS time_ms, e.lever, e.action, e.subject,
      CAST(e.amount AS TEXT) AS amount, e.ok, e.reason, e.actor, e.correlation_id,
      e.reservation_id, e.metadata, e.hash
    FROM central_event e WHERE ${sql.join(where, sql` AND `)}
    ORDER BY e.sidecar_id, e.seq LIMIT ${q.limit}`.execute(db);
  return rows.map((r) => ({
    ...r,
    seq: Number(r.seq),
    time_ms: Number(r.time_ms),
    amount: r.amount === null ? null : BigInt(r.amount),
    ok: Number(r.ok),
  }));
}

/** A sidecar central holds events or an anchor of, with that anchor. */
export interface TrailAnchor {
  sidecarId: string;
  /** The newest event central acked of it (every one before it too), and its hash. */
  shippedSeq: number;
  shippedHash: string;
}

/** The anchor central keeps of one sidecar now (none: seq 0). */
export async function trailAnchor(
  db: Kysely<CentralTables>,
  sidecarId: string,
): Promise<TrailAnchor> {
  const r = await db
    .selectFrom("central_sidecar")
    .select(["shipped_seq", "shipped_hash"])
    .where("sidecar_id", "=", sidecarId)
    .executeTakeFirst();
  return { sidecarId, shippedSeq: Number(r?.shipped_seq ?? 0), shippedHash: r?.shipped_hash ?? "" };
}

/** Every sidecar with a row in the fleet view or events in the trail, by id. */
export async function trailAnchors(db: Kysely<CentralTables>): Promise<TrailAnchor[]> {
  const rows = await db
    .selectFrom("central_sidecar")
    .select(["sidecar_id", "shipped_seq", "shipped_hash"])
    .execute();
  const anchors = new Map<string, TrailAnchor>(
    rows.map((r) => [
      r.sidecar_id,
      { sidecarId: r.sidecar_id, shippedSeq: Number(r.shipped_seq), shippedHash: r.shipped_hash },
    ]),
  );
  // Events of a sidecar whose fleet row is gone are still walked (against no anchor).
  const shipped = await db.selectFrom("central_event").select("sidecar_id").distinct().execute();
  for (const { sidecar_id } of shipped) {
    if (!anchors.has(sidecar_id)) {
      anchors.set(sidecar_id, { sidecarId: sidecar_id, shippedSeq: 0, shippedHash: "" });
    }
  }
  return [...anchors.values()].sort((a, b) => (a.sidecarId < b.sidecarId ? -1 : 1));
}
