/** Small conversions shared by the lever handlers. */

import type { Timestamp } from "@bufbuild/protobuf/wkt";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { parseMoney } from "../money.js";

/** A timestamp for a stored time, or undefined for "never" (0 or null). */
export function timestamp(ms: number | null | undefined): Timestamp | undefined {
  return ms ? timestampFromMs(ms) : undefined;
}

/** Parses a money field already checked by protovalidate; INVALID_ARGUMENT naming it otherwise. */
export function money(field: string, text: string): bigint {
  const micros = parseMoney(text);
  if (micros === undefined) {
    throw new ConnectError(
      `invalid request: ${field}: must be a decimal string such as "150.25"`,
      Code.InvalidArgument,
    );
  }
  return micros;
}

/** The actor to record: the one given, else a stand-in that says none was given. */
export function actorOf(actor: string): string {
  return actor === "" ? "unspecified" : actor;
}
