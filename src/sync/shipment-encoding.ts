/**
 * A ShipEvents request encoded straight from the sidecar's audit rows into one buffer: the
 * shipper's hot path. Building protobuf-es messages from the rows and encoding them by
 * reflection (`create`, then `toBinary`) was most of the shipper's CPU on a busy sidecar (a
 * copy of every event, and a small array per string); this writes each field once, in place,
 * from rows read as arrays (`SHIPPED_COLUMNS`, better-sqlite3's raw mode: no object per row).
 * The bytes are exactly those `toBinary(ShipEventsRequestSchema, ...)` writes for the same
 * request (test/shipment-encoding.test.ts compares them), so central decodes it as before;
 * a field added to ShippedEvent or ShipEventsRequest in sync.proto must be added here too
 * (the test fails until it is).
 */
import type { ShippableRow } from "./shipped-event.js";

/** The audit_event columns a shipment carries, in the order of a `ShippableTuple`. */
export const SHIPPED_COLUMNS =
  "seq, time_ms, lever, action, subject, amount, ok, reason, actor, correlation_id, reservation_id, metadata, hash, denial_counted";

/** An audit row as read with `SELECT ${SHIPPED_COLUMNS}` in raw mode. */
export type ShippableTuple = [
  seq: number | bigint,
  timeMs: number | bigint,
  lever: string,
  action: string,
  subject: string,
  amount: number | bigint | null,
  ok: number | bigint,
  reason: string,
  actor: string,
  correlationId: string,
  reservationId: string,
  metadata: string,
  hash: string,
  denialCounted: number | bigint | null,
];

/** The tuple of an audit row read as an object. */
export function shippableTupleOf(r: ShippableRow): ShippableTuple {
  return [
    r.seq,
    r.time_ms,
    r.lever,
    r.action,
    r.subject,
    r.amount,
    r.ok,
    r.reason,
    r.actor,
    r.correlation_id,
    r.reservation_id,
    r.metadata,
    r.hash,
    r.denial_counted ?? null,
  ];
}

/** The fields of a ShipEvents request besides its events. */
export interface ShipmentHeader {
  sidecarId: string;
  headSeq: number;
  headHash: string;
  outboxEvents: number;
  outboxOldestMs: number;
  prevHash: string;
}

const VARINT = 0;
const LEN = 2;
const TWO_7 = 128;

/** An int64 as its unsigned 64-bit varint value: a number when it is safe, else a bigint. */
function u64(v: number | bigint): number | bigint {
  if (typeof v === "number" && v >= 0 && Number.isSafeInteger(v)) return v;
  const u = BigInt.asUintN(64, BigInt(v));
  return u <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(u) : u;
}

function varintSize(v: number | bigint): number {
  let size = 1;
  if (typeof v === "number") {
    for (let n = v; n >= TWO_7; n = Math.floor(n / TWO_7)) size++;
  } else {
    for (let n = v; n >= 128n; n >>= 7n) size++;
  }
  return size;
}

/** A field's tag and length prefix and the string's UTF-8 bytes (0: an empty string, omitted). */
function stringSize(tagSize: number, bytes: number): number {
  return bytes === 0 ? 0 : tagSize + varintSize(bytes) + bytes;
}

/** Writes varints and strings into a buffer sized beforehand. */
class Cursor {
  pos = 0;
  constructor(readonly buf: Buffer) {}

  varint(v: number | bigint): void {
    const buf = this.buf;
    if (typeof v === "number") {
      let n = v;
      while (n >= TWO_7) {
        buf[this.pos++] = (n % TWO_7) | TWO_7;
        n = Math.floor(n / TWO_7);
      }
      buf[this.pos++] = n;
      return;
    }
    let n = v;
    while (n >= 128n) {
      buf[this.pos++] = Number(n & 127n) | TWO_7;
      n >>= 7n;
    }
    buf[this.pos++] = Number(n);
  }

  tag(field: number, wire: number): void {
    this.varint(field * 8 + wire);
  }

  /** An int64 field (omitted when 0 unless `always`: an `optional` field that is set). */
  int64(field: number, v: number | bigint, always = false): void {
    if (v === 0 && !always) return;
    this.tag(field, VARINT);
    this.varint(v);
  }

