/**
 * The plan per message type that message-encoding.ts encodes by: made once from the type's
 * descriptor, it measures a message (keeping each string's and nested message's length in
 * order) and then writes it, byte for byte as protobuf-es's `toBinary`. A field the plan does
 * not cover makes the type's plan null (see message-encoding.ts for what is left to toBinary).
 */
import { type DescField, type DescMessage, ScalarType } from "@bufbuild/protobuf";
import { isWrapperDesc } from "@bufbuild/protobuf/wkt";
import {
  DELIMITED,
  type Encoding,
  IMPLICIT,
  isZero,
  LEGACY_REQUIRED,
  NotPlanned,
  scalarSize,
  varintSize,
  wireTypeOf,
  writeScalar,
} from "./scalar-encoding.js";

/** A message's fields by local name, as protobuf-es holds them. */
export type Fields = Record<string, unknown>;

/** How one field is measured and written. */
interface FieldPlan {
  size(m: Fields, e: Encoding): number;
  write(m: Fields, e: Encoding): void;
}

/** The fields of a message type, in field-number order (as `toBinary` writes them). */
export interface MessagePlan {
  typeName: string;
  fields: FieldPlan[];
}

const plans = new WeakMap<DescMessage, MessagePlan | null>();

/** A field's tag, unsigned (field numbers reach 2^29 - 1). */
function tagOf(number: number, wireType: number): number {
  return ((number << 3) | wireType) >>> 0;
}

/** Nesting past this is left to toBinary (which recurses as deep as the stack lets it). */
const MAX_DEPTH = 100;

/** The encoded size of `m` by its type's plan (lengths of its parts pushed in order onto `e`). */
export function sizeOf(plan: MessagePlan, m: Fields, e: Encoding): number {
  // A message of another type (toBinary's ForeignFieldError), or a plain object.
  if (m.$typeName !== plan.typeName) throw new NotPlanned();
  const unknown = m.$unknown as unknown[] | undefined;
  if (unknown !== undefined && unknown.length > 0) throw new NotPlanned();
  let size = 0;
  for (const f of plan.fields) size += f.size(m, e);
  return size;
}

/** Writes `m` by its type's plan into `e`, which `sizeOf` measured it into. */
export function writeOf(plan: MessagePlan, m: Fields, e: Encoding): void {
  for (const f of plan.fields) f.write(m, e);
}

/** The plan of a message type, made on first use (null: not covered, `toBinary` encodes it). */
export function planOf(schema: DescMessage): MessagePlan | null {
  let plan = plans.get(schema);
  if (plan !== undefined) return plan;
  // Placed first, so a type that holds itself finds its own (filled-in) plan.
  const made: MessagePlan = { typeName: schema.typeName, fields: [] };
  plans.set(schema, made);
  const sorted = [...schema.fields].sort((a, b) => a.number - b.number);
  for (const f of sorted) {
    const field = fieldPlan(f);
    if (field === null) {
      plans.set(schema, null);
      return null;
    }
    made.fields.push(field);
  }
  plan = plans.get(schema) ?? null;
  return plan;
}

/** A message value's plan, looked up when used (a type may hold itself). */
function nestedPlan(schema: DescMessage): MessagePlan {
  const plan = plans.get(schema) ?? planOf(schema);
  if (!plan) throw new NotPlanned();
  return plan;
}

/** A nested message: its tag, its length (pushed in order) and its fields. */
function messageSize(tagSize: number, schema: DescMessage, value: Fields, e: Encoding): number {
  const slot = e.slot();
  if (++e.depth > MAX_DEPTH) throw new NotPlanned();
  const n = sizeOf(nestedPlan(schema), value, e);
  e.depth--;
  e.lens[slot] = n;
  return tagSize + varintSize(n) + n;
}

function writeMessage(tag: number, schema: DescMessage, value: Fields, e: Encoding): void {
  e.varint(tag);
  e.varint(e.taken());
  writeOf(nestedPlan(schema), value, e);
}

/**
 * Message types protobuf-es holds as other values in a field: the wrappers (as their value) and
 * Struct (as a JSON object). Their fields are left to toBinary.
 */
export function heldAsOtherValue(schema: DescMessage | undefined): boolean {
  return (
    schema !== undefined && (isWrapperDesc(schema) || schema.typeName === "google.protobuf.Struct")
  );
}

