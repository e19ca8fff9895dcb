/**
 * Exact money: decimal strings in the contract, integer micro-units (bigint) inside, INTEGER
 * in SQLite. A JavaScript number is exact only up to 2^53 micro-units (about 9 billion units),
 * which ten large settles pass; a bigint is exact to the store's int64 limit, where bookings stop.
 */

const MONEY_PATTERN = /^(0|[1-9][0-9]{0,8})(?:\.([0-9]{1,6}))?$/;

/** Micro-units per unit of money. */
export const MICROS = 1_000_000n;

/**
 * The most any stored sum (a ledger's exposure or realized loss, open risk) may hold: SQLite's
 * INTEGER is an int64, and its `+` past this silently turns into an inexact REAL. Bookings
 * that would cross it are refused (RESOURCE_EXHAUSTED) and book nothing.
 */
export const MAX_STORED_MICROS = 9_223_372_036_854_775_807n;

/**
 * Parses a contract decimal string ("150.25") into integer micro-units.
 * Returns undefined for anything that is not a plain, non-negative decimal with at most 6
 * fraction digits; callers turn that into INVALID_ARGUMENT naming the field.
 */
export function parseMoney(text: string): bigint | undefined {
  const match = MONEY_PATTERN.exec(text);
  if (!match) return undefined;
  const fraction = (match[2] ?? "").padEnd(6, "0");
  return BigInt(match[1] ?? "0") * MICROS + BigInt(fraction);
}

/** Amounts a double holds exactly: formatted without bigint arithmetic. */
const EXACT_AS_NUMBER = BigInt(Number.MAX_SAFE_INTEGER);

/** Powers of ten by fraction digits kept, for the fast path of `formatMoney`. */
const KEEP = [
  [10_000, 2],
  [1_000, 3],
  [100, 4],
  [10, 5],
] as const;

/** Formats micro-units as a decimal string with at least two fraction digits ("100.00"). */
export function formatMoney(micros: bigint): string {
  // Every answer carries several amounts: below 2^53 the digits come from exact double
  // arithmetic (a remainder, then a division of an exact multiple), with no bigint allocated.
  if (micros <= EXACT_AS_NUMBER && micros >= -EXACT_AS_NUMBER) {
    const n = Number(micros);
    const abs = n < 0 ? -n : n;
    const fraction = abs % 1_000_000;
    const whole = (abs - fraction) / 1_000_000;
    let digits = 6;
    let kept = fraction;
    for (const [unit, count] of KEEP) {
      if (fraction % unit === 0) {
        digits = count;
        kept = fraction / unit;
        break;
      }
    }
    return `${n < 0 ? "-" : ""}${whole}.${String(kept).padStart(digits, "0")}`;
  }
  const sign = micros < 0n ? "-" : "";
  const abs = micros < 0n ? -micros : micros;
  const whole = abs / MICROS;
  let fraction = (abs % MICROS).toString().padStart(6, "0");
  while (fraction.length > 2 && fraction.endsWith("0")) fraction = fraction.slice(0, -1);
  return `${sign}${whole}.${fraction}`;
}

/** The larger of two amounts. */
export function maxMoney(a: bigint, b: bigint): bigint {
  return a > b ? a : b;
}
