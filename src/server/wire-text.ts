/**
 * protobuf-es's UTF-8 encoder, pointed at Node's Buffer pool. Its writer turns every string field
 * into bytes with TextEncoder.encode, which gives each string an ArrayBuffer of its own (malloc'd
 * outside the heap) and about 190 bytes of heap objects; Buffer.from slices the shared 8 KB pool
 * instead (about 100 bytes, no malloc). The bytes are the same for every string, lone surrogates
 * included (both write U+FFFD; test/wire-text.test.ts). Decoding and the UTF-8 check stay
 * protobuf-es's own. The setting is process-wide (protobuf-es keeps it on globalThis), made once
 * when the server modules load.
 */
import { configureTextEncoding, getTextEncoding } from "@bufbuild/protobuf/wire";

/** A string's UTF-8 bytes, sliced from Node's Buffer pool. */
export function encodeUtf8(text: string): Uint8Array<ArrayBuffer> {
  return Buffer.from(text, "utf8");
}

const standard = getTextEncoding();
if (standard.encodeUtf8 !== encodeUtf8) {
  configureTextEncoding({
    encodeUtf8,
    decodeUtf8: standard.decodeUtf8,
    checkUtf8: standard.checkUtf8,
  });
}
