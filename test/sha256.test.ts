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

  it("links any event as JSON of its fields with the amount's exact digits, past 2^53 too", () => {
    // The link's definition, written out: the amount's digits between the two halves JSON writes.
    const reference = (prev: string, r: Parameters<typeof linkHash>[1]) => {
      const before = JSON.stringify([prev, r.seq, r.time_ms, r.lever, r.action, r.subject]);
      const after = JSON.stringify([
        r.ok,
        r.reason,
        r.actor,
        r.correlation_id,
        r.reservation_id,
        r.metadata,
      ]);
      const amount = r.amount === null ? "null" : r.amount.toString();
      return byHashObject(`${before.slice(0, -1)},${amount},${after.slice(1)}`).toString("hex");
    };
    const text = fc.string({ unit: "grapheme", maxLength: 30 });
    const edge = 2n ** 53n;
    const row = fc.record({
      seq: fc.nat(),
      time_ms: fc.nat(),
      lever: text,
      action: text,
      subject: text,
      amount: fc.option(
        fc.oneof(
          fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }),
          fc.bigInt({ min: -edge - 2n, max: -edge + 2n }),
          fc.bigInt({ min: edge - 2n, max: edge + 2n }),
        ),
        { nil: null },
      ),
      ok: fc.constantFrom(0, 1),
      reason: text,
      actor: text,
      correlation_id: text,
      reservation_id: text,
      metadata: text,
    });
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => Buffer.from(b).toString("hex")),
        row,
        (prev, r) => {
          expect(linkHash(prev, r)).toBe(reference(prev, r));
        },
      ),
      { numRuns: 2000 },
    );
  });
});

const EXPECTED_LINK = "0f9eea1deb5785b1da9484c5d4be491a728eae8f4e103d707f406aabe3ac80be";
