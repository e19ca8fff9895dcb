import { createHash } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { linkHash } from "../src/store/audit-log.js";
import { sha256Bytes, sha256Hex } from "../src/store/sha256.js";

const byHashObject = (data: string | Uint8Array) => createHash("sha256").update(data).digest();

describe("sha256", () => {
  it("gives the same digest as createHash for any text and any bytes", () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ unit: "binary" }), fc.uint8Array()), (data) => {
        expect(sha256Hex(data)).toBe(byHashObject(data).toString("hex"));
        expect(sha256Bytes(data).equals(byHashObject(data))).toBe(true);
      }),
    );
  });

  it("keeps the audit chain's links as they were (a known link)", () => {
    // The link 9e7381d (createHash, named parameters) computed: stored chains must still verify.
    const link = linkHash("0".repeat(64), {
      seq: 1,
      time_ms: 1_700_000_000_000,
      lever: "risk",
      action: "RESERVE",
      subject: "WHOLESALE",
      amount: 12_340_000n,
      ok: 1,
      reason: "reserved 12.34 USD; café",
      actor: "bench",
      correlation_id: "c-1",
      reservation_id: "rsv_1",
      metadata: "{}",
    });
    expect(link).toBe(EXPECTED_LINK);
  });
});

const EXPECTED_LINK = "0f9eea1deb5785b1da9484c5d4be491a728eae8f4e103d707f406aabe3ac80be";
