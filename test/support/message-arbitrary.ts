/**
 * Random protobuf messages of any type, built from its descriptor, with values near the
 * request rules of this schema: names, money, hex, ids, string lengths at our bounds in code
 * points (surrogate pairs, lone surrogates), integers at each field's own bounds, non-finite
 * doubles, undefined enum values, pair counts at 32.
 */
import {
  create,
  type DescField,
  type DescMessage,
  getOption,
  hasOption,
  type Message,
  ScalarType,
} from "@bufbuild/protobuf";
import { field as fieldRules } from "@bufbuild/protovalidate/gen/buf/validate/validate_pb.js";
import fc from "fast-check";

/** Strings near our rules: names, money, hex, ids, bounds in code points, and noise. */
const text: fc.Arbitrary<string> = fc.oneof(
  fc.string({ unit: fc.constantFrom(..."ABZ09_"), minLength: 1, maxLength: 6 }),
  fc.string({ unit: fc.constantFrom(..."abz09_.-"), minLength: 1, maxLength: 6 }),
  fc.string({ unit: fc.constantFrom(..."0123456789."), maxLength: 12 }),
  fc.string({ unit: fc.constantFrom(..."0123456789abcdef"), minLength: 63, maxLength: 65 }),
  fc.constantFrom("", "WHOLESALE", "150.25", "0", "01", "1.1234567", "conv_rate", "-1"),
  // Lengths at our bounds, counted in code points: a pair is one, a lone surrogate one.
  fc
    .tuple(
      fc.constantFrom(1, 32, 64, 128, 256, 1024, 4096),
      fc.integer({ min: -1, max: 1 }),
      fc.constantFrom("a", "\u{1F600}", "\ud800", "é"),
    )
    .map(([n, d, c]) => c.repeat(Math.max(0, n + d))),
  fc.string({ unit: "grapheme", maxLength: 8 }),
  fc.string({ unit: "binary", maxLength: 8 }),
);

function scalarValue(scalar: ScalarType): fc.Arbitrary<unknown> {
  switch (scalar) {
    case ScalarType.STRING:
      return text;
    case ScalarType.BOOL:
      return fc.boolean();
    case ScalarType.DOUBLE:
      return fc.oneof(fc.double(), fc.constantFrom(0, 0.5, Number.NaN, Number.POSITIVE_INFINITY));
    case ScalarType.FLOAT:
      // Values a float holds (past its range, toBinary refuses the whole message).
      return fc.oneof(fc.float(), fc.constantFrom(0, 0.5, Number.NaN, Number.POSITIVE_INFINITY));
    case ScalarType.BYTES:
      return fc.uint8Array({ maxLength: 4 });
    case ScalarType.INT64:
    case ScalarType.SINT64:
    case ScalarType.SFIXED64:
      return fc.oneof(
        fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }),
        fc.bigInt({ min: -3n, max: 3n }),
      );
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
      return fc.oneof(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), fc.bigInt({ min: 0n, max: 3n }));
    case ScalarType.UINT32:
    case ScalarType.FIXED32:
      return fc.oneof(fc.nat(), fc.integer({ min: 0, max: 3 }));
    default:
      return fc.oneof(fc.integer(), fc.integer({ min: -3, max: 3 }));
  }
}

/** An item of a repeated field or a value of a map: a message, an enum number or a scalar. */
function elementOf(
  kind: "message" | "enum" | "scalar",
  f: DescField & { fieldKind: "list" | "map" },
  depth: number,
): fc.Arbitrary<unknown> | undefined {
  if (kind === "message")
    return depth < 3 ? messageOf(f.message as DescMessage, depth + 1) : undefined;
  if (kind === "enum") return fc.integer({ min: -1, max: (f.enum?.values.length ?? 0) + 1 });
  return scalarValue(f.scalar as ScalarType);
}

/** An integer field's own bounds (gt, gte, lt, lte), each with its neighbours, as the field holds them. */
function nearBounds(f: DescField & { fieldKind: "scalar" }): fc.Arbitrary<unknown>[] {
  if (!hasOption(f, fieldRules)) return [];
  const rules = getOption(f, fieldRules).type.value as {
    greaterThan?: { value?: number | bigint };
    lessThan?: { value?: number | bigint };
  };
  const bounds = [rules?.greaterThan?.value, rules?.lessThan?.value].filter((b) => b !== undefined);
  if (bounds.length === 0) return [];
  const near = bounds.flatMap((b): (number | bigint)[] =>
    typeof b === "bigint" ? [b - 1n, b, b + 1n] : [b - 1, b, b + 1],
  );
  return [fc.constantFrom(...near)];
}

export function fieldValue(f: DescField, depth: number): fc.Arbitrary<unknown> | undefined {
  switch (f.fieldKind) {
    case "scalar": {
      const near = nearBounds(f);
      return near.length > 0 ? fc.oneof(scalarValue(f.scalar), ...near) : scalarValue(f.scalar);
    }
    case "enum":
      return fc.integer({ min: -1, max: f.enum.values.length + 1 });
    case "message":
      return depth < 3 ? messageOf(f.message, depth + 1) : undefined;
    case "list": {
      const item = elementOf(f.listKind, f, depth);
      return item && fc.array(item, { maxLength: 3 });
    }
    case "map": {
      const value = elementOf(f.mapKind, f, depth);
      return (
        value &&
        fc.oneof(
          fc.dictionary(text, value, { maxKeys: 3 }),
          // Pair counts at a bound of 32.
          fc
            .integer({ min: 31, max: 33 })
            .chain((n) =>
              fc.constant(Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, "v"]))),
            ),
        )
      );
    }
  }
}

/** A random message of `schema`: each field present or not, one member of each oneof or none. */
export function messageOf(schema: DescMessage, depth = 0): fc.Arbitrary<Message> {
  const fields: Record<string, fc.Arbitrary<unknown>> = {};
  for (const f of schema.fields) {
    if (f.oneof) continue;
    const a = fieldValue(f, depth);
    if (a) fields[f.localName] = fc.option(a, { nil: undefined, freq: 5 });
  }
  for (const o of schema.oneofs) {
    const members = o.fields.flatMap((f) => {
      const a = fieldValue(f, depth);
      return a ? [a.map((value) => ({ case: f.localName, value }))] : [];
    });
    if (members.length > 0)
      fields[o.localName] = fc.option(fc.oneof(...members), { nil: undefined });
  }
  return fc.record(fields).map((init) => {
    const present = Object.fromEntries(Object.entries(init).filter(([, v]) => v !== undefined));
    return create(schema, present as never) as Message;
  });
}
