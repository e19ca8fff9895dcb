/** `govctl review` against a real sidecar: healthy, then denials and a tripped wire to look at. */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RegressionService, TripwireAction } from "../gen/governance/v1/regression_pb.js";
import { RiskService } from "../gen/governance/v1/risk_pb.js";
import { govctlFor } from "./support/govctl.js";
import { enableGoLive, type RunningSidecar, startSidecar, TOKEN } from "./support/sidecar.js";

interface Review {
  healthy: boolean;
  sections: {
    title: string;
    healthy: boolean;
    findings: string[];
    denialRate?: number;
    denialsByReason?: Record<string, number>;
  }[];
}

let s: RunningSidecar;
let run: ReturnType<typeof govctlFor>;
let n = 0;

async function reserve(engine: string, amount: string) {
  n++;
  return s.grpc.call(RiskService, "reserve", { engine, amount, correlationId: `rv-${n}` });
}

beforeAll(async () => {
  s = await startSidecar();
  run = govctlFor(s);
});
afterAll(() => s.stop());

describe("govctl review", () => {
  it("needs attention on a fresh store: go-live is disabled (exit 5)", async () => {
    const r = await run("review");
    expect(r.code).toBe(5);
    expect(r.stdout).toMatch(/== go-live and kill switch: LOOK AT THIS/);
    expect(r.stdout).toMatch(/go-live is disabled/);
    expect(r.stdout).toMatch(/verdict: look at this/);
  });

  it("is healthy with go-live on and a few allowed reservations (exit 0)", async () => {
    await enableGoLive(s.grpc);
    for (let i = 0; i < 20; i++) expect((await reserve("WHOLESALE", "1.00")).allowed).toBe(true);
    const r = await run("review");
    expect(r.stdout).toMatch(/verdict: healthy/);
    expect(r.code).toBe(0);
    for (const title of [
      "go-live and kill switch",
      "risk ledger 2026-03-02",
      "regression tripwires",
      "Heimdall scorecard 2026-03-02",
    ]) {
      expect(r.stdout).toContain(`== ${title}: healthy`);
    }
  });

  it("counts denials by reason and flags a denial rate above the threshold", async () => {
    for (let i = 0; i < 3; i++) expect((await reserve("WHOLESALE", "999.00")).allowed).toBe(false);
    expect((await reserve("UNKNOWN_ONE", "1.00")).allowed).toBe(false);
    const r = await run("--json", "review");
    expect(r.code).toBe(5);
    const review = JSON.parse(r.stdout) as Review;
    const ledger = review.sections.find((x) => x.title.startsWith("risk ledger"));
    expect(ledger?.healthy).toBe(false);
    expect(ledger?.denialsByReason).toEqual({ ENGINE_EXPOSURE_CAP: 3, UNKNOWN_ENGINE: 1 });
    expect(ledger?.denialRate).toBeCloseTo(4 / 24, 6);
    // A looser threshold makes the same day healthy.
    expect((await run("review", "--max-denial-rate", "0.5")).code).toBe(0);
  });

  it("shows a tripped wire with its figures", async () => {
    await s.grpc.call(
      RegressionService,
      "upsertPolicy",
      {
        domain: "BUYER_MATCH",
        metric: "match_success",
        windowEvents: 5,
        baselineEvents: 5,
        maxDropFraction: 0.2,
        action: TripwireAction.THROTTLE,
        enabled: true,
        actor: "t",
        reason: "test",
        correlationId: "arm-bm",
      },
      { token: TOKEN },
    );
    for (let i = 0; i < 10; i++) {
      await s.grpc.call(RegressionService, "recordKpi", {
        domain: "BUYER_MATCH",
        metric: "match_success",
        success: i < 5,
        value: 1,
        correlationId: `kpi-${i}`,
      });
    }
    const r = await run("review", "--max-denial-rate", "0.5");
    expect(r.code).toBe(5);
    expect(r.stdout).toMatch(/== regression tripwires: LOOK AT THIS/);
    expect(r.stdout).toMatch(/BUYER_MATCH\/match_success TRIPPED/);
    expect(r.stdout).toMatch(/throttled: BUYER_MATCH/);
  });

  it("counts only today's events, however long the history", async () => {
    // Yesterday: 60 more allowed reservations and the 4 denials above. Today: 1 denial.
    for (let i = 0; i < 60; i++) await reserve("CAPITAL", "0.01");
    s.clock.advance(86_400_000);
    expect((await reserve("UNKNOWN_TWO", "1.00")).allowed).toBe(false);
    expect((await reserve("CAPITAL", "1.00")).allowed).toBe(true);
    const review = JSON.parse(
      (await run("--json", "review", "--max-denial-rate", "0.9")).stdout,
    ) as Review;
    const ledger = review.sections.find((x) => x.title.startsWith("risk ledger"));
    expect(ledger?.title).toBe("risk ledger 2026-03-03");
    expect(ledger?.denialsByReason).toEqual({ UNKNOWN_ENGINE: 1 });
    expect(ledger?.denialRate).toBe(0.5);
  });
});
