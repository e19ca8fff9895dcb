/**
 * Protobuf's binary encoding of a message into one Buffer, byte for byte what protobuf-es's
 * `toBinary` gives, with far less garbage: `toBinary` wraps the message in reflection objects
 * and builds its bytes in JS arrays, a chunk per string and per nested message (about 10 KB of
 * an in-process Reserve's 24 KB). Here a plan per type, made once from its descriptor, measures
 * the message (keeping each string's and nested message's length in order), then writes it into
 * a Buffer of exactly that size. What the plan does not cover goes to `toBinary`, which also
 * gives its errors: unknown fields, groups, required fields, maps with other than string keys,
 * wrapper and Struct fields (held as plain values), and values `toBinary` would refuse (an
 * int32 out of range, a float past float32). Strings are Node's UTF-8, as protobuf-es's through
 * wire-text.ts. test/message-encoding.test.ts compares the two on generated messages of every
 * type of our schema.
 */
import { type DescMessage, type Message, toBinary } from "@bufbuild/protobuf";
import { type Fields, planOf, sizeOf, writeOf } from "./message-plans.js";
import { Encoding, NotPlanned } from "./scalar-encoding.js";

const encoding = new Encoding();
let encodingBusy = false;

/** The binary encoding of `message`, as `toBinary(schema, message)` gives it. */
export function encodeMessage(schema: DescMessage, message: Message): Buffer {
  const planned = encodePlanned(schema, message);
  if (planned) return planned;
  const bytes = toBinary(schema, message);
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** The encoding by the type's plan; undefined when the plan does not take the message. */
export function encodePlanned(schema: DescMessage, message: Message): Buffer | undefined {
  const plan = planOf(schema);
  if (!plan) return undefined;
  // A getter that encodes while this encodes gets an Encoding of its own.
  const shared = !encodingBusy;
  const e = shared ? encoding : new Encoding();
  encodingBusy = true;
  try {
    const size = sizeOf(plan, message as unknown as Fields, e);
    e.buf = Buffer.allocUnsafe(size);
    writeOf(plan, message as unknown as Fields, e);
    // Written as measured, or no bytes at all (never the pool's stale ones).
    if (e.pos !== size) throw new NotPlanned();
    return e.buf;
  } catch {
    // A value the plan does not take (NotPlanned), or a message not of its type: toBinary
    // encodes it, or throws its own error.
    return undefined;
  } finally {
    e.reset();
    if (shared) encodingBusy = false;
  }
}
