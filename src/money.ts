/** Exact money: decimal strings in the contract, integer micro-units inside. */

const MONEY_PATTERN = /^(0|[1-9][0-9]{0,8})(?:\.([0-9]{1,6}))?$/;

/** Micro-units per unit of money. */
export const MICROS = 1_000_000;

/**
 * Parses a contract decimal string ("150.25") into integer micro-units.
 * Returns undefined for anything that is not a plain, non-negative decimal with at most 6
 * fraction digits; callers turn that into INVALID_ARGUMENT naming the field.
 */
export function parseMoney(text: string): number | undefined {
  const match = MONEY_PATTERN.exec(text);
  if (!match) return undefined;
  const whole = Number(match[1]);
  const fraction = (match[2] ?? "").padEnd(6, "0");
  return whole * MICROS + Number(fraction);
}

/** Formats micro-units as a decimal string with at least two fraction digits ("100.00"). */
export function formatMoney(micros: number): string {
  const sign = micros < 0 ? "-" : "";
  const abs = Math.abs(micros);
  const whole = Math.floor(abs / MICROS);
  let fraction = String(abs % MICROS).padStart(6, "0");
  while (fraction.length > 2 && fraction.endsWith("0")) fraction = fraction.slice(0, -1);
  return `${sign}${whole}.${fraction}`;
}
