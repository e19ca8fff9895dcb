/**
 * Reads protobuf's binary encoding as protobuf-es's BinaryReader reads it, for the read plans of
 * message-decoding.ts: the same values from the same bytes (32-bit varints keep their low 32
 * bits, as BinaryReader's do; int64 as bigint; strings through protobuf-es's own UTF-8 decoder
 * unless they are ASCII). Where BinaryReader would throw (a truncated value, an overlong varint,
 * a length past the end), this throws NotPlanned, and `fromBinary` reads the bytes again to give
 * its own error.
 */
import { ScalarType } from "@bufbuild/protobuf";
import { getTextEncoding } from "@bufbuild/protobuf/wire";
import { NotPlanned } from "./scalar-encoding.js";

const text = getTextEncoding();

/** A cursor over one message's bytes. */
export class WireReader {
  pos = 0;
  readonly len: number;
  /** The input as a Buffer (no copy), for its fixed-width reads. */
  readonly buf: Buffer;

  constructor(private readonly input: Uint8Array) {
    this.len = input.byteLength;
    this.buf = Buffer.isBuffer(input)
      ? input
      : Buffer.from(input.buffer, input.byteOffset, input.byteLength);
  }

  /** A varint's low 32 bits, unsigned (at most 10 bytes). */
  uint32(): number {
    const buf = this.buf;
    let b = buf[this.pos++] as number;
    if (b < 0x80 && this.pos <= this.len) return b;
    let result = b & 0x7f;
    for (let shift = 7; shift < 35; shift += 7) {
      b = buf[this.pos++] as number;
      result |= (b & 0x7f) << shift;
      if (b < 0x80) return this.checked(result >>> 0);
    }
    // Past 35 bits: the rest of a 10-byte varint (a negative int32) is dropped.
    for (let i = 5; i < 10; i++) {
      if ((buf[this.pos++] as number) < 0x80) return this.checked(result >>> 0);
    }
    throw new NotPlanned();
  }

  /** A field's tag: at most 5 bytes, the fifth under 0x10 (BinaryReader's "illegal tag"). */
  tag(): number {
    const from = this.pos;
    const tag = this.uint32();
    const n = this.pos - from;
    if (n > 5 || (n === 5 && (this.buf[this.pos - 1] as number) > 0x0f)) throw new NotPlanned();
    return tag;
  }

  /** A varint's 64 bits, as low and high 32 (unsigned). */
  varint64(): [number, number] {
    const buf = this.buf;
    let lo = 0;
    let hi = 0;
    for (let i = 0; i < 10; i++) {
      const b = buf[this.pos++] as number;
      const bits = b & 0x7f;
      if (i < 4) lo |= bits << (7 * i);
      else if (i === 4) {
        lo |= (bits & 0x0f) << 28;
        hi |= bits >> 4;
      } else hi |= bits << (7 * i - 32);
      if (b < 0x80) {
        if (this.pos > this.len) break;
        return [lo >>> 0, hi >>> 0];
      }
    }
    throw new NotPlanned();
  }

  /** A length's end, checked against the bytes there are. */
  delimitedEnd(): number {
    const n = this.uint32();
    const end = this.pos + n;
    if (end > this.len) throw new NotPlanned();
    return end;
  }

  /** `n` bytes, a view of the input (as BinaryReader's `bytes()`). */
  bytes(): Uint8Array {
    const end = this.delimitedEnd();
    const bytes = this.input.subarray(this.pos, end);
    this.pos = end;
    return bytes;
  }

  /** A string: ASCII sliced here, anything else protobuf-es's decoder (strict: fails on invalid). */
  string(strict: boolean): string {
    const end = this.delimitedEnd();
    const buf = this.buf;
    const from = this.pos;
    this.pos = end;
    let i = from;
    while (i < end && (buf[i] as number) < 0x80) i++;
    if (i === end) return buf.toString("latin1", from, end);
    return text.decodeUtf8(this.input.subarray(from, end), strict);
  }

  /** `n` fixed bytes' start, checked against the end. */
  fixed(n: number): number {
    const at = this.pos;
    this.pos += n;
    if (this.pos > this.len) throw new NotPlanned();
    return at;
  }

  private checked(v: number): number {
    if (this.pos > this.len) throw new NotPlanned();
    return v;
  }
}

/** A 64-bit integer from its halves (two's complement when signed). */
function int64(lo: number, hi: number, signed: boolean): bigint {
  if (hi === 0) return BigInt(lo);
  const u = (BigInt(hi) << 32n) | BigInt(lo);
  return signed ? BigInt.asIntN(64, u) : u;
}

/** One scalar value of `type`, as BinaryReader reads it. */
export function readScalar(type: ScalarType, r: WireReader, strict: boolean): unknown {
  switch (type) {
    case ScalarType.STRING:
      return r.string(strict);
    case ScalarType.BYTES:
      return r.bytes();
    case ScalarType.BOOL: {
      const [lo, hi] = r.varint64();
      return lo !== 0 || hi !== 0;
    }
    case ScalarType.INT32:
      return r.uint32() | 0;
    case ScalarType.UINT32:
      return r.uint32();
    case ScalarType.SINT32: {
      const z = r.uint32();
      return (z >>> 1) ^ -(z & 1);
    }
    case ScalarType.INT64:
    case ScalarType.UINT64: {
      const [lo, hi] = r.varint64();
      return int64(lo, hi, type === ScalarType.INT64);
    }
    case ScalarType.SINT64: {
      const [lo, hi] = r.varint64();
      const sign = -(lo & 1);
      const l = (((lo >>> 1) | ((hi & 1) << 31)) ^ sign) >>> 0;
      const h = ((hi >>> 1) ^ sign) >>> 0;
      return int64(l, h, true);
    }
    case ScalarType.DOUBLE:
      return r.buf.readDoubleLE(r.fixed(8));
    case ScalarType.FLOAT:
      return r.buf.readFloatLE(r.fixed(4));
    case ScalarType.FIXED32:
      return r.buf.readUInt32LE(r.fixed(4));
    case ScalarType.SFIXED32:
      return r.buf.readInt32LE(r.fixed(4));
    case ScalarType.FIXED64:
      return r.buf.readBigUInt64LE(r.fixed(8));
    case ScalarType.SFIXED64:
      return r.buf.readBigInt64LE(r.fixed(8));
  }
  throw new NotPlanned();
}

/** A scalar's zero value, as protobuf-es fills a map entry's missing value. */
export function scalarZero(type: ScalarType): unknown {
  switch (type) {
    case ScalarType.STRING:
      return "";
    case ScalarType.BOOL:
      return false;
    case ScalarType.BYTES:
      return new Uint8Array(0);
    case ScalarType.INT64:
    case ScalarType.UINT64:
    case ScalarType.SINT64:
    case ScalarType.FIXED64:
    case ScalarType.SFIXED64:
      return 0n;
    default:
      return 0;
  }
}
