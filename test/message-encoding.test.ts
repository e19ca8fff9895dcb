/**
 * encodeMessage (src/server/message-encoding.ts) gives toBinary's bytes, or its error, for
 * generated messages of every type of our schema, and for built-at-run-time types with every
 * scalar type, presence kind, repeated form, map and oneof; what it does not cover (unknown
 * fields, groups, required fields, maps with other keys) is toBinary's own encoding.
 */
import {
  create,
  createFileRegistry,
  type DescMessage,
  type Message,
  toBinary,
} from "@bufbuild/protobuf";
import {
  FileDescriptorProtoSchema,
  file_google_protobuf_struct,
  file_google_protobuf_wrappers,
  FieldDescriptorProto_Label as Label,
  FieldDescriptorProto_Type as Type,
} from "@bufbuild/protobuf/wkt";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { encodeMessage, encodePlanned } from "../src/server/message-encoding.js";
import { planOf } from "../src/server/message-plans.js";
import { messageOf } from "./support/message-arbitrary.js";
import { OUR_TYPES, runtimeTypes } from "./support/schema-types.js";

/** encodeMessage and toBinary agree: the same bytes, or the same error. */
/** `byPlan`: a message toBinary encodes must be the plan's own (unless it has unknown fields). */
function agree(schema: DescMessage, m: Message, byPlan = true): void {
  let expected: Uint8Array | undefined;
  let error: Error | undefined;
  try {
    expected = toBinary(schema, m);
  } catch (e) {
    error = e as Error;
  }
  if (error) {
    expect(() => encodeMessage(schema, m)).toThrow(error.message);
    return;
  }
  const actual = encodeMessage(schema, m);
  expect(actual).toBeInstanceOf(Buffer);
  // A message toBinary encodes is the plan's own, unless it holds unknown fields.
  if (byPlan && planOf(schema) && !m.$unknown?.length) {
    expect(encodePlanned(schema, m)?.equals(actual), "encoded by the plan").toBe(true);
  }
  expect(Buffer.from(actual).toString("hex")).toBe(
    Buffer.from(expected as Uint8Array).toString("hex"),
  );
}

describe("messages encoded without protobuf-es's writer", () => {
  it("cover every type of our schema", () => {
    expect(OUR_TYPES.length).toBeGreaterThan(60);
    for (const t of OUR_TYPES) expect(planOf(t), t.typeName).not.toBeNull();
  });

  it.each(OUR_TYPES.map((t) => [t.typeName, t] as const))("match toBinary for %s", (_, schema) => {
    fc.assert(
      fc.property(messageOf(schema), (m) => agree(schema, m)),
      { numRuns: 150 },
    );
  });
});

