/**
 * The risk lever's figures recomputed from the audit trail alone (every risk event since the
 * first), for tests that hold the in-memory book against the store.
 */
import { utcDay } from "../../src/clock.js";
import type { Db } from "../../src/store/database.js";

/** The ledgers the tests compare: three engines and GLOBAL. */
export const LEDGERS = ["E1", "E2", "TIGHT", "GLOBAL"] as const;

/** One ledger's figures on a day, with open risk now. */
export interface Figures {
  exposure: bigint;
  realizedLoss: bigint;
  actions: number;
  denials: number;
  openRisk: bigint;
}

/** What the trail adds up to on `day`, computed from every risk event since the first. */
export function recompute(db: Db, day: string): Map<string, Figures> {
  const rows = db
    .prepare(
      "SELECT time_ms, action, subject, amount, reservation_id, denial_counted FROM audit_event WHERE lever = 'risk' ORDER BY seq",
    )
    .safeIntegers(true)
    .all() as {
    time_ms: bigint;
    action: string;
    subject: string;
    amount: bigint;
    reservation_id: string;
    denial_counted: bigint | null;
  }[];
  const figures = new Map<string, Figures>(
    LEDGERS.map((e) => [
      e,
      { exposure: 0n, realizedLoss: 0n, actions: 0, denials: 0, openRisk: 0n },
    ]),
  );
  const open = new Map<string, { engine: string; amount: bigint }>();
  const book = (engine: string, f: (x: Figures) => void) => {
    for (const name of [engine, "GLOBAL"]) {
      const x = figures.get(name);
      if (x) f(x);
    }
  };
  for (const e of rows) {
    const today = utcDay(Number(e.time_ms)) === day;
    if (e.action === "RESERVE") {
      open.set(e.reservation_id, { engine: e.subject, amount: e.amount });
      if (today) {
        book(e.subject, (x) => {
          x.exposure += e.amount;
          x.actions += 1;
        });
      }
    } else if (e.action === "DENY" && e.denial_counted === 1n && today) {
      book(e.subject, (x) => {
        x.denials += 1;
      });
    } else if (e.action === "SETTLE" || e.action === "RELEASE") {
      open.delete(e.reservation_id);
      if (e.action === "SETTLE" && today) {
        book(e.subject, (x) => {
          x.realizedLoss += e.amount;
        });
      }
    }
  }
  for (const r of open.values()) {
    book(r.engine, (x) => {
      x.openRisk += r.amount;
    });
  }
  return figures;
}

/** Where each reservation stands by the trail: its last RESERVE, SETTLE or RELEASE. */
export function statuses(db: Db): Map<string, string> {
  const rows = db
    .prepare(
      "SELECT action, reservation_id, metadata FROM audit_event WHERE lever = 'risk' AND reservation_id <> '' ORDER BY seq",
    )
    .all() as { action: string; reservation_id: string; metadata: string }[];
  const status = new Map<string, string>();
  for (const e of rows) {
    const ttl = (JSON.parse(e.metadata) as { ttl?: string }).ttl === "expired";
    status.set(
      e.reservation_id,
      e.action === "RESERVE"
        ? "OPEN"
        : e.action === "SETTLE"
          ? "SETTLED"
          : ttl
            ? "EXPIRED"
            : "RELEASED",
    );
  }
  return status;
}
