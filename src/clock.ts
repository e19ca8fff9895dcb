/** Time as the sidecar sees it: injectable so tests can cross UTC midnight on demand. */
export interface Clock {
  /** Milliseconds since the Unix epoch. */
  now(): number;
}

/** The wall clock. */
export const systemClock: Clock = { now: () => Date.now() };

const DAY_MS = 86_400_000;
/** The largest time a Date can hold (ECMAScript: 100,000,000 days either side of 1970). */
const MAX_DATE_MS = 8.64e15;
/** The last day utcDay formatted (a decision asks for today's, many times a day). */
let lastDay = { start: Number.NaN, text: "" };

/** The UTC calendar day (YYYY-MM-DD) a timestamp falls on; ledgers reset when it changes. */
export function utcDay(ms: number): string {
  // Date's range and its rounding toward zero, so the answer is exactly toISOString's day.
  if (!(Math.abs(ms) <= MAX_DATE_MS)) throw new RangeError(`not a time: ${ms}`);
  const t = Math.trunc(ms);
  if (t >= lastDay.start && t < lastDay.start + DAY_MS) return lastDay.text;
  const start = Math.floor(t / DAY_MS) * DAY_MS;
  lastDay = { start, text: new Date(start).toISOString().slice(0, 10) };
  return lastDay.text;
}

/** A clock that only moves when told to, for tests and simulations. */
export class ManualClock implements Clock {
  constructor(private ms: number) {}
  now(): number {
    return this.ms;
  }
  advance(ms: number): void {
    this.ms += ms;
  }
  set(ms: number): void {
    this.ms = ms;
  }
}
