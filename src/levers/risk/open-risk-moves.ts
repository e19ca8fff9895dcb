/**
 * Open risk derived from the audit trail alone, as the sidecar's open-risk book moves it: a
 * RESERVE opens its reservation (named by its reservation id) for its amount on its engine and
 * GLOBAL; the first SETTLE or RELEASE (a TTL expiry is a RELEASE) naming that id closes it and
 * frees that amount, whatever the SETTLE's loss. A close of a reservation not open (settled
 * after its TTL released it) frees nothing. Central books the fleet's open risk with it.
 */

/** A reservation open at its sidecar: its engine and reserved amount (micro-units). */
export interface HeldReservation {
  engine: string;
  amount: bigint;
}

/** The fields of an audit event that move open risk. */
export interface OpenRiskEvent {
  lever: string;
  action: string;
  subject: string;
  amount: bigint | null;
  reservationId: string;
}

/** What a run of one sidecar's events does to its open reservations and the open risk. */
export interface OpenRiskMoves {
  /** Reservations these events opened that are still open after them. */
  opened: Map<string, HeldReservation>;
  /** Reservations open before these events that they closed. */
  closed: string[];
  /** The change of open risk per engine and GLOBAL (zero changes left out). */
  shifts: Map<string, bigint>;
}

/** Whether `e` closes a reservation (SETTLE or RELEASE of the risk lever). */
function closes(e: OpenRiskEvent): boolean {
  return e.lever === "risk" && (e.action === "SETTLE" || e.action === "RELEASE");
}

/** Whether `e` opens a reservation (a RESERVE of the risk lever naming one). */
function opens(e: OpenRiskEvent): boolean {
  return e.lever === "risk" && e.action === "RESERVE" && e.reservationId !== "";
}

/**
 * The reservation ids to look up among those open before `events`: the ids they close where
 * no RESERVE of theirs opened it first (a batch that opens and closes its own reservations,
 * the common case, needs no lookup). Exactly the ids `openRiskMovesOf` reads from `held`.
 */
export function closedReservationIds(events: readonly OpenRiskEvent[]): string[] {
  const openedHere = new Set<string>();
  const ids = new Set<string>();
  for (const e of events) {
    if (opens(e)) openedHere.add(e.reservationId);
    else if (closes(e) && e.reservationId !== "") {
      if (!openedHere.delete(e.reservationId)) ids.add(e.reservationId);
    }
  }
  return [...ids];
}

/**
 * The moves of `events` (one sidecar's, in seq order), given the reservations of theirs open
 * before them (`held`: at least every id `closedReservationIds` names that is open).
 */
export function openRiskMovesOf(
  events: readonly OpenRiskEvent[],
  held: ReadonlyMap<string, HeldReservation>,
): OpenRiskMoves {
  const opened = new Map<string, HeldReservation>();
  const closed = new Set<string>();
  const shifts = new Map<string, bigint>();
  const shift = (engine: string, amount: bigint) => {
    for (const name of [engine, "GLOBAL"]) {
      const next = (shifts.get(name) ?? 0n) + amount;
      if (next === 0n) shifts.delete(name);
      else shifts.set(name, next);
    }
  };
  for (const e of events) {
    if (opens(e)) {
      const r = { engine: e.subject, amount: e.amount ?? 0n };
      opened.set(e.reservationId, r);
      shift(r.engine, r.amount);
    } else if (closes(e)) {
      const mine = opened.get(e.reservationId);
      if (mine) {
        opened.delete(e.reservationId);
        shift(mine.engine, -mine.amount);
        continue;
      }
      const before = held.get(e.reservationId);
      if (before && !closed.has(e.reservationId)) {
        closed.add(e.reservationId);
        shift(before.engine, -before.amount);
      }
    }
  }
  return { opened, closed: [...closed], shifts };
}
