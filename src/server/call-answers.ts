/**
 * What a call answers: its message (with the correlation_id it ran under), the decision the log
 * names, or a failure mapped to a ConnectError with a code and an actionable message.
 */
import { randomUUID } from "node:crypto";
import {
  create,
  type DescMessage,
  type DescMethod,
  type DescMethodUnary,
  type Message,
  type MessageInitShape,
} from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Logger } from "pino";
import { DenyReason } from "../../gen/governance/v1/common_pb.js";
import { describeSqliteError } from "../store/database.js";

/** The handler's answer as a message, carrying the call's correlation_id where it has room. */
export function answer(
  method: DescMethodUnary,
  init: MessageInitShape<DescMessage>,
  correlationId: string,
): Message {
  const message = create(method.output, init);
  if (method.output.field.correlationId) {
    (message as Message & { correlationId: string }).correlationId = correlationId;
  }
  return message;
}

/** What a call decided, for the debug log: allowed/denied with the reason, else ok or the code. */
export function decisionOf(response: Message | undefined, code: Code | undefined): string {
  if (code !== undefined) return Code[code] ?? String(code);
  const d = response as { allowed?: unknown; reason?: unknown } | undefined;
  if (typeof d?.allowed !== "boolean") return "ok";
  return d.allowed ? "allowed" : `denied:${DenyReason[Number(d.reason)] ?? String(d.reason)}`;
}

/**
 * Maps a handler's or the store's failure to a ConnectError: refusals pass as they are; store
 * conditions an operator can fix are named (UNAVAILABLE); anything else is INTERNAL with a
 * reference to the log line that has the detail.
 */
export function toConnectError(
  method: DescMethod,
  err: unknown,
  logger: Logger,
  storeFile: string,
): ConnectError {
  if (err instanceof ConnectError) return err;
  const ref = randomUUID().slice(0, 8);
  const code = (err as { code?: unknown }).code;
  if (typeof code === "string" && code.startsWith("SQLITE_")) {
    logger.error({ err, ref, method: method.name }, "store failure");
    // Conditions an operator can fix are named; anything else stays in the log.
    const operational =
      /^SQLITE_(BUSY|LOCKED|READONLY|FULL|IOERR|CORRUPT|NOTADB|CANTOPEN|PERM)/.test(code);
    return new ConnectError(
      operational
        ? `${describeSqliteError(storeFile, err)} (ref ${ref})`
        : `store failure (ref ${ref}); the sidecar log has the detail`,
      operational ? Code.Unavailable : Code.Internal,
    );
  }
  logger.error({ err, ref, method: method.name }, "handler failure");
  return new ConnectError(
    `internal error (ref ${ref}); the sidecar log has the detail`,
    Code.Internal,
  );
}
