/**
 * Idempotency keys: the first answer to each (method, correlation_id), so that a retry gets it
 * again and another request under the same id is recognized. The table is the store's; this
 * module is the only code that reads or writes it.
 */
import type { Db } from "./database.js";

/** A remembered call: the hash of its request and its encoded answer. */
export interface RememberedCall {
  requestHash: Buffer;
  response: Buffer;
}

/** Finds, saves and prunes the keys of one store. */
export class IdempotencyKeys {
  private readonly findKey;
  private readonly saveKey;
  private readonly pruneKeys;

  constructor(db: Db) {
    this.findKey = db.prepare<[string, string], { request_hash: Buffer; response: Buffer }>(
      "SELECT request_hash, response FROM idempotency WHERE method = ? AND correlation_id = ?",
    );
    this.saveKey = db.prepare<[string, string, Buffer, Buffer, number]>(
      "INSERT INTO idempotency (method, correlation_id, request_hash, response, created_ms) VALUES (?, ?, ?, ?, ?)",
    );
    // Keys are stored in arrival order: delete the ones before the first key young enough to
    // keep. A key older than the cutoff stored behind a younger one (the clock stepped back)
    // waits for it; a key stamped in the future (the clock had jumped ahead) does not count as
    // young, so it cannot hold back every key after it. No key stamped between the cutoff and
    // now is ever deleted.
    this.pruneKeys = db.prepare<{ cutoff: number; now: number }>(
      `DELETE FROM idempotency WHERE id < coalesce(
         (SELECT id FROM idempotency WHERE created_ms BETWEEN @cutoff AND @now ORDER BY id LIMIT 1),
         (SELECT max(id) + 1 FROM idempotency))`,
    );
  }

  /** The call first answered under this key, if it is still remembered. */
  find(method: string, correlationId: string): RememberedCall | undefined {
    const row = this.findKey.get(method, correlationId);
    return row && { requestHash: row.request_hash, response: row.response };
  }

  /** Remembers a call's answer under its key (in the transaction of the call's writes). */
  save(method: string, correlationId: string, call: RememberedCall, nowMs: number): void {
    this.saveKey.run(method, correlationId, call.requestHash, call.response, nowMs);
  }

  /** Forgets keys older than `retentionMs`, oldest first; returns how many went. */
  prune(nowMs: number, retentionMs: number): number {
    return this.pruneKeys.run({ cutoff: nowMs - retentionMs, now: nowMs }).changes;
  }
}
