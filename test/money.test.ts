import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { formatMoney, MICROS, parseMoney } from "../src/money.js";

describe("parseMoney", () => {
  it("sums 1,000 parses of 0.10 to exactly 100.00", () => {
    let total = 0n;
    for (let i = 0; i < 1000; i++) {
      const micros = parseMoney("0.10");
      expect(micros).toBe(100_000n);
      total += micros ?? 0n;
    }
    expect(total).toBe(100_000_000n);
    expect(formatMoney(total)).toBe("100.00");
    // The same sum in floating point is not exact: the reason money is kept in micro-units.
    let float = 0;
    for (let i = 0; i < 1000; i++) float += 0.1;
    expect(float).not.toBe(100);
  });

  it.each([
    ["0", 0n],
    ["0.0", 0n],
    ["0.000001", 1n],
    ["0.10", 100_000n],
    ["1", 1_000_000n],
    ["12.345678", 12_345_678n],
    ["150.25", 150_250_000n],
    ["15000.00", 15_000_000_000n],
    ["999999999", 999_999_999_000_000n],
    ["999999999.999999", 999_999_999_999_999n],
  ])("accepts %j as %s micro-units", (text, micros) => {
    expect(parseMoney(text)).toBe(micros);
  });

  it.each([
    "1e3",
    "-5",
    "-0.01",
    "+5",
    "12.3456789",
    "",
    " 1",
    "1 ",
    "01",
    "00.5",
    "1.",
    ".5",
    "1000000000",
    "1,000",
    "1.2.3",
    "0x10",
    "NaN",
    "Infinity",
    "١٢",
  ])("rejects %j", (text) => {
    expect(parseMoney(text)).toBeUndefined();
  });
});

describe("formatMoney", () => {
  it.each([
    [0n, "0.00"],
    [1n, "0.000001"],
    [10n, "0.00001"],
    [100_000n, "0.10"],
    [1_000_000n, "1.00"],
    [1_500_000n, "1.50"],
    [12_345_678n, "12.345678"],
    [150_250_000n, "150.25"],
    [15_000_000_000n, "15000.00"],
    [999_999_999_999_999n, "999999999.999999"],
  ])("formats %s micro-units as %j", (micros, text) => {
    expect(formatMoney(micros)).toBe(text);
  });

  it("keeps the sign of a negative amount", () => {
    expect(formatMoney(-1_250_000n)).toBe("-1.25");
  });

  it("gives the exact digits of bigint arithmetic at every size, the double path's edges included", () => {
    /** The digits by bigint division alone, as formatMoney wrote them before its fast path. */
    const exact = (micros: bigint): string => {
      const abs = micros < 0n ? -micros : micros;
      let fraction = (abs % MICROS).toString().padStart(6, "0");
      while (fraction.length > 2 && fraction.endsWith("0")) fraction = fraction.slice(0, -1);
      return `${micros < 0n ? "-" : ""}${abs / MICROS}.${fraction}`;
    };
    const safe = BigInt(Number.MAX_SAFE_INTEGER);
    const edges = [0n, 1n, 9n, 10n, 99n, 100n, 999n, 1_000n, 9_999n, 10_000n, 999_999n];
    for (const edge of [
      ...edges,
      safe,
      safe - 1n,
      safe + 1n,
      safe - (safe % MICROS),
      safe - (safe % MICROS) - 1n,
      2n ** 63n - 1n,
    ]) {
      expect(formatMoney(edge)).toBe(exact(edge));
      expect(formatMoney(-edge)).toBe(exact(-edge));
    }
    fc.assert(
      fc.property(
        fc.oneof(
          fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }),
          fc.bigInt({ min: -safe - 10n, max: safe + 10n }),
          fc.bigInt({ min: safe - 10_000_000n, max: safe + 10_000_000n }),
          fc.bigInt({ min: 0n, max: 10_000_000n }),
        ),
        (micros) => {
          expect(formatMoney(micros)).toBe(exact(micros));
        },
      ),
      { numRuns: 20_000 },
    );
  });

  it("round-trips every amount in range through parseMoney", () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: 999_999_999_999_999n }), (micros) => {
        const text = formatMoney(micros);
        expect(text).toMatch(/^(0|[1-9][0-9]*)\.[0-9]{2,6}$/);
        expect(parseMoney(text)).toBe(micros);
      }),
      {
        numRuns: 2000,
        examples: [[0n], [1n], [MICROS - 1n], [MICROS], [999_999_999_999_999n]],
      },
    );
  });

  it("round-trips every valid contract string back to an equal amount", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 999_999_999 }),
        fc.integer({ min: 0, max: 999_999 }),
        (whole, fraction) => {
          const text = `${whole}.${String(fraction).padStart(6, "0")}`;
          const micros = parseMoney(text);
          expect(micros).toBe(BigInt(whole) * MICROS + BigInt(fraction));
          expect(parseMoney(formatMoney(micros ?? -1n))).toBe(micros);
        },
      ),
    );
  });
});
