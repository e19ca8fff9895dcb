/**
 * The scalar values of protobuf's binary encoding, measured and then written into one Buffer,
 * as protobuf-es's BinaryWriter writes them (message-encoding.ts runs them per field). A value
 * the writer would refuse (an int32 out of range, a float past float32, a 64-bit integer out of
 * range) throws NotPlanned, so that `toBinary` encodes the message and gives its own error.
 */
import { ScalarType } from "@bufbuild/protobuf";

const EMPTY = Buffer.alloc(0);

/** A message's lengths, measured in the order its writing needs them, then its bytes. */
export class Encoding {
  /** Lengths measured (kept between messages, so the array is not grown again each time). */
  lens: number[] = [];
  count = 0;
  next = 0;
  /** How deep the message being measured is nested. */
  depth = 0;
  buf: Buffer = EMPTY;
  pos = 0;

  /** Ready for the next message (one Encoding serves every call: encoding never yields). */
  reset(): void {
    // A long message's lengths are not kept for the life of the process.
    if (this.lens.length > 4_096) this.lens = [];
    this.count = 0;
    this.next = 0;
    this.depth = 0;
    this.buf = EMPTY;
    this.pos = 0;
  }

  /** A place for the next length measured. */
  slot(): number {
    if (this.count === this.lens.length) this.lens.push(0);
    return this.count++;
  }

  /** The next length measured, in writing order. */
  taken(): number {
    return this.lens[this.next++] as number;
  }

  varint(v: number): void {
    const buf = this.buf;
    while (v > 0x7f) {
      buf[this.pos++] = (v & 0x7f) | 0x80;
      v >>>= 7;
    }
    buf[this.pos++] = v;
  }

  /** An unsigned 64-bit varint from its low and high 32 bits. */
  varint64(lo: number, hi: number): void {
    const buf = this.buf;
    while (hi !== 0 || lo > 0x7f) {
      buf[this.pos++] = (lo & 0x7f) | 0x80;
      lo = ((lo >>> 7) | (hi << 25)) >>> 0;
      hi >>>= 7;
    }
    buf[this.pos++] = lo;
  }
}

/** A value the plan cannot encode as `toBinary` would: `toBinary` takes the whole message. */
export class NotPlanned extends Error {}

/** Wire types. */
export const VARINT = 0;
export const BIT64 = 1;
export const DELIMITED = 2;
export const BIT32 = 5;

/** Field presence: implicit (proto3 singular scalars, set when not zero), and proto2 required. */
export const IMPLICIT = 2;
export const LEGACY_REQUIRED = 3;

/** The bytes of an unsigned 32-bit varint. */
export function varintSize(v: number): number {
  return v < 0x80 ? 1 : v < 0x4000 ? 2 : v < 0x200000 ? 3 : v < 0x10000000 ? 4 : 5;
}

function varint64Size(lo: number, hi: number): number {
  if (hi === 0) return varintSize(lo);
  return Math.ceil((64 - Math.clz32(hi)) / 7);
}

/** A scalar's wire type. */
export function wireTypeOf(type: ScalarType): number {
  switch (type) {
    case ScalarType.STRING:
    case ScalarType.BYTES:
      return DELIMITED;
    case ScalarType.DOUBLE:
    case ScalarType.FIXED64:
    case ScalarType.SFIXED64:
      return BIT64;
    case ScalarType.FLOAT:
    case ScalarType.FIXED32:
    case ScalarType.SFIXED32:
      return BIT32;
    default:
      return VARINT;
  }
}

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const UINT64_MAX = 2n ** 64n - 1n;
const FLOAT32_MAX = 3.4028234663852886e38;

/** A 64-bit integer as toBinary takes it (bigint, or digits in a string or a number). */
function int64Of(value: unknown, unsigned: boolean): bigint {
  let v: bigint;
  if (typeof value === "bigint") v = value;
  else if (typeof value === "string" && /^-?[0-9]+$/.test(value)) v = BigInt(value);
  else if (typeof value === "number" && Number.isInteger(value)) v = BigInt(value);
  else throw new NotPlanned();
  if (unsigned ? v < 0n || v > UINT64_MAX : v < INT64_MIN || v > INT64_MAX) throw new NotPlanned();
  return v;
}

function int32Of(value: unknown): number {
  if (typeof value !== "number" || !Number.isInteger(value)) throw new NotPlanned();
  if (value > 0x7fffffff || value < -0x80000000) throw new NotPlanned();
  return value;
}

function uint32Of(value: unknown): number {
  if (typeof value !== "number" || !Number.isInteger(value)) throw new NotPlanned();
  if (value > 0xffffffff || value < 0) throw new NotPlanned();
  return value;
}

/** Low and high 32 bits of a 64-bit two's complement integer. */
function halves(v: bigint): [number, number] {
  const u = BigInt.asUintN(64, v);
  return [Number(u & 0xffffffffn), Number(u >> 32n)];
}

function zigzag64(v: bigint): bigint {
  return v >= 0n ? v << 1n : (-v << 1n) - 1n;
}

/** Strings up to this many UTF-16 units are measured and, when ASCII, copied in JS. */
const SHORT = 64;

/** A short string's UTF-8 length: its length when ASCII, else Node's count. */
function asciiLength(text: string): number {
  for (let i = 0; i < text.length; i++) {
    if (text.charCodeAt(i) > 0x7f) return Buffer.byteLength(text, "utf8");
  }
  return text.length;
}

