/**
 * decodeMessage (src/server/message-decoding.ts) gives fromBinary's message, or its error, for
 * encodings of generated messages of every type of our schema and of run-time types with every
 * scalar type, repeated form, map and oneof; for the same bytes damaged (flipped, cut, spliced);
 * and for encodings a writer other than ours may send (unpacked lists, fields repeated, merged
 * messages, overlong varints, unknown fields, a byte-order mark, invalid UTF-8).
 */
import { create, type DescMessage, fromBinary, type Message, toBinary } from "@bufbuild/protobuf";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ReserveRequestSchema } from "../gen/governance/v1/risk_pb.js";
import { decodeMessage, decodePlanned, readPlanOf } from "../src/server/message-decoding.js";
import { messageOf } from "./support/message-arbitrary.js";
import { OUR_TYPES, runtimeTypes } from "./support/schema-types.js";

/** decodeMessage and fromBinary agree: the same message, or both throw. */
function agree(schema: DescMessage, bytes: Uint8Array): Message | undefined {
  let expected: Message | undefined;
  try {
    expected = fromBinary(schema, bytes);
  } catch {
    expect(() => decodeMessage(schema, bytes)).toThrow();
    return undefined;
  }
  expect(decodeMessage(schema, bytes)).toStrictEqual(expected);
  return expected;
}

/** A message's encoding, if toBinary takes it. */
function encoded(schema: DescMessage, m: Message): Buffer | undefined {
  try {
    return Buffer.from(toBinary(schema, m));
  } catch {
    return undefined;
  }
}

/** The bytes damaged: a byte changed, cut short, or bytes put in. */
const damage = (bytes: Buffer) =>
  fc.oneof(
    fc.record({ at: fc.nat(), to: fc.integer({ min: 0, max: 255 }) }).map(({ at, to }) => {
      const b = Buffer.from(bytes);
      if (b.length > 0) b[at % b.length] = to;
      return b;
    }),
    fc.nat().map((n) => bytes.subarray(0, bytes.length === 0 ? 0 : n % bytes.length)),
    fc.tuple(fc.nat(), fc.uint8Array({ minLength: 1, maxLength: 12 })).map(([at, put]) => {
      const i = bytes.length === 0 ? 0 : at % bytes.length;
      return Buffer.concat([bytes.subarray(0, i), put, bytes.subarray(i)]);
    }),
  );

const PROTO3 = runtimeTypes("proto3");
/** Its enum is closed (proto2): values it does not define become unknown fields, fromBinary's. */
const PROTO2 = runtimeTypes("proto2");

describe("messages decoded without protobuf-es's reader", () => {
  it("cover every type of our schema and the run-time ones with open enums", () => {
    for (const t of [...OUR_TYPES, PROTO3]) expect(readPlanOf(t), t.typeName).not.toBeNull();
    expect(readPlanOf(PROTO2)).toBeNull();
  });

  it.each([...OUR_TYPES, PROTO3, PROTO2].map((t) => [`${t.file.name} ${t.typeName}`, t] as const))(
    "match fromBinary on %s, whole and damaged",
    (_, schema) => {
      fc.assert(
        fc.property(
          messageOf(schema).chain((m) => {
            const bytes = encoded(schema, m) ?? Buffer.alloc(0);
            return fc.tuple(fc.constant(bytes), damage(bytes));
          }),
          ([bytes, damaged]) => {
            agree(schema, bytes);
            // Whole encodings are the plan's own (where the type has one).
            if (readPlanOf(schema)) {
              expect(decodePlanned(schema, bytes), "decoded by the plan").toStrictEqual(
                fromBinary(schema, bytes),
              );
            }
            agree(schema, damaged);
          },
        ),
        { numRuns: 120 },
      );
    },
  );
});

describe("encodings from other writers", () => {
  const schema = runtimeTypes("proto3");
  const hex = (h: string) => Buffer.from(h.replace(/ /g, ""), "hex");

  it("reads them as fromBinary does", () => {
    // s_int32 is field 5 (varint), r_int32 105, s_string 9, child 303, choice 307-309,
    // names (map<string, uint64>) 305.
    for (const bytes of [
      hex("28 01 28 02"), // a scalar twice: the last wins
      hex("28 ff ff ff ff ff ff ff ff ff 01"), // -1 as int32, ten bytes
      hex("28 ff ff ff ff 0f"), // the same in five
      hex("28 80 00"), // a non-minimal varint
      hex("40 80 80 80 80 10"), // a bool whose only set bit is past 32
      hex("c8 06 01 c8 06 02 ca 06 02 03 04"), // r_int32 unpacked, then packed
      hex("fa 12 02 28 01 fa 12 02 20 01"), // child twice: merged
      hex("9a 13 01 41 a8 13 05 9a 13 01 42"), // the oneof switching case
      hex("8a 13 05 0a 01 6b 10 07 8a 13 03 0a 01 6b 8a 13 02 10 09"), // map: repeated key, missing key
      hex("4a 06 ef bb bf 61 62 63"), // a string with a byte-order mark
    ]) {
      agree(schema, bytes);
      expect(decodePlanned(schema, bytes), bytes.toString("hex")).toBeDefined();
    }
    for (const bytes of [
      hex("4a 02 c3 28"), // invalid UTF-8
      hex("f8 3e 01"), // an unknown field
      hex("2d 01 00 00 00"), // a field with another wire type than its own
      hex("28"), // cut inside a value
      hex("4a 05 61"), // a length past the end
      hex("4a 02 61"), // a length one past the end
      hex("9a 13 02 41"), // the same in a oneof
      hex("28 ff ff ff ff ff ff ff ff ff ff 01"), // a varint of eleven bytes
      hex("a8 80 80 80 00 01"), // a tag of five bytes
      hex("a8 80 80 80 80 00 01"), // a tag of six bytes: BinaryReader's illegal tag
      hex("a8 80 80 80 10 01"), // a tag of five bytes past 32 bits: the same
      hex("8a 13 07 8a 80 80 80 10 01 6b"), // the same inside a map entry
      hex("00 01"), // field number 0
    ]) {
      agree(schema, bytes);
    }
  });

  it("leaves a message with unknown fields to fromBinary, which keeps them", () => {
    const request = Buffer.concat([
      Buffer.from(toBinary(ReserveRequestSchema, create(ReserveRequestSchema, { engine: "E" }))),
      hex("f8 3e 01"),
    ]);
    expect(decodePlanned(ReserveRequestSchema, request)).toBeUndefined();
    const m = agree(ReserveRequestSchema, request);
    expect(m?.$unknown).toHaveLength(1);
  });
});
