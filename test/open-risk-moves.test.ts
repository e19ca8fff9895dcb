/**
 * openRiskMovesOf, the rule central books the fleet's open risk by: RESERVE opens for its
 * amount, the first SETTLE or RELEASE of the same reservation id frees that amount (whatever
 * the loss), a close of a reservation not open frees nothing, and other events move nothing.
 */
import { describe, expect, it } from "vitest";
import {
  closedReservationIds,
  type OpenRiskEvent,
  openRiskMovesOf,
} from "../src/levers/risk/open-risk-moves.js";

const ev = (
  action: string,
  subject: string,
  amount: bigint | null,
  reservationId: string,
  lever = "risk",
): OpenRiskEvent => ({ lever, action, subject, amount, reservationId });

describe("openRiskMovesOf", () => {
  it("opens on RESERVE and frees the reserved amount on SETTLE, whatever the loss", () => {
    const m = openRiskMovesOf(
      [
        ev("RESERVE", "W", 10_000_000n, "r1"),
        ev("RESERVE", "C", 5_000_000n, "r2"),
        ev("SETTLE", "W", 2_000_000n, "r1"),
      ],
      new Map(),
    );
    expect([...m.opened]).toEqual([["r2", { engine: "C", amount: 5_000_000n }]]);
    expect(m.closed).toEqual([]);
    expect(Object.fromEntries(m.shifts)).toEqual({ C: 5_000_000n, GLOBAL: 5_000_000n });
  });

  it("closes reservations held before the events, once, and leaves unknown ones alone", () => {
    const held = new Map([
      ["old", { engine: "W", amount: 3_000_000n }],
      ["other", { engine: "C", amount: 1_000_000n }],
    ]);
    const events = [
      ev("RELEASE", "W", 3_000_000n, "old"),
      // Settled after its TTL released it: nothing more to free.
      ev("SETTLE", "W", 1_000_000n, "old"),
      ev("RELEASE", "W", 9_000_000n, "never-seen"),
    ];
    expect(closedReservationIds(events)).toEqual(["old", "never-seen"]);
    const m = openRiskMovesOf(events, held);
    expect(m.closed).toEqual(["old"]);
    expect(m.opened.size).toBe(0);
    expect(Object.fromEntries(m.shifts)).toEqual({ W: -3_000_000n, GLOBAL: -3_000_000n });
  });

  it("moves nothing for denials, other levers and a batch that opens and closes its own", () => {
    const m = openRiskMovesOf(
      [
        ev("DENY", "W", 50_000_000n, ""),
        ev("RESERVE", "W", 1n, "x", "heimdall"),
        ev("RESERVE", "W", 4_000_000n, "r"),
        ev("RELEASE", "W", 4_000_000n, "r"),
      ],
      new Map(),
    );
    expect(m.opened.size).toBe(0);
    expect(m.closed).toEqual([]);
    expect(m.shifts.size).toBe(0);
  });
});
