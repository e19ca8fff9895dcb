/**
 * The fleet as central's store records it: one row per sidecar (engines, applied revision,
 * last NACK, which replica holds its Watch stream, when it was last heard) and its acks.
 * Rows are shared by every replica; a replica that dies leaves its rows `connected`, so the
 * view counts a sidecar as connected only while it was heard within three heartbeats.
 */
import { type Kysely, type Selectable, sql } from "kysely";
import type { CentralTables, SidecarTable } from "./central-schema.js";
import type { CentralEngine } from "./central-store.js";
import { commitWithoutFsync } from "./commit-without-fsync.js";

/** Acks kept per sidecar (for WaitForAcks): the newest this many revisions. */
const ACKS_KEPT = 1_000;

/**
 * How long the first ack of a batch waits for others. On SQLite a batch is written before the
 * next ack is read, so without it every ack of a change took a transaction of its own (and woke
 * every WaitForAcks to read the fleet again): 50 per change for 50 sidecars, ~20-30% of
 * central's CPU while the change was still travelling. An ack's time is when it arrived, so
 * the wait shows in no ack time; `--wait` answers at most this much later.
 */
export const ACK_GATHER_MS = 5;

/** Within this long of its last written ack, a sidecar acking again is catching up. */
export const CATCHING_UP_MS = 100;

/**
 * How long a batch that `sidecarId`'s ack starts waits for others: none when that sidecar was
 * in the batch written last, CATCHING_UP_MS or less ago. A sidecar catching up on many changes
 * acks them one after another on its AckStream, each after the one before is written, so
 * gathering would hold every one of them.
 */
export function ackGatherMs(
  sidecarId: string,
  last: { sidecarIds: ReadonlySet<string>; atMs: number },
  nowMs: number,
): number {
  const catchingUp = last.sidecarIds.has(sidecarId) && nowMs - last.atMs <= CATCHING_UP_MS;
  return catchingUp ? 0 : ACK_GATHER_MS;
}

/** Sidecars moved forward per UPDATE statement (4 parameters each). */
const UPDATE_CHUNK = 250;

/**
 * Moves each sidecar's applied revision forward to its ack, in one statement for all of them
 * (SQLite and PostgreSQL both run UPDATE ... FROM a VALUES list). A row that another replica
 * moved further meanwhile keeps the newer revision.
 */
async function advanceApplied(trx: Kysely<CentralTables>, acks: readonly PendingAck[]) {
  const values = sql.join(
    acks.map(
      (a) =>
        sql`(${a.sidecarId}, CAST(${a.revision} AS BIGINT), ${a.digest}, CAST(${a.nowMs} AS BIGINT))`,
    ),
  );
  await sql`WITH ack (sidecar_id, revision, digest, now_ms) AS (VALUES ${values})
    UPDATE central_sidecar
    SET applied_revision = ack.revision, applied_digest = ack.digest, last_heard_ms = ack.now_ms
    FROM ack
    WHERE central_sidecar.sidecar_id = ack.sidecar_id
      AND central_sidecar.applied_revision < ack.revision`.execute(trx);
}

/** One sidecar's row, typed. */
export interface SidecarRow {
  sidecarId: string;
  engines: string[];
  appliedRevision: number;
  appliedDigest: string;
  lastNackRevision: number;
  lastNackError: string;
  replica: string;
  connected: boolean;
  lastHeardMs: number;
  lastResync: string;
  /** Event shipping: the newest event central holds, its hash, and what the sidecar reported. */
  shippedSeq: number;
  shippedHash: string;
  headSeq: number;
  headHash: string;
  outboxEvents: number;
  outboxOldestMs: number;
  shipConflict: string;
  lastShippedMs: number;
}

function rowOf(r: Selectable<SidecarTable>): SidecarRow {
  let engines: string[] = [];
  try {
    engines = JSON.parse(r.engines) as string[];
  } catch {
    // written by this code only; an unreadable value shows as no engines
  }
  return {
    sidecarId: r.sidecar_id,
    engines,
    appliedRevision: Number(r.applied_revision),
    appliedDigest: r.applied_digest,
    lastNackRevision: Number(r.last_nack_revision),
    lastNackError: r.last_nack_error,
    replica: r.replica,
    connected: Number(r.connected) === 1,
    lastHeardMs: Number(r.last_heard_ms),
    lastResync: r.last_resync,
    shippedSeq: Number(r.shipped_seq),
    shippedHash: r.shipped_hash,
    headSeq: Number(r.head_seq),
    headHash: r.head_hash,
    outboxEvents: Number(r.outbox_events),
    outboxOldestMs: Number(r.outbox_oldest_ms),
    shipConflict: r.ship_conflict,
    lastShippedMs: Number(r.last_shipped_ms),
  };
}

