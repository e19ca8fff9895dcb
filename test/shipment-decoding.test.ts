/**
 * Central's direct decoding of a ShipEvents request (decodeShipment) against protobuf-es's
 * `fromBinary`, by property: for generated requests (every field, int64 values across their
 * range, an absent or present amount, text of any code point), the two give equal messages;
 * unknown fields are skipped; and for the same bytes cut short, flipped or padded, whenever
 * `fromBinary` refuses them decodeShipment refuses them too, and whenever it accepts them the
 * two agree. A field added to sync.proto and not to the decoder fails the first property.
 */
import { create, fromBinary, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ShipEventsRequestSchema, type ShippedEventSchema } from "../gen/governance/v1/sync_pb.js";
import { decodeShipment } from "../src/sync/shipment-decoding.js";

const int64 = fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n });
/** Text of any code point, and ASCII at the edge of UTF-8 (0x7f, 0x80) that the decoder slices. */
const text = fc.oneof(
  fc.string({ unit: "grapheme", maxLength: 40 }),
  fc.string({
    unit: fc.integer({ min: 0, max: 0x80 }).map((c) => String.fromCharCode(c)),
    maxLength: 40,
  }),
);

const event: fc.Arbitrary<MessageInitShape<typeof ShippedEventSchema>> = fc.record(
  {
    seq: int64,
    timeMs: int64,
    lever: text,
    action: text,
    subject: text,
    amount: fc.option(int64, { nil: undefined }),
    ok: fc.boolean(),
    reason: text,
    actor: text,
    correlationId: text,
    reservationId: text,
    metadataJson: text,
    hash: text,
    denialCounted: fc.boolean(),
  },
  { requiredKeys: [] },
);

const request = fc.record(
  {
    sidecarId: text,
    events: fc.array(event, { maxLength: 6 }),
    headSeq: int64,
    headHash: text,
    outboxEvents: int64,
    outboxOldestMs: int64,
    prevHash: text,
  },
  { requiredKeys: [] },
);

const encoded = request.map((r) =>
  toBinary(ShipEventsRequestSchema, create(ShipEventsRequestSchema, r)),
);

/** The outcome of a decoder: its message, or that it refused the bytes. */
function outcome(decode: () => unknown): { ok: true; message: unknown } | { ok: false } {
  try {
    return { ok: true, message: decode() };
  } catch {
    return { ok: false };
  }
}

/** A message without the unknown fields `fromBinary` keeps (the decoder skips them). */
function known(message: unknown): unknown {
  return JSON.parse(
    JSON.stringify(message, (key, value) =>
      key === "$unknown" ? undefined : typeof value === "bigint" ? `${value}n` : value,
    ),
  );
}

describe("decodeShipment", () => {
  it("decodes every request as fromBinary does", () => {
    fc.assert(
      fc.property(encoded, (bytes) => {
        const expected = fromBinary(ShipEventsRequestSchema, bytes);
        expect(decodeShipment(bytes)).toStrictEqual(expected);
        // gRPC hands the decoder a Buffer, whose ASCII strings it slices directly.
        expect(decodeShipment(Buffer.from(bytes))).toStrictEqual(expected);
      }),
      { numRuns: 500 },
    );
  });

  it("skips unknown fields, at the top and in an event", () => {
    const withEvent = toBinary(
      ShipEventsRequestSchema,
      create(ShipEventsRequestSchema, { sidecarId: "a", events: [{ seq: 3n, amount: 7n }] }),
    );
    // Field 99 as a varint and field 98 as bytes, after the request and inside its event.
    const unknown = [0x98, 0x06, 0x05, 0x92, 0x06, 0x02, 0x41, 0x42];
    const eventAt = withEvent.indexOf(0x12);
    const eventLength = withEvent[eventAt + 1] as number;
    const bytes = new Uint8Array([
      ...withEvent.slice(0, eventAt),
      0x12,
      eventLength + unknown.length,
      ...withEvent.slice(eventAt + 2),
      ...unknown,
      ...unknown,
    ]);
    const decoded = decodeShipment(bytes);
    expect(decoded.events[0]?.seq).toBe(3n);
    expect(decoded.events[0]?.amount).toBe(7n);
    expect(known(decoded)).toEqual(known(fromBinary(ShipEventsRequestSchema, bytes)));
  });

  it("refuses what fromBinary refuses, and agrees with it on what it accepts", () => {
    const damaged = fc
      .tuple(
        encoded,
        fc.nat(),
        // Any byte, and often those at ASCII's edge and UTF-8's (a lone continuation byte).
        fc.oneof(fc.nat({ max: 255 }), fc.constantFrom(0x7f, 0x80, 0xbf, 0xc2, 0xff)),
        fc.constantFrom("cut", "flip", "pad"),
      )
      .map(([bytes, at, value, how]) => {
        const i = bytes.length === 0 ? 0 : at % bytes.length;
        if (how === "cut") return bytes.slice(0, i);
        const copy = new Uint8Array([...bytes, ...(how === "pad" ? [value] : [])]);
        if (how === "flip" && copy.length > 0) copy[i] = value;
        return copy;
      });
    fc.assert(
      fc.property(damaged, (bytes) => {
        const theirs = outcome(() => fromBinary(ShipEventsRequestSchema, bytes));
        for (const given of [bytes, Buffer.from(bytes)]) {
          const ours = outcome(() => decodeShipment(given));
          expect(ours.ok).toBe(theirs.ok);
          if (ours.ok && theirs.ok) expect(known(ours.message)).toEqual(known(theirs.message));
        }
      }),
      { numRuns: 2000 },
    );
  });
});
