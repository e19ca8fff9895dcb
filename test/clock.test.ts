/** The UTC day a decision is booked on. */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { utcDay } from "../src/clock.js";

describe("utcDay", () => {
  it("names the UTC calendar day of any timestamp, asked in any order", () => {
    const ms = fc.oneof(
      fc.integer({ min: Date.UTC(1900, 0, 1), max: Date.UTC(2200, 0, 1) }),
      fc.double({ min: -8.64e15, max: 8.64e15, noNaN: true }),
    );
    fc.assert(
      fc.property(fc.array(ms, { minLength: 1, maxLength: 20 }), (times) => {
        for (const t of times) expect(utcDay(t)).toBe(new Date(t).toISOString().slice(0, 10));
      }),
      { numRuns: 500 },
    );
  });

  it("agrees with Date on fractional, negative and out-of-range times", () => {
    for (const t of [-0.5, -86_400_000.5, 0.5, 86_399_999.9, -1, 8.64e15, -8.64e15]) {
      expect(utcDay(t), String(t)).toBe(new Date(t).toISOString().slice(0, 10));
    }
    for (const t of [8.64e15 + 1, -8.64e15 - 1, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(() => utcDay(t), String(t)).toThrow(RangeError);
    }
  });

  it("turns at UTC midnight, not a millisecond before", () => {
    const midnight = Date.UTC(2026, 2, 3);
    expect(utcDay(midnight - 1)).toBe("2026-03-02");
    expect(utcDay(midnight)).toBe("2026-03-03");
    expect(utcDay(midnight - 1)).toBe("2026-03-02");
    expect(utcDay(midnight + 86_400_000 - 1)).toBe("2026-03-03");
  });
});
