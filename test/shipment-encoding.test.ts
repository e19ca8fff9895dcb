/**
 * The shipper's direct encoding of a ShipEvents request (encodeShipment) against protobuf-es:
 * for rows with every kind of field value (no amount, zero, negative and beyond 2^53 amounts,
 * multi-byte text, long fields, integers as numbers or bigints) and for the empty shipment,
 * the bytes are exactly those toBinary writes for the same request, and decode to it. (That
 * the shipper's raw read puts the columns in tuple order, central's hash check of every shipped
 * event proves: test/event-shipper.test.ts.)
 */
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { ShipEventsRequestSchema } from "../gen/governance/v1/sync_pb.js";
import {
  encodeShipment,
  type ShipmentHeader,
  shippableTupleOf,
} from "../src/sync/shipment-encoding.js";
import { type ShippableRow, shippedEventOf } from "../src/sync/shipped-event.js";

const HASH = "ab".repeat(32);

function row(seq: number, over: Partial<ShippableRow> = {}): ShippableRow {
  return {
    seq,
    time_ms: 1_764_633_600_000 + seq,
    lever: "risk",
    action: "RESERVE",
    subject: "ENGINE_1",
    amount: 10_000,
    ok: 1,
    reason: "within caps",
    actor: "bench",
    correlation_id: `c-${seq}`,
    reservation_id: `r-${seq}`,
    metadata: '{"ttl_ms":60000}',
    hash: HASH,
    denial_counted: 0,
    ...over,
  };
}

function header(over: Partial<ShipmentHeader> = {}): ShipmentHeader {
  return {
    sidecarId: "sidecar-a",
    headSeq: 12,
    headHash: HASH,
    outboxEvents: 12,
    outboxOldestMs: 250,
    prevHash: "cd".repeat(32),
    ...over,
  };
}

/** What protobuf-es writes for the same request. */
function reference(h: ShipmentHeader, rows: ShippableRow[]): Uint8Array {
  return toBinary(
    ShipEventsRequestSchema,
    create(ShipEventsRequestSchema, {
      ...h,
      headSeq: BigInt(h.headSeq),
      outboxEvents: BigInt(h.outboxEvents),
      outboxOldestMs: BigInt(h.outboxOldestMs),
      events: rows.map(shippedEventOf),
    }),
  );
}

describe("encodeShipment", () => {
  it("writes the bytes protobuf-es writes, for every kind of field value", () => {
    const rows: ShippableRow[] = [
      row(1),
      row(2, { action: "DENY", ok: 0, amount: null, denial_counted: 1, reservation_id: "" }),
      row(3, { amount: 0, reason: "", metadata: "" }),
      row(4, { amount: -1_500_000, action: "SETTLE" }),
      row(5, { amount: 2n ** 60n + 7n, seq: 5n, time_ms: 1_764_633_600_005n, ok: 1n }),
      row(6, { amount: -(2n ** 62n), denial_counted: null }),
      row(7, { reason: "prüfung ✓ 🚀 über Grenzwert", subject: "ÉNGINE", metadata: "{}" }),
      row(8, { reason: "x".repeat(4096), metadata: JSON.stringify({ note: "y".repeat(20_000) }) }),
      row(200, { lever: "kpi", action: "KPI", subject: "BENCH/success_rate", amount: null }),
    ];
    const h = header({ headSeq: 200, outboxEvents: 300_000, outboxOldestMs: 90_000_000 });
    const bytes = encodeShipment(h, rows.map(shippableTupleOf));
    expect(Buffer.from(bytes).equals(Buffer.from(reference(h, rows)))).toBe(true);
    const decoded = fromBinary(ShipEventsRequestSchema, bytes);
    expect(decoded.events).toHaveLength(rows.length);
    expect(decoded.events[3]?.amount).toBe(-1_500_000n);
    expect(decoded.events[4]?.amount).toBe(2n ** 60n + 7n);
    expect(decoded.events[6]?.reason).toBe("prüfung ✓ 🚀 über Grenzwert");
    expect(decoded.events[1]?.denialCounted).toBe(true);
    expect(decoded.events[2]?.amount).toBe(0n);
    expect(decoded.events[1]?.amount).toBeUndefined();
  });

  it("writes the empty shipment (a question of what central holds) as protobuf-es does", () => {
    for (const h of [
      header({ headSeq: 0, headHash: "", outboxEvents: 0, outboxOldestMs: 0, prevHash: "" }),
      header(),
    ]) {
      const bytes = encodeShipment(h, []);
      expect(Buffer.from(bytes).equals(Buffer.from(reference(h, [])))).toBe(true);
    }
  });

  it("writes a full batch of 500 events as protobuf-es does", () => {
    const rows = Array.from({ length: 500 }, (_, i) =>
      row(1_000_000 + i, i % 2 ? { action: "SETTLE", amount: i * 997 } : {}),
    );
    const h = header({ headSeq: 1_000_499 });
    expect(
      Buffer.from(encodeShipment(h, rows.map(shippableTupleOf))).equals(
        Buffer.from(reference(h, rows)),
      ),
    ).toBe(true);
  });
});