/** What became of an ACK: recorded, or not (no row for that sidecar, or a newer revision acked). */
export type AckOutcome =
  | { kind: "recorded" }
  | { kind: "unknown" }
  | { kind: "already"; applied: number };

/** An ACK waiting for the next batch. */
interface PendingAck {
  sidecarId: string;
  revision: number;
  digest: string;
  nowMs: number;
  resolve: (outcome: AckOutcome) => void;
  reject: (err: unknown) => void;
}

/** Reads and writes of the fleet rows. */
export class Fleet {
  private pendingAcks: PendingAck[] = [];
  private flushing: Promise<void> | undefined;
  private gathering: NodeJS.Timeout | undefined;
  /** The sidecars of the batch written last, and when (monotonic ms; see `ackGatherMs`). */
  private lastBatch: { sidecarIds: ReadonlySet<string>; atMs: number } = {
    sidecarIds: new Set(),
    atMs: 0,
  };

  /** Told after each batch of acks this replica wrote (WaitForAcks wakes on it). */
  private readonly ackListeners = new Set<() => void>();

  constructor(
    private readonly db: Kysely<CentralTables>,
    /** The engine, for how an ack batch commits (see `writeAcks`). */
    private readonly engine: CentralEngine = "sqlite",
  ) {}

  /**
   * Resolves after the next batch of acks this replica writes, or after `ms` (acks written by
   * another replica are seen by reading again then).
   */
  nextAcks(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.ackListeners.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.ackListeners.add(done);
    });
  }

  /** One sidecar's row, if central has heard from it. */
  async get(
    sidecarId: string,
    db: Kysely<CentralTables> = this.db,
  ): Promise<SidecarRow | undefined> {
    const r = await db
      .selectFrom("central_sidecar")
      .selectAll()
      .where("sidecar_id", "=", sidecarId)
      .executeTakeFirst();
    return r ? rowOf(r) : undefined;
  }

  /** The applied revision of each of `sidecarIds` that central has a row of. */
  async appliedRevisions(sidecarIds: readonly string[]): Promise<Map<string, number>> {
    if (sidecarIds.length === 0) return new Map();
    const rows = await this.db
      .selectFrom("central_sidecar")
      .select(["sidecar_id", "applied_revision"])
      .where("sidecar_id", "in", [...sidecarIds])
      .execute();
    return new Map(rows.map((r) => [r.sidecar_id, Number(r.applied_revision)]));
  }

  /** Every sidecar, by id. */
  async list(): Promise<SidecarRow[]> {
    const rows = await this.db
      .selectFrom("central_sidecar")
      .selectAll()
      .orderBy("sidecar_id")
      .execute();
    return rows.map(rowOf);
  }

  /**
   * A Watch stream opened on `replica`: records the engines and, when the sidecar's applied
   * revision is part of central's history, that revision; `resync` says why it gets a snapshot
   * instead when its revision is not (then its applied revision is unknown until it acks).
   */
  async opened(
    sidecarId: string,
    engines: readonly string[],
    applied: { revision: number; digest: string } | undefined,
    replica: string,
    nowMs: number,
    resync: string | undefined,
  ): Promise<void> {
    const values = {
      engines: JSON.stringify(engines),
      replica,
      connected: 1,
      last_heard_ms: nowMs,
      ...(applied ? { applied_revision: applied.revision, applied_digest: applied.digest } : {}),
      ...(resync !== undefined
        ? { last_resync: resync, applied_revision: 0, applied_digest: "" }
        : {}),
    };
    await this.db
      .insertInto("central_sidecar")
      .values({
        sidecar_id: sidecarId,
        applied_revision: 0,
        applied_digest: "",
        last_nack_revision: 0,
        last_nack_error: "",
        last_resync: "",
        ...values,
      })
      .onConflict((oc) => oc.column("sidecar_id").doUpdateSet(values))
      .execute();
  }

  /**
   * The streams of these sidecars on `replica` are alive (heartbeats went out): they are heard
   * now. One statement per replica and heartbeat, however many sidecars it holds.
   */
  async heard(sidecarIds: readonly string[], replica: string, nowMs: number): Promise<void> {
    if (sidecarIds.length === 0) return;
    await this.withoutFsync((trx) =>
      trx
        .updateTable("central_sidecar")
        .set({ last_heard_ms: nowMs, connected: 1, replica })
        .where("sidecar_id", "in", sidecarIds)
        .execute(),
    );
  }

  /** Forgets idempotency keys of admin writes older than `beforeMs`; returns how many. */
  async pruneKeys(beforeMs: number): Promise<number> {
    const r = await this.db
      .deleteFrom("central_idempotency")
      .where("created_ms", "<", beforeMs)
      .executeTakeFirst();
    return Number(r.numDeletedRows);
  }

  /** The last stream of this sidecar on `replica` closed (unless another replica holds one now). */
  async closed(sidecarId: string, replica: string, nowMs: number): Promise<void> {
    await this.db
      .updateTable("central_sidecar")
      .set({ connected: 0, replica: "", last_heard_ms: nowMs })
      .where("sidecar_id", "=", sidecarId)
      .where("replica", "=", replica)
      .execute();
  }

  /**
   * Records an ACK of `revision`; resolves once it is committed, with `unknown` when central has
   * no row for the sidecar and `already` when it acked that revision or a newer one (then nothing
   * changes). Acks arriving within ACK_GATHER_MS of the first, or while a batch is being
   * written, go together in one transaction: a change acked by a whole fleet costs a few
   * commits, not one per sidecar.
   */
  acked(sidecarId: string, revision: number, digest: string, nowMs: number): Promise<AckOutcome> {
    return new Promise((resolve, reject) => {
      this.pendingAcks.push({ sidecarId, revision, digest, nowMs, resolve, reject });
      this.gatherAcks(sidecarId);
    });
  }

  /** Writes the pending acks after `ackGatherMs`, unless a batch is on its way already. */
  private gatherAcks(sidecarId: string): void {
    if (this.flushing || this.gathering) return;
    const wait = ackGatherMs(sidecarId, this.lastBatch, performance.now());
    if (wait === 0) {
      this.flushAcks();
      return;
    }
    this.gathering = setTimeout(() => {
      this.gathering = undefined;
      this.flushAcks();
    }, wait);
  }

  /**
   * Writes the acks still gathering now and resolves once every batch is written: at shutdown,
   * after the ports have closed and before the store does (an AckStream ended by the shutdown
   * may have handed its last ack over a moment before).
   */
  async drain(): Promise<void> {
    for (;;) {
      if (this.gathering) {
        clearTimeout(this.gathering);
        this.gathering = undefined;
      }
      if (this.pendingAcks.length > 0) this.flushAcks();
      const flushing = this.flushing;
      if (!flushing) return;
      await flushing;
    }
  }

  private flushAcks(): void {
    if (this.flushing) return;
    this.flushing = (async () => {
      while (this.pendingAcks.length > 0) {
        const batch = this.pendingAcks.splice(0);
        try {
          const outcomes = await this.writeAcks(batch);
          this.lastBatch = {
            sidecarIds: new Set(batch.map((a) => a.sidecarId)),
            atMs: performance.now(),
          };
          for (const [i, a] of batch.entries()) a.resolve(outcomes[i] ?? { kind: "recorded" });
          for (const listener of [...this.ackListeners]) listener();
        } catch (err) {
          for (const a of batch) a.reject(err);
        }
      }
    })().finally(() => {
      this.flushing = undefined;
      // An ack that came after the last batch began, in the moment before this ran.
      const next = this.pendingAcks[0];
      if (next) this.gatherAcks(next.sidecarId);
    });
  }

  /** One transaction that does not wait for the disk (see `commitWithoutFsync`). */
  private withoutFsync<T>(work: (trx: Kysely<CentralTables>) => Promise<T>): Promise<T> {
    return commitWithoutFsync(this.db, this.engine, work);
  }

  /** Writes a batch of acks in one transaction (see `withoutFsync`). */
  private writeAcks(batch: readonly PendingAck[]): Promise<AckOutcome[]> {
    return this.withoutFsync((trx) => this.insertAcks(trx, batch));
  }

  /**
   * The batch's sidecar rows in one SELECT; then one UPDATE for every sidecar the batch moves
   * forward, the batch's ack rows in one INSERT and the ones past ACKS_KEPT per sidecar in one
   * DELETE. An ack is judged against the row as it was before the batch, so acks of one sidecar
   * racing in one batch (sent at once, arriving in any order) are all taken; the newest one stays.
   */
  private async insertAcks(
    trx: Kysely<CentralTables>,
    batch: readonly PendingAck[],
  ): Promise<AckOutcome[]> {
    const ids = [...new Set(batch.map((a) => a.sidecarId))];
    const before = new Map(
      (
        await trx
          .selectFrom("central_sidecar")
          .select(["sidecar_id", "applied_revision"])
          .where("sidecar_id", "in", ids)
          .execute()
      ).map((r) => [r.sidecar_id, Number(r.applied_revision)]),
    );
    const outcomes: AckOutcome[] = [];
    const recorded: PendingAck[] = [];
    /** Per sidecar, the newest ack of the batch that is news. */
    const newest = new Map<string, PendingAck>();
    for (const a of batch) {
      const applied = before.get(a.sidecarId);
      if (applied === undefined) {
        outcomes.push({ kind: "unknown" });
        continue;
      }
      if (a.revision <= applied) {
        outcomes.push({ kind: "already", applied });
        continue;
      }
      outcomes.push({ kind: "recorded" });
      recorded.push(a);
      const kept = newest.get(a.sidecarId);
      if (!kept || a.revision > kept.revision) newest.set(a.sidecarId, a);
    }
    if (recorded.length === 0) return outcomes;
    // In id order: replicas writing one batch each on PostgreSQL lock rows in the same order.
    const moves = [...newest.values()].sort((a, b) => (a.sidecarId < b.sidecarId ? -1 : 1));
    for (let i = 0; i < moves.length; i += UPDATE_CHUNK) {
      await advanceApplied(trx, moves.slice(i, i + UPDATE_CHUNK));
    }
    await trx
      .insertInto("central_ack")
      .values(
        recorded.map((a) => ({
          sidecar_id: a.sidecarId,
          revision: a.revision,
          acked_ms: a.nowMs,
        })),
      )
      .onConflict((oc) => oc.columns(["sidecar_id", "revision"]).doNothing())
      .execute();
    const oldest = Math.min(...recorded.map((a) => a.revision)) - ACKS_KEPT;
    if (oldest > 0) {
      await trx
        .deleteFrom("central_ack")
        .where("sidecar_id", "in", [...newest.keys()])
        .where("revision", "<", oldest)
        .execute();
    }
    return outcomes;
  }

  /** Records a NACK of `revision` with the sidecar's error. */
  async nacked(sidecarId: string, revision: number, error: string, nowMs: number): Promise<void> {
    await this.db
      .updateTable("central_sidecar")
      .set({ last_nack_revision: revision, last_nack_error: error, last_heard_ms: nowMs })
      .where("sidecar_id", "=", sidecarId)
      .execute();
  }

  /**
   * When each of `sidecarIds` first acked `revision` or a later one (ms since epoch). Each
   * sidecar is a range of the primary key, never a scan of every sidecar's acks.
   */
  async ackTimes(revision: number, sidecarIds: readonly string[]): Promise<Map<string, number>> {
    if (sidecarIds.length === 0) return new Map();
    const rows = await this.db
      .selectFrom("central_ack")
      .select(["sidecar_id"])
      .select((eb) => eb.fn.min("acked_ms").as("first_ms"))
      .where("sidecar_id", "in", [...sidecarIds])
      .where("revision", ">=", revision)
      .groupBy("sidecar_id")
      .execute();
    return new Map(rows.map((r) => [r.sidecar_id, Number(r.first_ms)]));
  }
}

/**
 * How far central's fleet figures lag each sidecar's own: the newest event held of it and its
 * outbox as it last reported (GetLedgerToday's and the fleet tripwires' `behind`).
 */
export async function shipmentLags(db: Kysely<CentralTables>) {
  return (await new Fleet(db).list()).map((r) => ({
    sidecarId: r.sidecarId,
    shippedSeq: BigInt(r.shippedSeq),
    outboxEvents: BigInt(r.outboxEvents),
    outboxOldestMs: BigInt(r.outboxOldestMs),
  }));
}