describe("run-time types", () => {
  for (const syntax of ["proto3", "proto2"] as const) {
    const schema = runtimeTypes(syntax);
    it(`match toBinary on every scalar type, presence, repeated form, map and oneof (${syntax})`, () => {
      expect(planOf(schema)).not.toBeNull();
      fc.assert(
        fc.property(messageOf(schema), (m) => agree(schema, m)),
        { numRuns: 400 },
      );
    });
  }

  it("writes what toBinary writes at the edges: -0, NaN, negative int32 and enums, 64-bit limits, lone surrogates", () => {
    const schema = runtimeTypes("proto3");
    const edges: Record<string, unknown>[] = [
      { sDouble: -0, sFloat: -0, sInt32: -1, e: -1, re: [-1, 0, 1] },
      { sDouble: Number.NaN, sFloat: Number.NEGATIVE_INFINITY, sSint32: -2147483648 },
      {
        sInt64: -(2n ** 63n),
        sUint64: 2n ** 64n - 1n,
        sSint64: -(2n ** 63n),
        sFixed64: 2n ** 64n - 1n,
      },
      { sSfixed64: -1n, sFixed32: 4294967295, sSfixed32: -2147483648, sUint32: 4294967295 },
      { sString: "\ud800a\udc00\u{1F600}é", sBytes: new Uint8Array([0, 255]) },
      { rInt64: [0n, -1n, 2n ** 62n], rString: ["", "x"], rBytes: [new Uint8Array(0)] },
      { oInt32: 0, oString: "", oBool: false, oDouble: 0 },
      { choice: { case: "cNum", value: 0n } },
      { choice: { case: "cKid", value: create(schema, {}) } },
      { names: { "": 0n, b: 2n ** 64n - 1n, "1": 5n }, kids: { k: create(schema, { sInt32: 7 }) } },
      { uInt32: [-5, 0, 300], children: [create(schema, {}), create(schema, { sBool: true })] },
      // Each varint length on both sides of its bound, as values and as lengths.
      { rUint32: [127, 128, 16383, 16384, 2097151, 2097152, 268435455, 268435456, 4294967295] },
      {
        rUint64: [7, 14, 21, 28, 35, 42, 49, 56, 63, 64].flatMap((b) => [
          2n ** BigInt(b) - 1n,
          2n ** BigInt(b) % 2n ** 64n,
        ]),
      },
      ...[127, 128, 16383, 16384].map((n) => ({
        sString: "a".repeat(n),
        sBytes: new Uint8Array(n),
      })),
    ];
    for (const init of edges) agree(schema, create(schema, init as never));
  });

  it("leaves to toBinary, with its errors, the values it refuses", () => {
    const schema = runtimeTypes("proto3");
    for (const init of [
      { sInt32: 2 ** 31 },
      { sUint32: -1 },
      { sFloat: 1e39 },
      { sInt64: 2n ** 63n },
      { sUint64: -1n },
      { rInt32: [1.5] },
    ]) {
      const m = create(schema, {}) as unknown as Record<string, unknown>;
      Object.assign(m, init);
      expect(() => toBinary(schema, m as unknown as Message)).toThrow();
      agree(schema, m as unknown as Message);
    }
    // Digits in a string, as toBinary takes them for 64-bit fields.
    const digits = create(schema, {}) as unknown as Record<string, unknown>;
    digits.sInt64 = "-42";
    digits.sUint64 = "18446744073709551615";
    agree(schema, digits as unknown as Message);
  });

  it("leaves unknown fields, groups, required fields and other map keys to toBinary", () => {
    const schema = runtimeTypes("proto3");
    const withUnknown = create(schema, { sInt32: 1 });
    withUnknown.$unknown = [{ no: 999, wireType: 0, data: new Uint8Array([5]) }];
    agree(schema, withUnknown);
    const file = (name: string, field: object[], nestedType: object[] = []) =>
      createFileRegistry(
        create(FileDescriptorProtoSchema, {
          name: `${name}.proto`,
          package: name,
          syntax: "proto2",
          messageType: [{ name: "M", field, nestedType }],
        } as never),
        () => undefined,
      ).getMessage(`${name}.M`) as DescMessage;
    const required = file("req", [
      { name: "x", number: 1, type: Type.INT32, label: Label.REQUIRED },
    ]);
    const group = file(
      "grp",
      [{ name: "g", number: 1, type: Type.GROUP, typeName: ".grp.M.G", label: Label.OPTIONAL }],
      [{ name: "G", field: [{ name: "y", number: 2, type: Type.INT32, label: Label.OPTIONAL }] }],
    );
    const intKeys = file(
      "ik",
      [
        {
          name: "m",
          number: 1,
          type: Type.MESSAGE,
          typeName: ".ik.M.MEntry",
          label: Label.REPEATED,
        },
      ],
      [
        {
          name: "MEntry",
          field: [
            { name: "key", number: 1, type: Type.INT32, label: Label.OPTIONAL },
            { name: "value", number: 2, type: Type.STRING, label: Label.OPTIONAL },
          ],
          options: { mapEntry: true },
        },
      ],
    );
    const heldAsValues = createFileRegistry(
      create(FileDescriptorProtoSchema, {
        name: "held.proto",
        package: "held",
        syntax: "proto3",
        dependency: ["google/protobuf/wrappers.proto", "google/protobuf/struct.proto"],
        messageType: [
          {
            name: "M",
            field: [
              {
                name: "w",
                number: 1,
                type: Type.MESSAGE,
                typeName: ".google.protobuf.Int64Value",
                label: Label.OPTIONAL,
              },
              {
                name: "s",
                number: 2,
                type: Type.MESSAGE,
                typeName: ".google.protobuf.Struct",
                label: Label.OPTIONAL,
              },
            ],
          },
        ],
      } as never),
      (f) =>
        f === "google/protobuf/wrappers.proto"
          ? file_google_protobuf_wrappers
          : f === "google/protobuf/struct.proto"
            ? file_google_protobuf_struct
            : undefined,
    ).getMessage("held.M") as DescMessage;
    for (const t of [required, group, intKeys, heldAsValues]) {
      expect(planOf(t), t.typeName).toBeNull();
    }
    agree(heldAsValues, create(heldAsValues, { w: 5n, s: { a: 1, b: [true, "x"] } } as never));
    agree(required, create(required, { x: 3 }));
    agree(required, create(required, {}));
    agree(group, create(group, { g: { y: 4 } } as never));
    agree(intKeys, create(intKeys, { m: { 3: "a", 1: "b" } } as never));
  });
});

