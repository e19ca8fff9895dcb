import { describe, expect, it } from "vitest";
import { normalQuantile, wilsonLowerBound } from "../src/levers/heimdall/wilson.js";

describe("normal quantile", () => {
  it("matches tabled values", () => {
    expect(normalQuantile(0.5)).toBe(0);
    expect(normalQuantile(0.975)).toBeCloseTo(1.959964, 6);
    expect(normalQuantile(0.995)).toBeCloseTo(2.575829, 6);
    expect(normalQuantile(0.9)).toBeCloseTo(1.281552, 6);
    expect(normalQuantile(0.001)).toBeCloseTo(-3.090232, 5);
    expect(normalQuantile(0.2)).toBeCloseTo(-normalQuantile(0.8), 9);
    expect(() => normalQuantile(1)).toThrow(RangeError);
  });
});

describe("Wilson score lower bound", () => {
  // Hand-computed with z = 1.959964: (p + z²/2n - z·sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n).
  it.each([
    [19, 20, 0.7639],
    [48, 50, 0.8654],
    [190, 200, 0.9104],
  ])("%i of %i at 95%% is %f", (successes, trials, bound) => {
    expect(wilsonLowerBound(successes, trials, 0.95)).toBeCloseTo(bound, 4);
  });

  it("is 0 without trials, below the raw rate, and tighter with more evidence", () => {
    expect(wilsonLowerBound(0, 0, 0.95)).toBe(0);
    expect(wilsonLowerBound(20, 20, 0.95)).toBeLessThan(1);
    expect(wilsonLowerBound(0, 20, 0.95)).toBe(0);
    expect(wilsonLowerBound(19, 20, 0.99)).toBeLessThan(wilsonLowerBound(19, 20, 0.95));
    expect(wilsonLowerBound(950, 1000, 0.95)).toBeGreaterThan(wilsonLowerBound(95, 100, 0.95));
  });
});
