/** How govd reads the values of its flags and GOVD_* environment variables: strictly. */
import { InvalidArgumentError, Option } from "commander";

const TRUE = new Set(["1", "true", "yes"]);
const FALSE = new Set(["0", "false", "no"]);

/** A whole number (ports, sizes, seconds); anything else is a usage error naming the value. */
export function integer(value: string): number {
  const n = Number(value);
  if (value.trim() === "" || !Number.isInteger(n) || n < 0) {
    throw new InvalidArgumentError("must be a whole number");
  }
  return n;
}

/**
 * A yes/no value: 1/0, true/false, yes/no (any case). Anything else is refused, so that
 * `GOVD_ALLOW_REMOTE=0` or a typo can never switch a guard off or on by accident.
 */
export function yesNo(value: string): boolean {
  const v = value.trim().toLowerCase();
  if (TRUE.has(v)) return true;
  if (FALSE.has(v)) return false;
  throw new InvalidArgumentError("must be 1/0, true/false or yes/no");
}

/**
 * An on/off flag that is off by default: `--flag` alone turns it on, `--flag no` or the
 * environment variable set to 0/false/no leaves it off, and any other value is a startup error.
 * (Commander's own boolean flags count any value of their variable as on.)
 */
export function switchOption(flags: string, description: string, env: string): Option {
  return new Option(`${flags} [yes|no]`, description)
    .env(env)
    .default(false)
    .preset(true)
    .argParser(yesNo);
}

const UNIT_MS: Record<string, number> = {
  ms: 1,
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

/** A duration such as `500ms`, `30s`, `2m`, `1h` or `7d`, in milliseconds; anything else is refused. */
export function duration(value: string): number {
  const m = /^(\d+)(ms|s|m|h|d)$/.exec(value.trim());
  if (!m) throw new InvalidArgumentError("must be a duration such as 500ms, 30s, 2m, 1h or 7d");
  return Number(m[1]) * (UNIT_MS[m[2] as string] as number);
}

/** `keep` (undefined: for ever) or a duration, for retention settings. */
export function keepOrDuration(value: string): number | undefined {
  if (value.trim().toLowerCase() === "keep") return undefined;
  try {
    return duration(value);
  } catch {
    throw new InvalidArgumentError("must be keep or a duration such as 30m, 12h or 7d");
  }
}

/** A comma-separated list (repeatable flags collect into one list); empty items are dropped. */
export function list(value: string, previous: string[] = []): string[] {
  return [
    ...previous,
    ...value
      .split(",")
      .map((v) => v.trim())
      .filter((v) => v !== ""),
  ];
}
