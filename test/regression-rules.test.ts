import { describe, expect, it } from "vitest";
import {
  evaluateRelativeDrop,
  eventsNeeded,
  type RelativeDropPolicy,
  throttleTargets,
} from "../src/levers/regression/rules.js";

/** `n` outcomes of which the first `successes` are successes. */
function outcomes(n: number, successes: number): boolean[] {
  return Array.from({ length: n }, (_, i) => i < successes);
}

const POLICY: RelativeDropPolicy = {
  windowEvents: 5,
  baselineEvents: 10,
  minEventsToEnforce: 0,
  maxDropFraction: 0.2,
  enabled: true,
};

// Newest first: the window (3 of 5: 0.6), then the baseline (9 of 10: 0.9).
const DROPPED = [...outcomes(5, 3), ...outcomes(10, 9)];

describe("eventsNeeded", () => {
  it("is window + baseline when min_events_to_enforce is 0", () => {
    expect(eventsNeeded(POLICY)).toBe(15);
    expect(
      eventsNeeded({ ...POLICY, windowEvents: 50, baselineEvents: 200, minEventsToEnforce: 0 }),
    ).toBe(250);
  });

  it("is min_events_to_enforce when it is larger", () => {
    expect(eventsNeeded({ ...POLICY, minEventsToEnforce: 300 })).toBe(300);
  });

  it("never lets the rule enforce before a full window and baseline exist", () => {
    expect(eventsNeeded({ ...POLICY, minEventsToEnforce: 7 })).toBe(15);
  });
});

