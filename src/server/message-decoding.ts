/**
 * Protobuf's binary decoding of a request, giving the message protobuf-es's `fromBinary` gives,
 * with less work and garbage: `fromBinary` wraps every message, list and map in reflection
 * objects and reads through a generic reader. Here a plan per type, made once from its
 * descriptor, reads the fields it knows into `create(schema)`'s message. Anything else goes to
 * `fromBinary` on the same bytes, which decodes it or gives its own error: a field number the
 * type does not have (kept as unknown fields), a wire type other than the field's, groups,
 * closed enums, 64-bit fields read as strings, wrapper and Struct fields, maps with other than
 * string keys, malformed or truncated input, and strings that are not valid UTF-8.
 * test/message-decoding.test.ts compares the two on generated and on damaged encodings.
 */
import {
  create,
  type DescField,
  type DescMessage,
  fromBinary,
  type Message,
  ScalarType,
} from "@bufbuild/protobuf";
import { heldAsOtherValue } from "./message-plans.js";
import { DELIMITED, NotPlanned, wireTypeOf } from "./scalar-encoding.js";
import { readScalar, scalarZero, WireReader } from "./wire-reader.js";

type Fields = Record<string, unknown>;

/** Reads one field's value from the reader into the message. */
type FieldRead = (m: Fields, r: WireReader, wireType: number, depth: number) => void;

/** A message type's fields by number. */
interface ReadPlan {
  schema: DescMessage;
  fields: Map<number, FieldRead>;
}

const plans = new WeakMap<DescMessage, ReadPlan | null>();

/** Nesting deeper than fromBinary's recursion limit is left to it. */
const MAX_DEPTH = 100;

/** The message `fromBinary(schema, bytes)` gives. */
export function decodeMessage<T extends Message>(schema: DescMessage, bytes: Uint8Array): T {
  return (decodePlanned(schema, bytes) ?? fromBinary(schema, bytes)) as T;
}

/** The message decoded by the type's plan; undefined when the plan does not take the bytes. */
export function decodePlanned(schema: DescMessage, bytes: Uint8Array): Message | undefined {
  const plan = readPlanOf(schema);
  if (!plan) return undefined;
  try {
    const r = new WireReader(bytes);
    const m = create(schema) as unknown as Fields;
    readInto(plan, m, r, bytes.byteLength, 1);
    return m as unknown as Message;
  } catch {
    return undefined;
  }
}

function readInto(plan: ReadPlan, m: Fields, r: WireReader, end: number, depth: number): void {
  if (depth > MAX_DEPTH) throw new NotPlanned();
  while (r.pos < end) {
    const tag = r.tag();
    const read = plan.fields.get(tag >>> 3);
    if (read === undefined) throw new NotPlanned();
    read(m, r, tag & 7, depth);
  }
  if (r.pos !== end) throw new NotPlanned();
}

/** The read plan of a message type, made on first use (null: `fromBinary` decodes it). */
export function readPlanOf(schema: DescMessage): ReadPlan | null {
  const known = plans.get(schema);
  if (known !== undefined) return known;
  const plan: ReadPlan = { schema, fields: new Map() };
  plans.set(schema, plan);
  for (const f of schema.fields) {
    const read = fieldRead(f);
    if (read === null) {
      plans.set(schema, null);
      return null;
    }
    plan.fields.set(f.number, read);
  }
  return plan;
}

/** A nested message's plan, looked up when used (a type may hold itself). */
function nestedPlan(schema: DescMessage): ReadPlan {
  const plan = plans.get(schema) ?? readPlanOf(schema);
  if (!plan) throw new NotPlanned();
  return plan;
}

/** A length-delimited message into `target` (a fresh one when undefined); returns it. */
function readMessage(
  schema: DescMessage,
  target: Fields | undefined,
  r: WireReader,
  depth: number,
): Fields {
  const m = target ?? (create(schema) as unknown as Fields);
  const end = r.delimitedEnd();
  readInto(nestedPlan(schema), m, r, end, depth + 1);
  return m;
}

