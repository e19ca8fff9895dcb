/**
 * SHA-256 in one call, for the digests every decision computes (its audit link and its request's
 * idempotency hash). Node's one-shot `crypto.hash` (Node 20.12 and later) skips the Hash object
 * that `createHash().update().digest()` builds per call, about 1 us of a decision's CPU; on an
 * older Node 20 the same digest comes from `createHash`. Both give identical bytes.
 */
import * as crypto from "node:crypto";

type OneShot = (
  algorithm: string,
  data: string | Uint8Array,
  encoding: "hex" | "buffer",
) => unknown;

/** `crypto.hash` where this Node has it. */
const oneShot = (crypto as unknown as { hash?: OneShot }).hash;

/** The hex SHA-256 of `data` (a string is hashed as UTF-8). */
export function sha256Hex(data: string | Uint8Array): string {
  if (oneShot) return oneShot("sha256", data, "hex") as string;
  return crypto.createHash("sha256").update(data).digest("hex");
}

/** The SHA-256 of `data` as 32 bytes (a string is hashed as UTF-8). */
export function sha256Bytes(data: string | Uint8Array): Buffer {
  if (oneShot) return oneShot("sha256", data, "buffer") as Buffer;
  return crypto.createHash("sha256").update(data).digest();
}
