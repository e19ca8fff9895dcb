/**
 * The pure rules of fleet Heimdall evidence: a sandbox trial's audit event and its booking on
 * central, the fleet's figures and one recipient's share of them (the others' trials), the
 * window central sends, and the sums a sidecar's gates take over a lookback.
 */
import { describe, expect, it } from "vitest";
import { addTallies, FleetEvidence, tallyFrom } from "../src/levers/heimdall/fleet-evidence.js";
import { evaluateGates } from "../src/levers/heimdall/rules.js";
import { SANDBOX_TRIAL_ACTION, trialEntry, trialOf } from "../src/levers/heimdall/trial-event.js";
import { evidenceLookbackDays } from "../src/sync/central/evidence-feed.js";
import {
  fleetFigures,
  othersEvidence,
  scorecardBookings,
} from "../src/sync/central/fleet-scorecard.js";

const DAY1 = Date.parse("2026-11-30T23:59:59.999Z");
const DAY2 = Date.parse("2026-12-01T00:00:00.000Z");

/** A shipped event of an audit entry, as the sidecar's store would hold it at `timeMs`. */
function shipped(entry: ReturnType<typeof trialEntry>, timeMs: number) {
  return {
    lever: entry.lever,
    action: entry.action,
    subject: entry.subject,
    ok: entry.ok,
    timeMs,
    metadataJson: JSON.stringify(entry.metadata ?? {}),
  };
}

describe("a sandbox trial's event", () => {
  it("carries the domain, the outcome and the exact confidence, and books on its UTC day", () => {
    const e = trialEntry("BUYER_MATCH", true, 0.1 + 0.2, "engine", "c-1");
    expect(e).toMatchObject({ lever: "heimdall", action: SANDBOX_TRIAL_ACTION, ok: true });
    expect(trialOf(shipped(e, DAY1))).toEqual({
      day: "2026-11-30",
      domain: "BUYER_MATCH",
      success: true,
      confidence: 0.1 + 0.2,
    });
    const failed = trialOf(shipped(trialEntry("BUYER_MATCH", false, 0.5, "e", "c-2"), DAY2));
    expect(failed).toMatchObject({ day: "2026-12-01", success: false, confidence: 0.5 });
  });

  it("books nothing for other events, and confidence 0 when its metadata is unreadable", () => {
    const trial = shipped(trialEntry("BUYER_MATCH", true, 0.9, "e", "c"), DAY1);
    expect(trialOf({ ...trial, action: "POLICY_UPSERT" })).toBeUndefined();
    expect(trialOf({ ...trial, lever: "risk" })).toBeUndefined();
    expect(trialOf({ ...trial, metadataJson: "not json" })?.confidence).toBe(0);
    expect(trialOf({ ...trial, metadataJson: '{"confidence":"x"}' })?.confidence).toBe(0);
    expect(trialOf({ ...trial, metadataJson: '{"confidence":"x"}' })?.success).toBe(true);
  });

  it("sums a shipment's trials per (day, domain), other events left out", () => {
    const ev = (domain: string, ok: boolean, confidence: number, timeMs: number) => {
      const e = trialEntry(domain, ok, confidence, "e", "c");
      return { ...shipped(e, timeMs), timeMs: BigInt(timeMs) };
    };
    const events = [
      ev("BUYER_MATCH", true, 0.9, DAY1),
      ev("BUYER_MATCH", false, 0.5, DAY1),
      ev("BUYER_MATCH", true, 0.75, DAY2),
      ev("CAPITAL_ROUTE", true, 1, DAY2),
      { ...ev("BUYER_MATCH", true, 1, DAY2), action: "PROD_ELIGIBLE" },
    ];
    const sums = scorecardBookings(events as never);
    expect(sums).toEqual([
      { day: "2026-11-30", domain: "BUYER_MATCH", trials: 2, successes: 1, confidenceSum: 1.4 },
      { day: "2026-12-01", domain: "BUYER_MATCH", trials: 1, successes: 1, confidenceSum: 0.75 },
      { day: "2026-12-01", domain: "CAPITAL_ROUTE", trials: 1, successes: 1, confidenceSum: 1 },
    ]);
  });
});