/** How one field is read (null: the type is left to fromBinary). */
function fieldRead(f: DescField): FieldRead | null {
  if (heldAsOtherValue(f.message) || ("longAsString" in f && f.longAsString)) return null;
  if (f.fieldKind === "enum" && !f.enum.open) return null;
  const name = f.localName;
  const oneof = f.oneof?.localName;
  switch (f.fieldKind) {
    case "scalar":
    case "enum": {
      const type = f.scalar ?? ScalarType.INT32; // an enum as int32
      const wire = wireTypeOf(type);
      const strict = f.utf8Validation;
      return (m, r, wireType) => {
        if (wireType !== wire) throw new NotPlanned();
        const value = readScalar(type, r, strict);
        if (oneof !== undefined) m[oneof] = { case: name, value };
        else m[name] = value;
      };
    }
    case "message": {
      if (f.delimitedEncoding) return null;
      const schema = f.message;
      return (m, r, wireType, depth) => {
        if (wireType !== DELIMITED) throw new NotPlanned();
        if (oneof !== undefined) {
          const o = m[oneof] as { case?: string; value?: Fields };
          const value = readMessage(schema, o.case === name ? o.value : undefined, r, depth);
          m[oneof] = { case: name, value };
        } else m[name] = readMessage(schema, m[name] as Fields | undefined, r, depth);
      };
    }
    case "list": {
      if (f.listKind === "message") {
        if (f.delimitedEncoding) return null;
        const schema = f.message;
        return (m, r, wireType, depth) => {
          if (wireType !== DELIMITED) throw new NotPlanned();
          (m[name] as Fields[]).push(readMessage(schema, undefined, r, depth));
        };
      }
      const type = f.scalar ?? ScalarType.INT32;
      const wire = wireTypeOf(type);
      const strict = f.utf8Validation;
      return (m, r, wireType) => {
        const items = m[name] as unknown[];
        if (wireType === wire) items.push(readScalar(type, r, strict));
        else if (wireType === DELIMITED) {
          // Packed (either form is read, whatever the field's own).
          const end = r.delimitedEnd();
          while (r.pos < end) items.push(readScalar(type, r, strict));
          if (r.pos !== end) throw new NotPlanned();
        } else throw new NotPlanned();
      };
    }
    case "map":
      return mapRead(f);
  }
}

/** A map with string keys: each entry key (1) and value (2), either missing for its zero. */
function mapRead(f: DescField & { fieldKind: "map" }): FieldRead | null {
  if (f.mapKey !== ScalarType.STRING) return null;
  const name = f.localName;
  const schema = f.mapKind === "message" ? f.message : undefined;
  const valueType = f.scalar ?? ScalarType.INT32;
  const valueWire = schema !== undefined ? DELIMITED : wireTypeOf(valueType);
  const strict = f.utf8Validation;
  const zero = (): unknown =>
    schema !== undefined
      ? create(schema)
      : f.mapKind === "enum"
        ? (f.enum?.values[0]?.number ?? 0)
        : scalarZero(valueType);
  return (m, r, wireType, depth) => {
    if (wireType !== DELIMITED) throw new NotPlanned();
    const end = r.delimitedEnd();
    let key = "";
    let value: unknown;
    while (r.pos < end) {
      const tag = r.tag();
      if (tag === ((1 << 3) | DELIMITED)) key = readScalar(ScalarType.STRING, r, strict) as string;
      else if (tag === ((2 << 3) | valueWire)) {
        value =
          schema !== undefined
            ? readMessage(schema, undefined, r, depth)
            : readScalar(valueType, r, strict);
      } else throw new NotPlanned();
    }
    if (r.pos !== end) throw new NotPlanned();
    (m[name] as Record<string, unknown>)[key] = value === undefined ? zero() : value;
  };
}
