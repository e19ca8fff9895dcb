/**
 * The call's event, held for its answer. A mutating call keeps its idempotency key and answer
 * on the audit event it appended under its correlation_id (migration 11). The event is appended
 * inside the handler, before the answer exists, so the answer used to follow as an UPDATE of the
 * row just inserted: a second statement, and the row written twice, on every decision.
 *
 * Now, while the pipeline runs a handler, the newest event appended under the call's
 * correlation_id is held in memory (its sequence number and link are final) and inserted once,
 * with the answer beside it, when the answer is ready. Nothing may read the trail without seeing
 * it, so on a store opened by `openDatabase` every statement that names `audit_event` inserts the
 * held event first (see `guardTrailReads`); the two reads a decision makes itself, the chain's
 * head and a link's hash, are answered from the held event instead. If the call fails, its
 * event is dropped, as the rollback of its savepoint would have removed it.
 */
import type { Statement } from "better-sqlite3";
import type { Db } from "./database.js";

/**
 * The values of a held event in the order of `INSERT_EVENT`'s columns: the first 15 set, the
 * last three (the answer's) null until the answer is known.
 */
export type EventValues = unknown[];

/** A held event: always one appended under `holdFor`, the call's correlation_id. */
interface Held {
  values: EventValues;
  seq: number;
  hash: string;
}

/** Every column of an event: the chain's, migration 8's booking, migration 11's answer. */
const INSERT_EVENT = `INSERT INTO audit_event (seq, time_ms, lever, action, subject, amount, ok,
    reason, actor, correlation_id, reservation_id, metadata, hash, expires_ms, denial_counted,
    call_scope, request_hash, answer)
  VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`;

/** The event a call appended, held until its answer is known (one per connection). */
export class EventHold {
  private holdFor: string | undefined;
  private held: Held | undefined;
  private insertStatement: Statement | undefined;

  constructor(private readonly db: Db) {}

  /**
   * Holds the events appended under `correlationId` from now until `release` or `drop`; on a
   * store whose reads are not guarded (not opened by `openDatabase`) nothing is held, and the
   * answer follows its event as an UPDATE.
   */
  begin(correlationId: string): void {
    this.flush();
    this.holdFor = plainPrepares.has(this.db) ? correlationId : undefined;
  }

  /**
   * Whether an event about to be appended under `correlationId` is the call's, to be held
   * (`keep`); else the caller inserts it. Either way an event held before it goes in first.
   */
  claims(correlationId: string): boolean {
    this.flush();
    return this.holdFor !== undefined && correlationId === this.holdFor;
  }

  /** Holds the call's newest event (after `claims` said so) until its answer or a read. */
  keep(values: EventValues, seq: number, hash: string): void {
    this.held = { values, seq, hash };
  }

  /** The chain's head when an event is held (it is the newest), else undefined. */
  head(): Readonly<{ seq: number; hash: string }> | undefined {
    return this.held;
  }

  /** The link of event `seq` if it is the held one, else undefined (read the store). */
  hashAt(seq: number): string | undefined {
    return this.held?.seq === seq ? this.held.hash : undefined;
  }

  /**
   * Inserts the held event `seq` of `correlationId` with the call's answer beside it; false
   * (after inserting any held event without one) when that event is not the one held.
   */
  answer(
    seq: number,
    correlationId: string,
    scope: string,
    requestHash: Buffer,
    response: Buffer,
  ): boolean {
    const held = this.held;
    if (held?.seq !== seq || correlationId !== this.holdFor) {
      this.flush();
      return false;
    }
    const values = held.values;
    values[15] = scope;
    values[16] = requestHash;
    values[17] = response;
    // Let go of it only once it is in: an insert that failed leaves it held (see `flush`).
    this.insert().run(values);
    this.held = undefined;
    return true;
  }

  /** Ends the hold of a call that succeeded: an event still held goes in without an answer. */
  release(): void {
    this.flush();
    this.holdFor = undefined;
  }

  /** Ends the hold of a call that failed: its held event is dropped, as its rollback would. */
  drop(): void {
    this.held = undefined;
    this.holdFor = undefined;
  }

  /**
   * Inserts the held event, if any, without an answer (before anything reads the trail). It
   * stays held until its insert succeeds: a failed insert whose error a caller swallows leaves
   * it to the next flush or to the answer, never lost.
   */
  flush(): void {
    const held = this.held;
    if (!held) return;
    this.insert().run(held.values);
    this.held = undefined;
  }

  private insert(): Statement {
    this.insertStatement ??= unguardedPrepare(this.db, INSERT_EVENT);
    return this.insertStatement;
  }
}

const holds = new WeakMap<Db, EventHold>();

/** The event hold of `db` (one per connection, shared by its audit logs and its pipeline). */
export function eventHold(db: Db): EventHold {
  let hold = holds.get(db);
  if (!hold) {
    hold = new EventHold(db);
    holds.set(db, hold);
  }
  return hold;
}

type Prepare = Db["prepare"];
const plainPrepares = new WeakMap<Db, Prepare>();

/**
 * Prepares a statement that does not insert the held event before it runs: for the reads that
 * ask the hold first (the chain's head, a link's hash) and the hold's own insert.
 */
export function unguardedPrepare(db: Db, source: string): Statement {
  const prepare = plainPrepares.get(db) ?? db.prepare;
  return prepare.call(db, source) as Statement;
}

const TRAIL = /audit_event/i;
const RUNS = ["run", "get", "all", "iterate"] as const;

/**
 * Makes every statement `db` prepares (or execs) that names the audit trail insert the held
 * event (if any) before it runs, so that no read, fold, prune or count of the trail misses it.
 * Not covered, and not used on the trail inside a call: `db.pragma`, `db.backup` and
 * `db.serialize` (better-sqlite3 reads through its own statements or pages), and a view or a
 * trigger of another table that reads the trail without naming it (the schema has none).
 */
export function guardTrailReads(db: Db): void {
  if (plainPrepares.has(db)) return;
  const plain = db.prepare;
  plainPrepares.set(db, plain);
  const prepare = function (this: Db, source: string) {
    const statement = plain.call(this, source) as Statement;
    if (!TRAIL.test(source)) return statement;
    const hold = eventHold(db);
    const target = statement as unknown as Record<string, (...args: unknown[]) => unknown>;
    for (const name of RUNS) {
      const run = target[name] as (...args: unknown[]) => unknown;
      target[name] = function (this: unknown, ...args: unknown[]) {
        hold.flush();
        return run.apply(this, args);
      };
    }
    return statement;
  };
  const exec = db.exec;
  (db as unknown as { prepare: unknown }).prepare = prepare;
  (db as unknown as { exec: unknown }).exec = function (this: Db, source: string) {
    if (TRAIL.test(source)) eventHold(db).flush();
    return exec.call(this, source);
  };
}
