/**
 * The bytes an idempotency key is checked against: a request in one canonical encoding, so that
 * an honest retry matches its first call however its sender ordered map entries (Go's protobuf
 * and JSON encoders write maps in random order) and whichever port it came through.
 */
import { create, type DescMessage, type Message } from "@bufbuild/protobuf";
import { encodeMessage } from "./message-encoding.js";

/** Whether messages of a type can hold a map anywhere inside them (cached per type). */
const holdsMaps = new WeakMap<DescMessage, boolean>();

function hasMaps(schema: DescMessage, seen = new Set<DescMessage>()): boolean {
  const known = holdsMaps.get(schema);
  if (known !== undefined) return known;
  if (seen.has(schema)) return false;
  seen.add(schema);
  const found = schema.fields.some(
    (f) =>
      f.fieldKind === "map" ||
      (f.fieldKind === "message" && hasMaps(f.message, seen)) ||
      (f.fieldKind === "list" && f.listKind === "message" && hasMaps(f.message, seen)),
  );
  holdsMaps.set(schema, found);
  return found;
}

/** A copy of `message` whose maps hold their entries in key order, at every depth. */
function withSortedMaps(schema: DescMessage, message: Message): Message {
  const source = message as unknown as Record<string, unknown>;
  const copy: Record<string, unknown> = { ...source };
  for (const f of schema.fields) {
    const value = source[f.localName];
    if (value === undefined) continue;
    if (f.fieldKind === "map") {
      const entries = Object.entries(value as Record<string, unknown>).sort(([a], [b]) =>
        a < b ? -1 : a > b ? 1 : 0,
      );
      copy[f.localName] = Object.fromEntries(
        f.mapKind === "message"
          ? entries.map(([k, v]) => [k, withSortedMaps(f.message, v as Message)])
          : entries,
      );
    } else if (f.fieldKind === "message" && hasMaps(f.message)) {
      copy[f.localName] = withSortedMaps(f.message, value as Message);
    } else if (f.fieldKind === "list" && f.listKind === "message" && hasMaps(f.message)) {
      copy[f.localName] = (value as Message[]).map((m) => withSortedMaps(f.message, m));
    }
  }
  return create(schema, copy as never);
}

/** Integer-like keys, which JavaScript objects always hold first, in numeric order. */
const INDEX_KEY = /^(0|[1-9][0-9]*)$/;

/**
 * True when every map already holds its entries in canonical order (the usual case: empty maps,
 * or keys sent sorted), so the request encodes canonically as it is, without a copy. Objects
 * keep integer-like keys first in numeric order whatever the insertion order, so only the other
 * keys need to be in order.
 */
function inCanonicalOrder(schema: DescMessage, message: Message): boolean {
  const source = message as unknown as Record<string, unknown>;
  for (const f of schema.fields) {
    const value = source[f.localName];
    if (value === undefined) continue;
    if (f.fieldKind === "map") {
      let previous: string | undefined;
      for (const key of Object.keys(value as object)) {
        if (INDEX_KEY.test(key)) continue;
        if (previous !== undefined && previous > key) return false;
        previous = key;
      }
      if (f.mapKind === "message") return false;
    } else if (f.fieldKind === "message" && hasMaps(f.message)) {
      if (!inCanonicalOrder(f.message, value as Message)) return false;
    } else if (f.fieldKind === "list" && f.listKind === "message" && hasMaps(f.message)) {
      if (!(value as Message[]).every((m) => inCanonicalOrder(f.message, m))) return false;
    }
  }
  return true;
}

/** The request encoded canonically: map entries in key order, fields in number order. */
export function canonicalBytes(schema: DescMessage, request: Message): Uint8Array {
  const canonical = !hasMaps(schema) || inCanonicalOrder(schema, request);
  return encodeMessage(schema, canonical ? request : withSortedMaps(schema, request));
}
