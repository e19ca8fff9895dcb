/**
 * The fleet wire's pure rules: KPI outcomes read back from shipped audit events; a fleet
 * stream evaluated after each outcome decides as the sidecar's rules do (RELATIVE_DROP against
 * rules.ts on every prefix, SEQUENTIAL against a plain Bernoulli CUSUM); shipments split
 * anywhere decide the same; re-arming and policy changes restart it; dry run and disabled
 * wires act on nothing.
 */
import { describe, expect, it } from "vitest";
import { cusumSignals, cusumStep, designCusum } from "../src/levers/regression/bernoulli-cusum.js";
import { kpiAuditEntry, kpiOutcomeOf } from "../src/levers/regression/kpi-outcome.js";
import { evaluateRelativeDrop } from "../src/levers/regression/rules.js";
import type { TripwirePolicy } from "../src/levers/regression/tripwires.js";
import {
  countsOf,
  type FleetWireRow,
  NEW_FLEET_WIRE,
  rearmed,
  runFleetWire,
} from "../src/sync/central/fleet-wire.js";

function policy(over: Partial<TripwirePolicy> = {}): TripwirePolicy {
  return {
    domain: "WHOLESALE",
    metric: "contract_rate",
    method: "RELATIVE_DROP",
    windowEvents: 10,
    baselineEvents: 20,
    minEventsToEnforce: 40,
    maxDropFraction: 0.2,
    falseAlarmEvents: 1000,
    baselineRate: 0,
    action: "THROTTLE",
    throttleTargets: [],
    enabled: true,
    dryRun: false,
    updatedBy: "ops",
    updatedMs: 0,
    ...over,
  };
}

/** A reproducible outcome stream: success rate `p` for `n` events, then `q` for `m`. */
function stream(seed: number, n: number, p: number, m: number, q: number): boolean[] {
  let x = seed;
  const next = () => {
    x = (x * 1_103_515_245 + 12_345) % 2_147_483_648;
    return x / 2_147_483_648;
  };
  return Array.from({ length: n + m }, (_, i) => next() < (i < n ? p : q));
}

/** Runs `outcomes` in shipments of the given sizes, keeping state between them as the store does. */
function shipped(p: TripwirePolicy | undefined, outcomes: boolean[], sizes: number[]) {
  let row: FleetWireRow = NEW_FLEET_WIRE;
  let kept: boolean[] = [];
  let trip: { at: number; reason: string } | null = null;
  let from = 0;
  for (const size of sizes) {
    // Once a trip is committed, central holds the wire tripped.
    const held = trip
      ? { revision: 1, tripped: true, reason: trip.reason, trippedMs: 0 }
      : undefined;
    const run = runFleetWire(
      p,
      row,
      held,
      kept,
      outcomes.slice(from, from + size),
      0,
      "fleet stream X",
    );
    row = run.row;
    kept = [...kept];
    trip ??= run.trip;
    from += size;
  }
  return { row, kept, trip };
}

describe("KPI outcomes in the audit trail", () => {
  it("reads back what RecordKpi appends, and nothing else", () => {
    const e = kpiAuditEntry(
      { domain: "CAPITAL", metric: "roi_event", success: false, value: 0.5, correlationId: "c" },
      "engine",
    );
    expect(e).toMatchObject({ lever: "kpi", action: "KPI", subject: "CAPITAL/roi_event" });
    expect(kpiOutcomeOf(e)).toEqual({ domain: "CAPITAL", metric: "roi_event", success: false });
    expect(kpiOutcomeOf({ ...e, action: "TRIP" })).toBeNull();
    expect(kpiOutcomeOf({ ...e, lever: "risk" })).toBeNull();
    expect(kpiOutcomeOf({ ...e, lever: "regression" })).toBeNull();
    expect(kpiOutcomeOf({ ...e, subject: "CAPITAL" })).toBeNull();
  });
});

