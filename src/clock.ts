/** Time as the sidecar sees it: injectable so tests can cross UTC midnight on demand. */
export interface Clock {
  /** Milliseconds since the Unix epoch. */
  now(): number;
}

/** The wall clock. */
export const systemClock: Clock = { now: () => Date.now() };

const DAY_MS = 86_400_000;
/** The last day utcDay formatted (a decision asks for today's, many times a day). */
let lastDay = { start: Number.NaN, text: "" };

/** The UTC calendar day (YYYY-MM-DD) a timestamp falls on; ledgers reset when it changes. */
export function utcDay(ms: number): string {
  if (ms >= lastDay.start && ms < lastDay.start + DAY_MS) return lastDay.text;
  const start = Math.floor(ms / DAY_MS) * DAY_MS;
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
