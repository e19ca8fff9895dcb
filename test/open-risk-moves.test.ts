/**
 * openRiskMovesOf, the rule central books the fleet's open risk by: RESERVE opens for its
 * amount, the first SETTLE or RELEASE of the same reservation id frees that amount (whatever
 * the loss), a close of a reservation not open frees nothing, and other events move nothing;
 * the ids central looks up (closedReservationIds) are all the rule reads of what was held.
 */
import fc from "fast-check";
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

  it("looks up no reservation a batch opened itself, and every one the rule reads", () => {
    expect(
      closedReservationIds([
        ev("RESERVE", "W", 4_000_000n, "r"),
        ev("SETTLE", "W", 1n, "r"),
        ev("RELEASE", "W", 4_000_000n, "r"),
      ]),
    ).toEqual(["r"]);
    expect(
      closedReservationIds([ev("RESERVE", "W", 4_000_000n, "r"), ev("SETTLE", "W", 1n, "r")]),
    ).toEqual([]);
    const id = fc.constantFrom("a", "b", "c", "d", "");
    const event = fc
      .tuple(
        fc.constantFrom("RESERVE", "SETTLE", "RELEASE", "DENY"),
        fc.constantFrom("W", "C"),
        fc.option(fc.bigInt({ min: 0n, max: 10n ** 12n }), { nil: null }),
        id,
        fc.constantFrom("risk", "risk", "heimdall"),
      )
      .map(([action, subject, amount, reservationId, lever]) =>
        ev(action, subject, amount, reservationId, lever),
      );
    // Held reservations always have ids.
    const held = fc.dictionary(
      fc.constantFrom("a", "b", "c", "d"),
      fc.record({
        engine: fc.constantFrom("W", "C"),
        amount: fc.bigInt({ min: 1n, max: 10n ** 12n }),
      }),
    );
    fc.assert(
      fc.property(fc.array(event, { maxLength: 12 }), held, (events, before) => {
        const all = new Map(Object.entries(before));
        const looked = new Map(
          closedReservationIds(events).flatMap((k) => {
            const r = all.get(k);
            return r ? [[k, r] as const] : [];
          }),
        );
        expect(openRiskMovesOf(events, looked)).toEqual(openRiskMovesOf(events, all));
      }),
      { numRuns: 1000 },
    );
  });
});