/** The plan of one field (null: not covered). */
function fieldPlan(f: DescField): FieldPlan | null {
  if (f.presence === LEGACY_REQUIRED || heldAsOtherValue(f.message)) return null;
  const name = f.localName;
  const oneof = f.oneof?.localName;
  switch (f.fieldKind) {
    case "scalar":
    case "enum": {
      const type = f.scalar ?? ScalarType.INT32; // an enum as int32
      const tag = tagOf(f.number, wireTypeOf(type));
      const tagSize = varintSize(tag);
      const zero = f.fieldKind === "enum" ? (f.enum.values[0]?.number ?? 0) : undefined;
      // The value when the field is set, else undefined (toBinary's isSet).
      const setValue = (m: Fields): unknown => {
        if (oneof !== undefined) {
          const o = m[oneof] as { case?: string; value?: unknown };
          if (o.case !== name) return undefined;
          // A case without its value: toBinary writes the zero value; left to it.
          if (o.value === undefined) throw new NotPlanned();
          return o.value;
        }
        const v = m[name];
        if (f.presence !== IMPLICIT)
          return v !== undefined && Object.hasOwn(m, name) ? v : undefined;
        if (zero !== undefined) return v === zero ? undefined : v;
        return isZero(type, v) ? undefined : v;
      };
      return {
        size(m, e) {
          const v = setValue(m);
          return v === undefined ? 0 : tagSize + scalarSize(type, v, e);
        },
        write(m, e) {
          const v = setValue(m);
          if (v === undefined) return;
          e.varint(tag);
          writeScalar(type, v, e);
        },
      };
    }
    case "message": {
      if (f.delimitedEncoding) return null;
      const tag = tagOf(f.number, DELIMITED);
      const tagSize = varintSize(tag);
      const schema = f.message;
      const setValue = (m: Fields): Fields | undefined => {
        if (oneof !== undefined) {
          const o = m[oneof] as { case?: string; value?: Fields };
          if (o.case !== name) return undefined;
          // A case without its value: toBinary writes the zero value; left to it.
          if (o.value === undefined) throw new NotPlanned();
          return o.value;
        }
        const v = m[name] as Fields | undefined;
        return v !== undefined && Object.hasOwn(m, name) ? v : undefined;
      };
      return {
        size(m, e) {
          const v = setValue(m);
          return v === undefined ? 0 : messageSize(tagSize, schema, v, e);
        },
        write(m, e) {
          const v = setValue(m);
          if (v !== undefined) writeMessage(tag, schema, v, e);
        },
      };
    }
    case "list":
      return listPlan(f);
    case "map":
      return mapPlan(f);
  }
}

function listPlan(f: DescField & { fieldKind: "list" }): FieldPlan | null {
  const name = f.localName;
  if (f.listKind === "message") {
    if (f.delimitedEncoding) return null;
    const tag = tagOf(f.number, DELIMITED);
    const tagSize = varintSize(tag);
    const schema = f.message;
    return {
      size(m, e) {
        let size = 0;
        for (const item of m[name] as Fields[]) size += messageSize(tagSize, schema, item, e);
        return size;
      },
      write(m, e) {
        for (const item of m[name] as Fields[]) writeMessage(tag, schema, item, e);
      },
    };
  }
  const type = f.scalar ?? ScalarType.INT32;
  if (f.packed) {
    const tag = tagOf(f.number, DELIMITED);
    const tagSize = varintSize(tag);
    return {
      size(m, e) {
        const items = m[name] as unknown[];
        if (items.length === 0) return 0;
        const slot = e.slot();
        let n = 0;
        for (const item of items) n += scalarSize(type, item, e);
        e.lens[slot] = n;
        return tagSize + varintSize(n) + n;
      },
      write(m, e) {
        const items = m[name] as unknown[];
        if (items.length === 0) return;
        e.varint(tag);
        e.varint(e.taken());
        for (const item of items) writeScalar(type, item, e);
      },
    };
  }
  const tag = tagOf(f.number, wireTypeOf(type));
  const tagSize = varintSize(tag);
  return {
    size(m, e) {
      let size = 0;
      for (const item of m[name] as unknown[]) size += tagSize + scalarSize(type, item, e);
      return size;
    },
    write(m, e) {
      for (const item of m[name] as unknown[]) {
        e.varint(tag);
        writeScalar(type, item, e);
      }
    },
  };
}

/** Maps with string keys: each entry a nested message of key (1) and value (2), both written. */
function mapPlan(f: DescField & { fieldKind: "map" }): FieldPlan | null {
  if (f.mapKey !== ScalarType.STRING) return null;
  const name = f.localName;
  const tag = tagOf(f.number, DELIMITED);
  const tagSize = varintSize(tag);
  const keyTag = (1 << 3) | DELIMITED;
  const valueType = f.mapKind === "message" ? undefined : (f.scalar ?? ScalarType.INT32);
  const valueTag = (2 << 3) | (valueType === undefined ? DELIMITED : wireTypeOf(valueType));
  const schema = f.mapKind === "message" ? f.message : undefined;
  return {
    size(m, e) {
      const map = m[name] as Record<string, unknown>;
      let size = 0;
      for (const key of Object.keys(map)) {
        const slot = e.slot();
        let n = 1 + scalarSize(ScalarType.STRING, key, e);
        const value = map[key];
        n +=
          schema !== undefined
            ? messageSize(1, schema, value as Fields, e)
            : 1 + scalarSize(valueType as ScalarType, value, e);
        e.lens[slot] = n;
        size += tagSize + varintSize(n) + n;
      }
      return size;
    },
    write(m, e) {
      const map = m[name] as Record<string, unknown>;
      for (const key of Object.keys(map)) {
        e.varint(tag);
        e.varint(e.taken());
        e.varint(keyTag);
        writeScalar(ScalarType.STRING, key, e);
        const value = map[key];
        if (schema !== undefined) writeMessage(valueTag, schema, value as Fields, e);
        else {
          e.varint(valueTag);
          writeScalar(valueType as ScalarType, value, e);
        }
      }
    },
  };
}
