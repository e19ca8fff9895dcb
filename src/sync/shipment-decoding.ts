/**
 * A ShipEvents request decoded on central without reflection: ingest's hot path, the mirror of
 * shipment-encoding.ts. protobuf-es's `fromBinary` finds each field by number through the
 * schema and sets it through a reflection wrapper, which cost central about as much as the
 * rest of a shipment's ingest; this reads the same bytes with protobuf-es's own BinaryReader
 * into the same plain message objects. Unknown fields are skipped (central never re-encodes a
 * shipment), and anything `fromBinary` would refuse is refused: test/shipment-decoding.test.ts
 * checks both against `fromBinary` on generated and truncated requests. A field added to
 * ShippedEvent or ShipEventsRequest in sync.proto must be added here too (that test fails
 * until it is).
 */
import type { MessageShape } from "@bufbuild/protobuf";
import { BinaryReader } from "@bufbuild/protobuf/wire";
import type {
  ShipEventsRequestSchema,
  ShippedEventSchema,
} from "../../gen/governance/v1/sync_pb.js";

type ShipEventsRequest = MessageShape<typeof ShipEventsRequestSchema>;
type ShippedEvent = MessageShape<typeof ShippedEventSchema>;

/** Nesting allowed at most, as `fromBinary`'s default recursion limit. */
const RECURSION_LIMIT = 100;

/** An int64 as a bigint (BinaryReader gives a string only where BigInt is missing). */
function int64(r: BinaryReader): bigint {
  const v = r.int64();
  return typeof v === "bigint" ? v : BigInt(v);
}

/** protobuf-es's reader with a faster string field for what shipments hold. */
class ShipmentReader extends BinaryReader {
  /**
   * A string field. ASCII (names, ids, hashes, most metadata) is sliced from the request's
   * bytes at once, the same text the UTF-8 decoder gives for it; anything else, and bytes that
   * are not a Buffer, go through `string(true)` as before (invalid UTF-8 is refused there).
   */
  text(): string {
    const buf = this.buf;
    const at = this.pos;
    const length = this.uint32();
    const from = this.pos;
    const to = from + length;
    if (to <= this.len && Buffer.isBuffer(buf)) {
      let ascii = true;
      for (let i = from; i < to; i++) {
        if ((buf[i] as number) > 0x7f) {
          ascii = false;
          break;
        }
      }
      if (ascii) {
        this.pos = to;
        return buf.toString("latin1", from, to);
      }
    }
    this.pos = at;
    return this.string(true);
  }
}

/** One ShippedEvent, from the reader's position to `end`. */
function decodeEvent(r: ShipmentReader, end: number): ShippedEvent {
  const e: ShippedEvent = {
    $typeName: "governance.v1.ShippedEvent",
    seq: 0n,
    timeMs: 0n,
    lever: "",
    action: "",
    subject: "",
    ok: false,
    reason: "",
    actor: "",
    correlationId: "",
    reservationId: "",
    metadataJson: "",
    hash: "",
    denialCounted: false,
  };
  while (r.pos < end) {
    // As `fromBinary`, a known field is read by its declared type whatever the wire type says.
    const [no, wireType] = r.tag();
    switch (no) {
      case 1:
        e.seq = int64(r);
        break;
      case 2:
        e.timeMs = int64(r);
        break;
      case 3:
        e.lever = r.text();
        break;
      case 4:
        e.action = r.text();
        break;
      case 5:
        e.subject = r.text();
        break;
      case 6:
        e.amount = int64(r);
        break;
      case 7:
        e.ok = r.bool();
        break;
      case 8:
        e.reason = r.text();
        break;
      case 9:
        e.actor = r.text();
        break;
      case 10:
        e.correlationId = r.text();
        break;
      case 11:
        e.reservationId = r.text();
        break;
      case 12:
        e.metadataJson = r.text();
        break;
      case 13:
        e.hash = r.text();
        break;
      case 14:
        e.denialCounted = r.bool();
        break;
      default:
        r.skip(wireType, no, RECURSION_LIMIT - 2);
    }
  }
  return e;
}

/** Decodes a ShipEvents request as `fromBinary(ShipEventsRequestSchema, bytes)` would. */
export function decodeShipment(bytes: Uint8Array): ShipEventsRequest {
  const r = new ShipmentReader(bytes);
  const m: ShipEventsRequest = {
    $typeName: "governance.v1.ShipEventsRequest",
    sidecarId: "",
    events: [],
    headSeq: 0n,
    headHash: "",
    outboxEvents: 0n,
    outboxOldestMs: 0n,
    prevHash: "",
  };
  while (r.pos < r.len) {
    const [no, wireType] = r.tag();
    switch (no) {
      case 1:
        m.sidecarId = r.text();
        break;
      case 2: {
        const length = r.uint32();
        m.events.push(decodeEvent(r, r.pos + length));
        break;
      }
      case 3:
        m.headSeq = int64(r);
        break;
      case 4:
        m.headHash = r.text();
        break;
      case 5:
        m.outboxEvents = int64(r);
        break;
      case 6:
        m.outboxOldestMs = int64(r);
        break;
      case 7:
        m.prevHash = r.text();
        break;
      default:
        r.skip(wireType, no, RECURSION_LIMIT - 1);
    }
  }
  return m;
}
