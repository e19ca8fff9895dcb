/**
 * Logs a problem that repeats (a WAL checkpoint that fails every second, a sweep that fails every
 * few seconds) once when it starts and then at most once a minute with how often it recurred,
 * instead of flooding the log; a shortage of file descriptors is named with what to do about it.
 */
import type { Logger } from "pino";
import type { Clock } from "../clock.js";

/** How long a repeated problem stays quiet after it was logged. */
const QUIET_MS = 60_000;

/** True for an error that means the process ran out of file descriptors. */
export function isFdShortage(text: string): boolean {
  return /\bE[MN]FILE\b|too many open files/i.test(text);
}

/** The advice logged with a file-descriptor shortage. */
export const FD_ADVICE =
  "the process is out of file descriptors: raise its limit (ulimit -n, or LimitNOFILE= in a systemd unit) or find what holds connections open; govd needs a few per engine connection plus 4 for its store";

/** Logs each kind of repeated problem once a minute at most. */
export class ProblemLog {
  private readonly last = new Map<string, { atMs: number; suppressed: number }>();

  constructor(
    private readonly logger: Logger,
    private readonly clock: Clock,
  ) {}

  /** Reports one occurrence of problem `kind` (logged now, or counted while quiet). */
  report(kind: string, err: unknown, message: string): void {
    const now = this.clock.now();
    const seen = this.last.get(kind);
    if (seen && now - seen.atMs < QUIET_MS) {
      seen.suppressed += 1;
      return;
    }
    const text =
      err instanceof Error
        ? `${(err as { code?: string }).code ?? ""} ${err.message}`
        : String(err);
    this.logger.error(
      {
        err,
        ...(seen?.suppressed ? { repeatedSinceLastLog: seen.suppressed } : {}),
        ...(isFdShortage(text) ? { advice: FD_ADVICE } : {}),
      },
      message,
    );
    this.last.set(kind, { atMs: now, suppressed: 0 });
  }

  /** Forgets a problem once it is over, so that its next occurrence is logged at once. */
  resolved(kind: string): void {
    this.last.delete(kind);
  }
}
