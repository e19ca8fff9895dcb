/**
 * The day ledger: what each engine (and GLOBAL beside it) has used on one UTC day, kept in
 * memory. Every booking lands on the engine and on GLOBAL at once; a booking that would take a
 * sum past int64 is refused before it is made (see ledger-limit.ts).
 */
import { assertWithinLimit } from "./ledger-limit.js";

/** One engine's figures of the day, money in micro-units. */
export interface DayFigures {
  exposure: bigint;
  realizedLoss: bigint;
  actions: number;
  denials: number;
}

/** A change of the day's figures; negative to undo one. */
export interface LedgerDelta {
  exposure?: bigint;
  loss?: bigint;
  actions?: number;
  denials?: number;
}

const NONE: Readonly<DayFigures> = Object.freeze({
  exposure: 0n,
  realizedLoss: 0n,
  actions: 0,
  denials: 0,
});

/** The figures of one UTC day by engine, GLOBAL included. */
export class DayLedger {
  private readonly figures = new Map<string, DayFigures>();

  /** Starts the day from stored rows (the fold's risk_ledger rows of `day`). */
  constructor(
    readonly day: string,
    rows: Iterable<DayFigures & { engine: string }> = [],
  ) {
    for (const r of rows) {
      this.figures.set(r.engine, {
        exposure: r.exposure,
        realizedLoss: r.realizedLoss,
        actions: r.actions,
        denials: r.denials,
      });
    }
  }

  /** The day's figures of one engine (or GLOBAL); zero when it booked nothing. */
  of(engine: string): Readonly<DayFigures> {
    return this.figures.get(engine) ?? NONE;
  }

  /** Every engine with a row this day, GLOBAL included. */
  engines(): IterableIterator<string> {
    return this.figures.keys();
  }

  /** RESOURCE_EXHAUSTED when `delta` would take a sum of `engine` or GLOBAL past int64. */
  assertFits(engine: string, delta: LedgerDelta): void {
    for (const name of [engine, "GLOBAL"]) {
      const f = this.of(name);
      if (delta.exposure) assertWithinLimit(name, "daily exposure", f.exposure + delta.exposure);
      if (delta.loss) assertWithinLimit(name, "daily realized loss", f.realizedLoss + delta.loss);
    }
  }

  /** Adds `delta` to `engine` and to GLOBAL (check assertFits first). */
  book(engine: string, delta: LedgerDelta): void {
    this.add(engine, delta);
    this.add("GLOBAL", delta);
  }

  private add(engine: string, delta: LedgerDelta): void {
    let f = this.figures.get(engine);
    if (!f) {
      f = { ...NONE };
      this.figures.set(engine, f);
    }
    f.exposure += delta.exposure ?? 0n;
    f.realizedLoss += delta.loss ?? 0n;
    f.actions += delta.actions ?? 0;
    f.denials += delta.denials ?? 0;
    // Only an undone booking leaves a row at zero: then the day has no row, as before it.
    if (f.exposure === 0n && f.realizedLoss === 0n && f.actions === 0 && f.denials === 0) {
      this.figures.delete(engine);
    }
  }
}

/** The fields of an audit event that decide what it books on the day ledger. */
export interface BookedEvent {
  lever: string;
  action: string;
  subject: string;
  amount: bigint | null;
  /** DENY: whether the denial counts (the engine has a policy). */
  denialCounted: boolean;
}

/**
 * What one audit event adds to its engine's day (and GLOBAL's), as the sidecar's risk fold
 * books it: RESERVE its amount as exposure and one action, SETTLE its amount as realized loss,
 * a counted DENY one denial; anything else nothing (undefined).
 */
export function ledgerDeltaOf(e: BookedEvent): LedgerDelta | undefined {
  if (e.lever !== "risk") return undefined;
  if (e.action === "RESERVE") return { exposure: e.amount ?? 0n, actions: 1 };
  if (e.action === "SETTLE") return { loss: e.amount ?? 0n };
  if (e.action === "DENY" && e.denialCounted) return { denials: 1 };
  return undefined;
}
