import { describe, expect, it } from "vitest";
import { wilsonLowerBound } from "../src/levers/heimdall/wilson.js";
import {
  averageRunLength,
  BASELINE_GUARD_CONFIDENCE,
  cusumSignals,
  cusumStep,
  designCusum,
  designForMeasuredBaseline,
  guardedBaseline,
} from "../src/levers/regression/bernoulli-cusum.js";

describe("Bernoulli CUSUM design", () => {
  it("scales the log-likelihood ratio of one event to integer steps", () => {
    // Baseline 0.9, detect 0.72: llr(failure) = ln(0.28 / 0.1) = 1.0296,
    // llr(success) = ln(0.72 / 0.9) = -0.2231; ten steps for a success, 4.615 times that up.
    const d = designCusum(0.9, 0.72, 10_000);
    expect(d.down).toBe(10);
    expect(d.up).toBe(46);
    expect(d.up / d.scale).toBeCloseTo(Math.log(0.28 / 0.1), 1);
    expect(d.down / d.scale).toBeCloseTo(Math.log(0.9 / 0.72), 2);
  });

  it("walks the hand-computed path on a fixed sequence and signals at the threshold", () => {
    const d = { up: 46, down: 10, threshold: 118 };
    const sequence = [
      false,
      true,
      true,
      false,
      false,
      true,
      true,
      true,
      true,
      true,
      true,
      true,
      true,
    ];
    const path: number[] = [];
    let s = 0;
    for (const success of sequence) {
      s = cusumStep(d, s, success);
      path.push(s);
    }
    expect(path).toEqual([46, 36, 26, 72, 118, 108, 98, 88, 78, 68, 58, 48, 38]);
    expect(path.map((x) => cusumSignals(d, x))).toEqual(path.map((x) => x >= 118));
    expect(cusumStep(d, 5, true)).toBe(0);
  });

  it("computes the average run length exactly for a chain small enough to solve by hand", () => {
    // States 0 and 1 with up = down = 1, threshold 2: L0 = 1/q + 1/q², L1 = 1/q².
    for (const q of [0.5, 0.2, 0.9]) {
      expect(averageRunLength(1, 1, 2, q)).toBeCloseTo(1 / q + 1 / (q * q), 9);
    }
    expect(averageRunLength(3, 2, 0, 0.1)).toBe(1);
  });

  it("agrees with a seeded Monte Carlo of the same chart", () => {
    const d = designCusum(0.9, 0.72, 400);
    let seed = 42;
    const next = () => {
      seed = (Math.imul(seed, 1_103_515_245) + 12_345) >>> 0;
      return seed / 4_294_967_296;
    };
    const runs = 4000;
    let total = 0;
    for (let r = 0; r < runs; r++) {
      let s = 0;
      let t = 0;
      do {
        t++;
        s = cusumStep(d, s, next() < 0.9);
      } while (!cusumSignals(d, s));
      total += t;
    }
    expect(total / runs / d.inControlArl).toBeGreaterThan(0.93);
    expect(total / runs / d.inControlArl).toBeLessThan(1.07);
  });

  it("picks the smallest threshold that reaches the false-alarm target", () => {
    for (const target of [1_000, 100_000]) {
      const d = designCusum(0.9, 0.72, target);
      expect(d.inControlArl).toBeGreaterThanOrEqual(target);
      expect(averageRunLength(d.up, d.down, d.threshold - 1, 0.1)).toBeLessThan(target);
    }
    expect(() => designCusum(1, 0.8, 100)).toThrow(RangeError);
    expect(() => designCusum(0.9, 0.95, 100)).toThrow(/rate to detect/);
  });

  it("freezes a measured baseline at its guarded lower bound and detects from the measured rate", () => {
    expect(guardedBaseline(180, 200)).toBeCloseTo(
      wilsonLowerBound(180, 200, BASELINE_GUARD_CONFIDENCE),
      12,
    );
    expect(guardedBaseline(180, 200)).toBeLessThan(0.9);
    expect(guardedBaseline(200, 200)).toBeLessThan(1);
    expect(guardedBaseline(0, 200)).toBe(0.5 / 200);
    const d = designForMeasuredBaseline(180, 200, 0.2, 10_000);
    expect(d.baselineRate).toBeCloseTo(guardedBaseline(180, 200), 12);
    expect(d.detectRate).toBeCloseTo(0.72, 12);
    // With few events the guard falls below the drop from the measured rate: detect from it.
    const few = designForMeasuredBaseline(36, 40, 0.2, 1_000);
    expect(few.detectRate).toBeCloseTo(guardedBaseline(36, 40) * 0.8, 12);
    // At the measured rate the chart is far quieter than at the guarded one.
    expect(averageRunLength(d.up, d.down, d.threshold, 0.1)).toBeGreaterThan(100 * d.inControlArl);
  });
});
