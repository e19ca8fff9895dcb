import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { getTextEncoding } from "@bufbuild/protobuf/wire";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ReserveRequestSchema } from "../gen/governance/v1/risk_pb.js";
import { CallPipeline } from "../src/server/call-pipeline.js";
import { encodeUtf8 } from "../src/server/wire-text.js";

const standard = new TextEncoder();

describe("encodeUtf8 on Node's Buffer pool", () => {
  it("gives TextEncoder's bytes for every UTF-16 code unit alone, lone surrogates included", () => {
    for (let unit = 0; unit <= 0xffff; unit++) {
      const text = String.fromCharCode(unit);
      expect(Buffer.compare(encodeUtf8(text), standard.encode(text))).toBe(0);
    }
  });

  it("gives TextEncoder's bytes for any sequence of code units", () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 0xffff }), { maxLength: 40 }), (units) => {
        const text = String.fromCharCode(...units);
        expect(Buffer.compare(encodeUtf8(text), standard.encode(text))).toBe(0);
      }),
    );
  });

  it("is protobuf-es's encoder once the server modules are loaded, and round-trips a request", () => {
    expect(CallPipeline).toBeDefined();
    expect(getTextEncoding().encodeUtf8).toBe(encodeUtf8);
    const request = create(ReserveRequestSchema, {
      engine: "WHOLESALE",
      amount: "1.50",
      actor: "ops-\u00e9\ud83d\ude00",
      correlationId: "c-\ud800",
      metadata: { k: "v" },
    });
    const decoded = fromBinary(ReserveRequestSchema, toBinary(ReserveRequestSchema, request));
    expect(decoded.actor).toBe("ops-\u00e9\ud83d\ude00");
    expect(decoded.correlationId).toBe("c-\ufffd");
    expect(decoded.metadata).toEqual({ k: "v" });
  });
});