describe("evaluateRelativeDrop", () => {
  it("computes current, baseline and drop from the newest-first outcomes", () => {
    const f = evaluateRelativeDrop(POLICY, DROPPED, 15);
    expect(f.currentRate).toBeCloseTo(0.6, 12);
    expect(f.baselineRate).toBeCloseTo(0.9, 12);
    expect(f.drop).toBeCloseTo(1 / 3, 12);
    expect(f.eventsSeen).toBe(15);
    expect(f.eventsNeeded).toBe(15);
  });

  it("trips when the drop exceeds max_drop_fraction", () => {
    expect(evaluateRelativeDrop(POLICY, DROPPED, 15).status).toBe("TRIP");
    expect(evaluateRelativeDrop({ ...POLICY, maxDropFraction: 0.3 }, DROPPED, 15).status).toBe(
      "TRIP",
    );
  });

  it("stays OK when the drop is within max_drop_fraction", () => {
    expect(evaluateRelativeDrop({ ...POLICY, maxDropFraction: 0.4 }, DROPPED, 15).status).toBe(
      "OK",
    );
  });

  it("does not trip when the drop equals max_drop_fraction exactly", () => {
    // window 4 at 2/4 = 0.5, baseline 10/10 = 1: drop exactly 0.5.
    const p = { ...POLICY, windowEvents: 4 };
    const seq = [...outcomes(4, 2), ...outcomes(10, 10)];
    const at = evaluateRelativeDrop({ ...p, maxDropFraction: 0.5 }, seq, 14);
    expect(at.drop).toBe(0.5);
    expect(at.status).toBe("OK");
    expect(evaluateRelativeDrop({ ...p, maxDropFraction: 0.49 }, seq, 14).status).toBe("TRIP");
  });

  it("never trips on an improvement (a negative drop)", () => {
    // Newest 5 all succeeded (1.0) after a baseline of 5/10 (0.5): drop = (0.5 - 1) / 0.5 = -1.
    const f = evaluateRelativeDrop(
      { ...POLICY, maxDropFraction: 0 },
      [...outcomes(5, 5), ...outcomes(10, 5)],
      15,
    );
    expect(f.currentRate).toBe(1);
    expect(f.baselineRate).toBe(0.5);
    expect(f.drop).toBe(-1);
    expect(f.status).toBe("OK");
  });

  it("takes the window from the front (newest first)", () => {
    // The same outcomes in the opposite order: the failures are now in the window.
    const newestFirst = [...outcomes(10, 10), ...outcomes(5, 0)].reverse();
    const f = evaluateRelativeDrop(POLICY, newestFirst, 15);
    expect(f.currentRate).toBe(0);
    expect(f.baselineRate).toBe(1);
    expect(f.status).toBe("TRIP");
  });

  it("ignores outcomes older than window + baseline", () => {
    const older = [...DROPPED, ...outcomes(100, 0)];
    const f = evaluateRelativeDrop(POLICY, older, 115);
    expect(f.baselineRate).toBeCloseTo(0.9, 12);
    expect(f.status).toBe("TRIP");
  });

  it("reports INSUFFICIENT_DATA below eventsNeeded, with the figures still computed", () => {
    const f = evaluateRelativeDrop(POLICY, DROPPED, 14);
    expect(f.status).toBe("INSUFFICIENT_DATA");
    expect(f.drop).toBeCloseTo(1 / 3, 12);
    expect(f.eventsNeeded).toBe(15);
  });

  it("reports INSUFFICIENT_DATA until min_events_to_enforce, then trips", () => {
    const p = { ...POLICY, minEventsToEnforce: 100 };
    expect(evaluateRelativeDrop(p, DROPPED, 99).status).toBe("INSUFFICIENT_DATA");
    expect(evaluateRelativeDrop(p, DROPPED, 100).status).toBe("TRIP");
  });

  it("reports INSUFFICIENT_DATA when the baseline is incomplete", () => {
    // Only 5 + 9 outcomes were supplied although 15 events were counted.
    const short = DROPPED.slice(0, 14);
    expect(evaluateRelativeDrop(POLICY, short, 15).status).toBe("INSUFFICIENT_DATA");
    expect(evaluateRelativeDrop(POLICY, [], 0).status).toBe("INSUFFICIENT_DATA");
  });

  it("reports DISABLED when the policy is not enabled, however bad the drop", () => {
    const f = evaluateRelativeDrop({ ...POLICY, enabled: false }, DROPPED, 15);
    expect(f.status).toBe("DISABLED");
    expect(f.drop).toBeCloseTo(1 / 3, 12);
    const collapse = [...outcomes(5, 0), ...outcomes(10, 10)];
    expect(evaluateRelativeDrop({ ...POLICY, enabled: false }, collapse, 15).status).toBe(
      "DISABLED",
    );
    expect(evaluateRelativeDrop(POLICY, collapse, 15).status).toBe("TRIP");
  });

  it("never trips on a zero baseline", () => {
    const allFail = outcomes(15, 0);
    const f = evaluateRelativeDrop({ ...POLICY, maxDropFraction: 0 }, allFail, 15);
    expect(f.baselineRate).toBe(0);
    expect(f.currentRate).toBe(0);
    expect(f.drop).toBe(0);
    expect(f.status).toBe("OK");
    const recovering = [...outcomes(5, 5), ...outcomes(10, 0)];
    const r = evaluateRelativeDrop({ ...POLICY, maxDropFraction: 0 }, recovering, 15);
    expect(r.drop).toBe(0);
    expect(Number.isFinite(r.drop)).toBe(true);
    expect(r.status).toBe("OK");
  });

  it("trips on a total collapse with a drop of exactly 1", () => {
    const f = evaluateRelativeDrop(POLICY, [...outcomes(5, 0), ...outcomes(10, 10)], 15);
    expect(f.drop).toBe(1);
    expect(f.status).toBe("TRIP");
  });

  it("handles the seed shape (window 50, baseline 200, max drop 0.2)", () => {
    const p: RelativeDropPolicy = {
      windowEvents: 50,
      baselineEvents: 200,
      minEventsToEnforce: 250,
      maxDropFraction: 0.2,
      enabled: true,
    };
    // baseline 180/200 = 0.9; current 35/50 = 0.7: drop 0.2222 > 0.2.
    const trip = [...outcomes(50, 35), ...outcomes(200, 180)];
    expect(evaluateRelativeDrop(p, trip, 250).status).toBe("TRIP");
    // current 37/50 = 0.74: drop 0.1778 <= 0.2.
    const ok = [...outcomes(50, 37), ...outcomes(200, 180)];
    expect(evaluateRelativeDrop(p, ok, 250).status).toBe("OK");
    expect(evaluateRelativeDrop(p, trip, 249).status).toBe("INSUFFICIENT_DATA");
  });
});

describe("throttleTargets", () => {
  it("defaults to the wire's domain", () => {
    expect(throttleTargets("WHOLESALE", [])).toEqual(["WHOLESALE"]);
  });

  it("returns the listed targets (not the domain) when some are listed", () => {
    expect(throttleTargets("WHOLESALE", ["CAPITAL", "BUYER_MATCH"])).toEqual([
      "CAPITAL",
      "BUYER_MATCH",
    ]);
  });

  it("returns a copy the caller may change without touching the policy", () => {
    const listed = ["CAPITAL"];
    const out = throttleTargets("WHOLESALE", listed);
    out.push("X");
    expect(listed).toEqual(["CAPITAL"]);
  });
});