/** The bytes of one scalar value (no tag), measured; strings and bytes push their length. */
export function scalarSize(type: ScalarType, value: unknown, e: Encoding): number {
  switch (type) {
    case ScalarType.STRING: {
      if (typeof value !== "string") throw new NotPlanned();
      const n = value.length <= SHORT ? asciiLength(value) : Buffer.byteLength(value, "utf8");
      e.lens[e.slot()] = n;
      return varintSize(n) + n;
    }
    case ScalarType.BYTES: {
      if (!(value instanceof Uint8Array)) throw new NotPlanned();
      return varintSize(value.byteLength) + value.byteLength;
    }
    case ScalarType.BOOL:
      return 1;
    case ScalarType.DOUBLE:
      if (typeof value !== "number") throw new NotPlanned();
      return 8;
    case ScalarType.FIXED64:
    case ScalarType.SFIXED64:
      int64Of(value, type === ScalarType.FIXED64);
      return 8;
    case ScalarType.FLOAT:
      if (typeof value !== "number") throw new NotPlanned();
      if (Number.isFinite(value) && (value > FLOAT32_MAX || value < -FLOAT32_MAX)) {
        throw new NotPlanned();
      }
      return 4;
    case ScalarType.FIXED32:
      uint32Of(value);
      return 4;
    case ScalarType.SFIXED32:
      int32Of(value);
      return 4;
    case ScalarType.INT32: {
      const v = int32Of(value);
      return v < 0 ? 10 : varintSize(v);
    }
    case ScalarType.UINT32:
      return varintSize(uint32Of(value));
    case ScalarType.SINT32: {
      const v = int32Of(value);
      return varintSize(((v << 1) ^ (v >> 31)) >>> 0);
    }
    case ScalarType.INT64:
    case ScalarType.UINT64: {
      const v = int64Of(value, type === ScalarType.UINT64);
      // Most values (revisions, seconds, milliseconds) fit 32 bits: no bigint arithmetic.
      return v >= 0n && v <= 0xffffffffn ? varintSize(Number(v)) : varint64Size(...halves(v));
    }
    case ScalarType.SINT64:
      return varint64Size(...halves(zigzag64(int64Of(value, false))));
  }
  throw new NotPlanned();
}

/** Writes one scalar value (no tag), measured before by `scalarSize`. */
export function writeScalar(type: ScalarType, value: unknown, e: Encoding): void {
  const buf = e.buf;
  switch (type) {
    case ScalarType.STRING: {
      const n = e.taken();
      const text = value as string;
      e.varint(n);
      if (n === text.length && n <= SHORT) {
        // ASCII (as many bytes as UTF-16 units): copied here, without a call into C++.
        let pos = e.pos;
        for (let i = 0; i < n; i++) buf[pos++] = text.charCodeAt(i);
        e.pos = pos;
      } else e.pos += buf.write(text, e.pos, n, "utf8");
      return;
    }
    case ScalarType.BYTES: {
      const bytes = value as Uint8Array;
      e.varint(bytes.byteLength);
      buf.set(bytes, e.pos);
      e.pos += bytes.byteLength;
      return;
    }
    case ScalarType.BOOL:
      buf[e.pos++] = value ? 1 : 0;
      return;
    case ScalarType.DOUBLE:
      e.pos = buf.writeDoubleLE(value as number, e.pos);
      return;
    case ScalarType.FLOAT:
      e.pos = buf.writeFloatLE(value as number, e.pos);
      return;
    case ScalarType.FIXED64:
    case ScalarType.SFIXED64:
      e.pos = buf.writeBigUInt64LE(
        BigInt.asUintN(64, int64Of(value, type === ScalarType.FIXED64)),
        e.pos,
      );
      return;
    case ScalarType.FIXED32:
      e.pos = buf.writeUInt32LE(value as number, e.pos);
      return;
    case ScalarType.SFIXED32:
      e.pos = buf.writeInt32LE(value as number, e.pos);
      return;
    case ScalarType.INT32: {
      const v = value as number;
      if (v >= 0) e.varint(v);
      else e.varint64(v >>> 0, 0xffffffff);
      return;
    }
    case ScalarType.UINT32:
      e.varint(value as number);
      return;
    case ScalarType.SINT32: {
      const v = value as number;
      e.varint(((v << 1) ^ (v >> 31)) >>> 0);
      return;
    }
    case ScalarType.INT64:
    case ScalarType.UINT64: {
      const v = int64Of(value, type === ScalarType.UINT64);
      if (v >= 0n && v <= 0xffffffffn) e.varint(Number(v));
      else e.varint64(...halves(v));
      return;
    }
    case ScalarType.SINT64:
      e.varint64(...halves(zigzag64(int64Of(value, false))));
      return;
  }
}

/** toBinary's zero value of an implicit-presence scalar (not written). */
export function isZero(type: ScalarType, v: unknown): boolean {
  switch (type) {
    case ScalarType.BOOL:
      return v === false;
    case ScalarType.STRING:
      return v === "";
    case ScalarType.BYTES:
      return v instanceof Uint8Array && v.byteLength === 0;
    case ScalarType.DOUBLE:
    case ScalarType.FLOAT:
      return Object.is(v, 0);
    default:
      // Loose, as toBinary's: 0, 0n and "0".
      // biome-ignore lint/suspicious/noDoubleEquals: the zero of every integer representation
      return v == 0;
  }
}