describe("a fleet wire on its stream", () => {
  it("RELATIVE_DROP trips at the first outcome where rules.ts on the whole prefix says TRIP", () => {
    for (const seed of [1, 2, 3, 4, 5]) {
      const p = policy();
      const outcomes = stream(seed, 200, 0.9, 200, 0.55);
      let expected = -1;
      for (let i = 1; i <= outcomes.length && expected < 0; i++) {
        const newestFirst = outcomes.slice(0, i).reverse();
        if (evaluateRelativeDrop(p, newestFirst, i).status === "TRIP") expected = i;
      }
      expect(expected).toBeGreaterThan(0);
      const { trip, row, kept } = shipped(p, outcomes, [outcomes.length]);
      expect(trip?.at).toBe(expected);
      expect(row.eventsSeen).toBe(outcomes.length);
      // Only what the wire reads is kept.
      expect(kept.length).toBe(30);
      expect(trip?.reason).toMatch(/^fleet stream X: success rate .* over the last 10 events/);
    }
  });

  it("SEQUENTIAL with an operator's baseline trips where a plain Bernoulli CUSUM signals", () => {
    const p = policy({ method: "SEQUENTIAL", baselineRate: 0.9, falseAlarmEvents: 500 });
    const d = designCusum(0.9, 0.9 * 0.8, 500);
    const outcomes = stream(7, 300, 0.9, 300, 0.6);
    let s = 0;
    let expected = -1;
    for (const [i, ok] of outcomes.entries()) {
      s = cusumStep(d, s, ok);
      if (cusumSignals(d, s)) {
        expected = i + 1;
        break;
      }
    }
    expect(expected).toBeGreaterThan(0);
    expect(shipped(p, outcomes, [outcomes.length]).trip?.at).toBe(expected);
  });

  it("decides the same however the outcomes are split into shipments", () => {
    for (const p of [
      policy(),
      policy({ method: "SEQUENTIAL", baselineEvents: 100, falseAlarmEvents: 500 }),
    ]) {
      const outcomes = stream(11, 250, 0.92, 250, 0.6);
      const whole = shipped(p, outcomes, [outcomes.length]);
      const split = shipped(p, outcomes, Array(100).fill(7));
      expect(whole.trip).not.toBeNull();
      expect(split.trip).toEqual(whole.trip);
      expect(split.row).toEqual(whole.row);
    }
  });

  it("in dry run notes the trip and asks for none; disabled wires and streams without a policy only count", () => {
    const outcomes = stream(3, 100, 0.95, 100, 0.3);
    const dry = shipped(policy({ dryRun: true }), outcomes, [outcomes.length]);
    expect(dry.trip).toBeNull();
    expect(dry.row.dryRunTripped).toBe(true);
    expect(dry.row.lastTripReason).toMatch(/^dry run, nothing done: fleet stream X/);
    for (const p of [policy({ enabled: false }), undefined]) {
      const run = shipped(p, outcomes, [outcomes.length]);
      expect(run.trip).toBeNull();
      expect(run.row).toMatchObject({ eventsSeen: 200, dryRunTripped: false, lastTripReason: "" });
    }
  });

  it("does not trip a wire central holds tripped", () => {
    const outcomes = stream(3, 100, 0.95, 100, 0.3);
    const trip = { revision: 5, tripped: true, reason: "r", trippedMs: 1 };
    const run = runFleetWire(policy(), NEW_FLEET_WIRE, trip, [], outcomes, 0, "X");
    expect(run.trip).toBeNull();
    expect(run.row.eventsSeen).toBe(200);
  });
});

describe("re-arming a fleet wire", () => {
  const seen: FleetWireRow = {
    ...NEW_FLEET_WIRE,
    eventsSeen: 500,
    armedAfter: 100,
    frozenBaseline: 0.9,
    cusum: 40,
    dryRunTripped: true,
    trippedMs: 9,
    policyRevision: 3,
    tripRevision: 7,
  };
  const trip = (revision: number, tripped: boolean) => ({
    revision,
    tripped,
    reason: "",
    trippedMs: null,
  });

  it("restarts after the outcomes seen when central re-arms it (a newer trip entity, not tripped)", () => {
    const r = rearmed(seen, 3, trip(8, false));
    expect(r).toMatchObject({
      restartAfter: 500,
      armedAfter: 500,
      cusum: 0,
      frozenBaseline: null,
      dryRunTripped: false,
      tripRevision: 8,
    });
    // Its counts start again: nothing kept before the restart is read.
    expect(countsOf([], 10, 20)).toEqual({
      currentSuccesses: 0,
      currentEvents: 0,
      baselineSuccesses: 0,
      baselineEvents: 0,
    });
  });

  it("keeps its stream when the entities did not change, or only tripped it", () => {
    expect(rearmed(seen, 3, trip(7, false))).toEqual(seen);
    expect(rearmed(seen, 3, trip(9, true))).toEqual({ ...seen, tripRevision: 9 });
  });

  it("restarts a SEQUENTIAL chart on a policy change, keeping the stream and any trip note", () => {
    expect(rearmed(seen, 4, trip(7, false))).toMatchObject({
      restartAfter: 0,
      armedAfter: 500,
      cusum: 0,
      frozenBaseline: null,
      design: null,
      dryRunTripped: true,
      policyRevision: 4,
    });
  });
});