describe("a review's cases", () => {
  const registry = createFileRegistry(
    create(FileDescriptorProtoSchema, {
      name: "review.proto",
      package: "rv",
      syntax: "proto3",
      messageType: [
        { name: "Kid", field: [{ name: "n", number: 1, type: Type.INT32, label: Label.OPTIONAL }] },
        {
          name: "Other",
          field: [{ name: "n", number: 1, type: Type.INT32, label: Label.OPTIONAL }],
        },
        {
          name: "M",
          field: [
            {
              name: "kid",
              number: 1,
              type: Type.MESSAGE,
              typeName: ".rv.Kid",
              label: Label.OPTIONAL,
            },
            {
              name: "ckid",
              number: 2,
              type: Type.MESSAGE,
              typeName: ".rv.Kid",
              label: Label.OPTIONAL,
              oneofIndex: 0,
            },
            { name: "cnum", number: 3, type: Type.INT32, label: Label.OPTIONAL, oneofIndex: 0 },
            {
              name: "self",
              number: 4,
              type: Type.MESSAGE,
              typeName: ".rv.M",
              label: Label.OPTIONAL,
            },
            { name: "big", number: 268435456, type: Type.INT32, label: Label.OPTIONAL },
            { name: "top", number: 536870911, type: Type.STRING, label: Label.OPTIONAL },
          ],
          oneofDecl: [{ name: "c" }],
        },
      ],
    } as never),
    () => undefined,
  );
  const M = registry.getMessage("rv.M") as DescMessage;
  const Kid = registry.getMessage("rv.Kid") as DescMessage;
  const Other = registry.getMessage("rv.Other") as DescMessage;
  const raw = (init: Record<string, unknown>) =>
    Object.assign(create(M), init) as unknown as Message;

  it("writes tags of field numbers up to 2^29 - 1 unsigned", () => {
    const m = create(M, { big: 1, top: "a" } as never);
    agree(M, m);
    expect(encodePlanned(M, m)).toBeDefined();
  });

  it("leaves to toBinary a message of another type, a plain object, and a case without a value", () => {
    for (const m of [
      raw({ kid: create(Other, { n: 7 } as never) }),
      raw({ kid: { n: 7 } }),
      raw({ c: { case: "cnum", value: undefined } }),
      raw({ c: { case: "ckid", value: undefined } }),
    ]) {
      expect(encodePlanned(M, m)).toBeUndefined();
      agree(M, m, false);
    }
    expect(encodePlanned(Kid, create(Other, { n: 7 } as never))).toBeUndefined();
  });

  it("encodes inside an encoding (a getter that encodes) and nests as deep as toBinary", () => {
    const inner = create(Kid, { n: 5 } as never);
    const m = raw({ cnum: 1 });
    Object.defineProperty(m, "kid", {
      enumerable: true,
      get: () => {
        encodeMessage(Kid, create(Kid, { n: 9 } as never));
        return inner;
      },
    });
    agree(M, m);
    for (const depth of [50, 150]) {
      let nested = create(M, { cnum: 1 } as never);
      for (let i = 0; i < depth; i++) nested = create(M, { self: nested } as never);
      agree(M, nested, depth <= 100);
      expect(encodePlanned(M, nested) === undefined, `depth ${depth}`).toBe(depth > 100);
    }
  });
});
