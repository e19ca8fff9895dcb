/** A series' ring of outcomes counts a wire's window and baseline as the whole series would. */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { OutcomeRing } from "../src/levers/regression/outcome-window.js";

/** What a wire decides on, counted from outcomes listed newest first. */
function countsOf(newestFirst: readonly boolean[], window: number, baseline: number) {
  const current = newestFirst.slice(0, window);
  const before = newestFirst.slice(window, window + baseline);
  return {
    currentSuccesses: current.filter(Boolean).length,
    currentEvents: current.length,
    baselineSuccesses: before.filter(Boolean).length,
    baselineEvents: before.length,
  };
}

describe("OutcomeRing", () => {
  it("counts like the series it was filled from and then given, within what it covers", () => {
    fc.assert(
      fc.property(
        fc.array(fc.boolean(), { maxLength: 40 }),
        fc.array(fc.boolean(), { maxLength: 40 }),
        fc.integer({ min: 1, max: 30 }),
        fc.integer({ min: 1, max: 12 }),
        fc.nat(20),
        (stored, appended, capacity, window, baseline) => {
          const series = [...stored]; // oldest first
          const ring = new OutcomeRing(capacity, [...stored].reverse().slice(0, capacity));
          for (const s of appended) {
            series.push(s);
            ring.push(s);
          }
          const newestFirst = [...series].reverse();
          const n = window + baseline;
          // A ring covers a window when it holds that many outcomes or the whole series.
          if (n <= Math.min(capacity, series.length)) expect(ring.covers(n)).toBe(true);
          if (series.length > capacity && n > capacity) expect(ring.covers(n)).toBe(false);
          if (ring.covers(n)) {
            expect(ring.counts(window, baseline)).toEqual(countsOf(newestFirst, window, baseline));
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it("holds a short series whole, until it has seen more outcomes than it can hold", () => {
    const ring = new OutcomeRing(3, [true, false]);
    expect(ring.covers(10)).toBe(true);
    expect(ring.counts(1, 9)).toEqual(countsOf([true, false], 1, 9));
    ring.push(false);
    expect(ring.covers(10)).toBe(true);
    expect(ring.counts(2, 1)).toEqual(countsOf([false, true, false], 2, 1));
    ring.push(true);
    expect(ring.covers(10)).toBe(false);
    expect(ring.counts(2, 1)).toEqual(countsOf([true, false, true], 2, 1));
  });
});