  bool(field: number, v: boolean): void {
    if (!v) return;
    this.tag(field, VARINT);
    this.buf[this.pos++] = 1;
  }

  string(field: number, s: string, bytes: number): void {
    if (bytes === 0) return;
    this.tag(field, LEN);
    this.varint(bytes);
    this.pos += this.buf.write(s, this.pos, bytes, "utf8");
  }
}

/** One event's varint values and string lengths, measured before it is written. */
interface MeasuredEvent {
  row: ShippableTuple;
  seq: number | bigint;
  time: number | bigint;
  amount: number | bigint | undefined;
  ok: boolean;
  denialCounted: boolean;
  /** UTF-8 bytes of lever, action, subject, reason, actor, correlation id, reservation id, metadata, hash. */
  lengths: number[];
  size: number;
}

/** The string fields of ShippedEvent in field order (3-5, 8-13), with their tuple indexes. */
const STRING_FIELDS = [
  [3, 2],
  [4, 3],
  [5, 4],
  [8, 7],
  [9, 8],
  [10, 9],
  [11, 10],
  [12, 11],
  [13, 12],
] as const;

function measure(row: ShippableTuple): MeasuredEvent {
  const seq = u64(row[0]);
  const time = u64(row[1]);
  const amount = row[5] === null ? undefined : u64(row[5]);
  const ok = Number(row[6]) === 1;
  const denialCounted = Number(row[13] ?? 0) === 1;
  let size = (seq === 0 ? 0 : 1 + varintSize(seq)) + (time === 0 ? 0 : 1 + varintSize(time));
  size += amount === undefined ? 0 : 1 + varintSize(amount);
  size += (ok ? 2 : 0) + (denialCounted ? 2 : 0);
  const lengths: number[] = [];
  for (const [, column] of STRING_FIELDS) {
    const bytes = Buffer.byteLength(row[column], "utf8");
    lengths.push(bytes);
    size += stringSize(1, bytes);
  }
  return { row, seq, time, amount, ok, denialCounted, lengths, size };
}

function writeEvent(out: Cursor, e: MeasuredEvent): void {
  const len = (i: number) => e.lengths[i] as number;
  out.int64(1, e.seq);
  out.int64(2, e.time);
  for (let i = 0; i < 3; i++) {
    const [field, column] = STRING_FIELDS[i] as (typeof STRING_FIELDS)[number];
    out.string(field, e.row[column], len(i));
  }
  if (e.amount !== undefined) out.int64(6, e.amount, true);
  out.bool(7, e.ok);
  for (let i = 3; i < STRING_FIELDS.length; i++) {
    const [field, column] = STRING_FIELDS[i] as (typeof STRING_FIELDS)[number];
    out.string(field, e.row[column], len(i));
  }
  out.bool(14, e.denialCounted);
}

/** The ShipEvents request of `rows` (consecutive audit rows, oldest first) under `header`. */
export function encodeShipment(header: ShipmentHeader, rows: readonly ShippableTuple[]): Buffer {
  const events = rows.map(measure);
  const sidecarId = Buffer.byteLength(header.sidecarId, "utf8");
  const headHash = Buffer.byteLength(header.headHash, "utf8");
  const prevHash = Buffer.byteLength(header.prevHash, "utf8");
  const headSeq = u64(header.headSeq);
  const outboxEvents = u64(header.outboxEvents);
  const outboxOldest = u64(header.outboxOldestMs);
  let size = stringSize(1, sidecarId) + stringSize(1, headHash) + stringSize(1, prevHash);
  for (const v of [headSeq, outboxEvents, outboxOldest]) size += v === 0 ? 0 : 1 + varintSize(v);
  for (const e of events) size += 1 + varintSize(e.size) + e.size;
  const out = new Cursor(Buffer.allocUnsafe(size));
  out.string(1, header.sidecarId, sidecarId);
  for (const e of events) {
    out.tag(2, LEN);
    out.varint(e.size);
    writeEvent(out, e);
  }
  out.int64(3, headSeq);
  out.string(4, header.headHash, headHash);
  out.int64(5, outboxEvents);
  out.int64(6, outboxOldest);
  out.string(7, header.prevHash, prevHash);
  if (out.pos !== size) {
    throw new Error(`a shipment encoded to ${out.pos} bytes, ${size} expected (an encoding bug)`);
  }
  return out.buf;
}
