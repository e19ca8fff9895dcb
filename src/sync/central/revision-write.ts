/**
 * One write transaction on central's store: it locks the head of the revision log, appends
 * changes (each the next revision, with its digest) and upserts the entities they carry.
 */
import { sql, type Transaction } from "kysely";
import type { Clock } from "../../clock.js";
import { revisionDigest } from "../revision-digest.js";
import type { CentralTables } from "./central-schema.js";

/** The PostgreSQL channel that carries each committed revision to every replica. */
export const REVISION_CHANNEL = "govd_central_revision";

/** Who made a change and why, for the change log. */
export interface ChangeAuthor {
  actor: string;
  reason: string;
  correlationId: string;
}

/** A transaction of central's store; see CentralStore.write. */
export class RevisionWrite {
  private head: { revision: number; digest: string } | undefined;
  private appended = 0;

  constructor(
    /** The transaction, for reads and fleet writes that are not changes. */
    readonly trx: Transaction<CentralTables>,
    private readonly engine: "sqlite" | "postgres",
    private readonly clock: Clock,
  ) {}

  /**
   * Locks the head of the revision log until commit (a row lock on PostgreSQL; SQLite has one
   * writer) and returns it. Writes that must not interleave (an idempotency key looked up, then
   * saved) call this first; `append` calls it too.
   */
  async lock(): Promise<{ revision: number; digest: string }> {
    if (this.head) return this.head;
    const row = await this.trx
      .updateTable("central_meta")
      .set({ id: 1 })
      .where("id", "=", 1)
      .returning(["revision", "digest"])
      .executeTakeFirstOrThrow();
    this.head = { revision: Number(row.revision), digest: row.digest };
    return this.head;
  }

  /** The current entity of (kind, key) as this transaction sees it. */
  async entity(kind: string, key: string): Promise<Uint8Array | undefined> {
    const row = await this.trx
      .selectFrom("central_entity")
      .select("entity")
      .where("kind", "=", kind)
      .where("entity_key", "=", key)
      .executeTakeFirst();
    return row?.entity;
  }

  /** Every current entity of a kind, in key order. */
  async entities(kind: string): Promise<Uint8Array[]> {
    const rows = await this.trx
      .selectFrom("central_entity")
      .select("entity")
      .where("kind", "=", kind)
      .orderBy("entity_key")
      .execute();
    return rows.map((r) => r.entity);
  }

  /**
   * Appends a change as the next revision: `entityOf` gets the revision and commit time (the
   * go-live state carries its revision) and returns the entity's protobuf bytes. Returns the
   * revision.
   */
  async append(
    kind: string,
    key: string,
    entityOf: (revision: number, committedMs: number) => Uint8Array,
    author: ChangeAuthor,
  ): Promise<number> {
    const head = await this.lock();
    const revision = head.revision + 1;
    const committedMs = this.clock.now();
    const entity = entityOf(revision, committedMs);
    const digest = revisionDigest(head.digest, entity);
    await this.trx
      .insertInto("central_change")
      .values({
        revision,
        kind,
        entity_key: key,
        entity,
        digest,
        committed_ms: committedMs,
        actor: author.actor,
        reason: author.reason,
        correlation_id: author.correlationId,
      })
      .execute();
    await this.trx
      .insertInto("central_entity")
      .values({ kind, entity_key: key, entity, revision })
      .onConflict((oc) => oc.columns(["kind", "entity_key"]).doUpdateSet({ entity, revision }))
      .execute();
    this.head = { revision, digest };
    this.appended = committedMs;
    return revision;
  }

  /** The revision written so far by this transaction's changes, or 0 when none. */
  get revision(): number {
    return this.appended > 0 && this.head ? this.head.revision : 0;
  }

  /**
   * Moves the head to the last change appended and, on PostgreSQL, queues the NOTIFY that
   * tells every replica at commit. Returns the last revision appended, 0 when none.
   */
  async finish(): Promise<number> {
    if (this.appended === 0 || !this.head) return 0;
    await this.trx
      .updateTable("central_meta")
      .set({ revision: this.head.revision, digest: this.head.digest, committed_ms: this.appended })
      .where("id", "=", 1)
      .execute();
    if (this.engine === "postgres") {
      await sql`SELECT pg_notify(${REVISION_CHANNEL}, ${String(this.head.revision)})`.execute(
        this.trx,
      );
    }
    return this.head.revision;
  }
}