describe("the evidence central sends one sidecar", () => {
  const row = (sidecarId: string, day: string, domain: string, trials: number, ok: number) => ({
    sidecarId,
    day,
    domain,
    trials,
    successes: ok,
    confidenceSum: trials * 0.5,
  });
  const rows = [
    row("a", "2026-11-30", "BUYER_MATCH", 4, 3),
    row("b", "2026-11-30", "BUYER_MATCH", 6, 5),
    row("b", "2026-12-01", "BUYER_MATCH", 2, 2),
    row("a", "2026-12-01", "CAPITAL_ROUTE", 3, 1),
  ];

  it("sums the fleet per (day, domain)", () => {
    expect(fleetFigures(rows)).toEqual([
      { day: "2026-11-30", domain: "BUYER_MATCH", trials: 10, successes: 8, confidenceSum: 5 },
      { day: "2026-12-01", domain: "BUYER_MATCH", trials: 2, successes: 2, confidenceSum: 1 },
      { day: "2026-12-01", domain: "CAPITAL_ROUTE", trials: 3, successes: 1, confidenceSum: 1.5 },
    ]);
  });

  it("is the fleet minus the recipient's own shipped trials, days with none left out", () => {
    const fleet = fleetFigures(rows);
    const forA = othersEvidence(
      fleet,
      rows.filter((r) => r.sidecarId === "a"),
    );
    expect(forA).toEqual([
      { day: "2026-11-30", domain: "BUYER_MATCH", trials: 6, successes: 5, confidenceSum: 3 },
      { day: "2026-12-01", domain: "BUYER_MATCH", trials: 2, successes: 2, confidenceSum: 1 },
    ]);
    // A sidecar that shipped nothing gets the whole fleet; the others' shares plus its own
    // rows give the fleet back, for every recipient.
    expect(othersEvidence(fleet, [])).toEqual(fleet);
    for (const id of ["a", "b"]) {
      const own = rows.filter((r) => r.sidecarId === id);
      const back = fleetFigures([...othersEvidence(fleet, own), ...own]);
      expect(back.map((f) => [f.day, f.domain, f.trials, f.successes])).toEqual(
        fleet.map((f) => [f.day, f.domain, f.trials, f.successes]),
      );
    }
  });

  it("covers the longest lookback of central's policies, 30 days when none gives one", () => {
    expect(evidenceLookbackDays([])).toBe(30);
    expect(evidenceLookbackDays([{ lookbackDays: 7 }, { lookbackDays: 45 }])).toBe(45);
    expect(evidenceLookbackDays([{ lookbackDays: 0 }])).toBe(30);
  });
});

describe("the fleet evidence a sidecar's gates add", () => {
  const days = [
    { domain: "BUYER_MATCH", day: "2026-11-01", trials: 100, successes: 100 },
    { domain: "BUYER_MATCH", day: "2026-11-29", trials: 5, successes: 4 },
    { domain: "BUYER_MATCH", day: "2026-12-01", trials: 6, successes: 3 },
    { domain: "CAPITAL_ROUTE", day: "2026-12-01", trials: 9, successes: 9 },
  ];

  it("sums one domain's days inside the lookback only", () => {
    expect(tallyFrom(days, "BUYER_MATCH", "2026-11-29")).toEqual({ trials: 11, successes: 7 });
    expect(tallyFrom(days, "BUYER_MATCH", "2026-11-30")).toEqual({ trials: 6, successes: 3 });
    expect(tallyFrom(days, "BUYER_MATCH", "2026-12-02")).toEqual({ trials: 0, successes: 0 });
    expect(tallyFrom(days, "WHOLESALE_OFFER", "2026-01-01")).toEqual({ trials: 0, successes: 0 });
    expect(addTallies({ trials: 6, successes: 5 }, { trials: 6, successes: 6 })).toEqual({
      trials: 12,
      successes: 11,
      fleetTrials: 6,
    });
  });

  it("holds nothing until central's first message, then exactly the newest message", () => {
    const fleet = new FleetEvidence();
    expect(fleet.tally("BUYER_MATCH", "2026-11-01")).toEqual({ trials: 0, successes: 0 });
    expect(fleet.received).toBe(0);
    fleet.replace(days, 42);
    expect(fleet.tally("BUYER_MATCH", "2026-11-01")).toEqual({ trials: 111, successes: 107 });
    expect(fleet.received).toBe(42);
    fleet.replace(days.slice(3), 43);
    expect(fleet.tally("BUYER_MATCH", "2026-11-01")).toEqual({ trials: 0, successes: 0 });
    expect(fleet.tally("CAPITAL_ROUTE", "2026-12-01")).toEqual({ trials: 9, successes: 9 });
  });

  it("passes the trials gate on own plus fleet trials, and says how many were the fleet's", () => {
    const policy = {
      minConfidenceProd: 0.9,
      minSandboxTrials: 10,
      minSandboxSuccessRate: 0.8,
      prodUseEnabled: true,
      successRateBound: "RAW" as const,
      boundConfidence: 0.95,
    };
    const own = { trials: 6, successes: 6 };
    const alone = evaluateGates(policy, 0.95, own).find((g) => g.name === "sandbox_trials");
    expect(alone).toMatchObject({ observed: 6, passed: false });
    expect(alone?.detail).toBe("6 sandbox trials in the lookback, 10 needed");
    const gates = evaluateGates(policy, 0.95, addTallies(own, { trials: 6, successes: 5 }));
    expect(gates.every((g) => g.passed)).toBe(true);
    expect(gates.find((g) => g.name === "sandbox_trials")?.detail).toBe(
      "12 sandbox trials in the lookback (6 of them on other sidecars of the fleet), 10 needed",
    );
  });
});
