/**
 * Mutating calls answered once per (method, correlation_id): a retry within the key retention
 * gets the first answer, from the call's own audit event (see held-event.ts) or the
 * idempotency table, and the same id with another request is refused (ALREADY_EXISTS). Runs
 * inside the call's transaction, so the answer is kept exactly when the call's writes are.
 */
import { randomUUID } from "node:crypto";
import {
  create,
  type DescMessage,
  type DescMethodUnary,
  fromBinary,
  type Message,
  type MessageInitShape,
} from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Clock } from "../clock.js";
import { type NewestAppend, newestAppend } from "../store/audit-log.js";
import type { Db } from "../store/database.js";
import { type EventHold, eventHold } from "../store/held-event.js";
import { IdempotencyKeys } from "../store/idempotency-keys.js";
import { sha256Bytes } from "../store/sha256.js";
import { answer } from "./call-answers.js";
import type { CallResult } from "./call-pipeline.js";
import { canonicalBytes } from "./canonical-request.js";
import { encodeMessage } from "./message-encoding.js";

/** A unary handler of a bound service, whatever its types. */
export type AnyHandler = (request: Message) => MessageInitShape<DescMessage>;

/** The idempotent part of the call pipeline: one store's keys and the call's held event. */
export class IdempotentCalls {
  /** The idempotency keys of the store. */
  readonly keys: IdempotencyKeys;
  private readonly newest: Readonly<NewestAppend>;
  private readonly hold: EventHold;

  constructor(
    db: Db,
    private readonly clock: Clock,
    private readonly keyRetentionMs: number,
  ) {
    this.keys = new IdempotencyKeys(db);
    this.newest = newestAppend(db);
    this.hold = eventHold(db);
  }

  /**
   * Runs a mutating handler once per (method, correlation_id); a retry within the key
   * retention gets the first answer. The answer is kept on the last audit event the call
   * appended, when that event carries the call's correlation_id, else in the idempotency table.
   * Where the id is optional and absent (operator calls, telemetry), the call gets an id of its
   * own, which its events record and its answer returns, and it is not deduplicated.
   */
  run(method: DescMethodUnary, handler: AnyHandler, request: Message): CallResult {
    const given = (request as { correlationId?: unknown }).correlationId;
    if (typeof given !== "string") return { message: create(method.output, handler(request)) };
    if (given === "") {
      const correlationId = `auto-${randomUUID()}`;
      const identified = { ...request, correlationId } as Message;
      return { message: answer(method, handler(identified), correlationId) };
    }
    const hash = sha256Bytes(canonicalBytes(method.input, request));
    // Scoped by service and method: UpsertPolicy of two levers must not share a key.
    const scope = `${method.parent.typeName}/${method.name}`;
    const now = this.clock.now();
    const previous = this.keys.find(scope, given, now, this.keyRetentionMs);
    if (previous) {
      if (!hash.equals(previous.requestHash)) {
        throw new ConnectError(
          `correlation_id ${given} was already used for a different ${method.name} request: use a new id for a new request`,
          Code.AlreadyExists,
        );
      }
      return { message: fromBinary(method.output, previous.response), binary: previous.response };
    }
    const appended = this.newest.count;
    // The call's event waits for its answer, to be written once with it (see held-event.ts).
    this.hold.begin(given);
    let message: Message;
    let binary: Buffer;
    try {
      message = answer(method, handler(request), given);
      binary = encodeMessage(method.output, message);
      const own =
        this.newest.count !== appended && this.newest.correlationId === given
          ? this.newest.seq
          : undefined;
      this.keys.save(scope, given, { requestHash: hash, response: binary }, now, own);
      this.hold.release();
    } catch (err) {
      // The call's savepoint is rolled back: its held event goes with it.
      this.hold.drop();
      throw err;
    }
    return { message, binary };
  }
}
