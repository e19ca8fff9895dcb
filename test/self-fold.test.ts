/**
 * An engine that embeds govd has no fold timer: the KPI series and the sandbox scorecards fold
 * their trail themselves inside a call once 50,000 events went unfolded, and what they answer
 * stays what the store holds, before and after a restart.
 */
import { create } from "@bufbuild/protobuf";
import { afterEach, expect, it } from "vitest";
import { RecordSandboxTrialRequestSchema } from "../gen/governance/v1/heimdall_pb.js";
import { RecordKpiRequestSchema } from "../gen/governance/v1/regression_pb.js";
import { ManualClock } from "../src/clock.js";
import { createLeverContext, type LeverContext } from "../src/levers/context.js";
import { heimdallService } from "../src/levers/heimdall/service.js";
import { regressionService } from "../src/levers/regression/service.js";
import { openTempStore, type TempStore } from "./support/temp-store.js";

const EVENTS = 50_100;
const START = Date.UTC(2026, 2, 3, 10);

let store: TempStore | undefined;
afterEach(() => {
  store?.remove();
  store = undefined;
});

type Handler = (req: unknown) => unknown;

/** Runs `call(i)` for i in [0, n) in transactions of 1,000, as group commits would. */
function calls(ctx: LeverContext, n: number, call: (i: number) => void): void {
  for (let from = 0; from < n; from += 1_000) {
    ctx.db.transaction(() => {
      for (let i = from; i < Math.min(n, from + 1_000); i++) call(i);
    })();
  }
}

/** A lever context on a fresh store, and the handlers `service` binds to it. */
function levers(service: (ctx: LeverContext) => { handlers: unknown }) {
  store = openTempStore();
  const clock = new ManualClock(START);
  const ctx = createLeverContext(store.db, clock);
  const handlers = service(ctx).handlers as Record<string, Handler>;
  const restart = () => createLeverContext(ctx.db, clock);
  return { ctx, handlers, restart };
}

const foldedSeq = (ctx: LeverContext, key: string) =>
  ctx.db.prepare<[string], number>("SELECT value FROM meta WHERE key = ?").pluck().get(key) ?? 0;

it("folds the sandbox scorecards inside RecordSandboxTrial when nothing else does", () => {
  const { ctx, handlers, restart } = levers(heimdallService);
  calls(ctx, EVENTS, (i) =>
    handlers.recordSandboxTrial?.(
      create(RecordSandboxTrialRequestSchema, {
        domain: "BUYER_MATCH",
        success: i % 3 !== 0,
        confidence: 0.9,
        correlationId: `t-${i}`,
      }),
    ),
  );
  expect(foldedSeq(ctx, "scorecard_folded_seq")).toBeGreaterThanOrEqual(50_000);
  const day = "2026-03-03";
  const expected = { trials: EVENTS, successes: EVENTS - Math.ceil(EVENTS / 3) };
  expect(ctx.evidence.scorecard(day, "BUYER_MATCH")).toMatchObject(expected);
  // The row holds what was folded; memory and a restart add the rest once.
  const row = ctx.db
    .prepare<[], { trials: number }>(
      "SELECT trials FROM heimdall_scorecard WHERE domain = 'BUYER_MATCH'",
    )
    .get();
  expect(row?.trials).toBeGreaterThanOrEqual(49_000);
  const restarted = restart();
  expect(restarted.evidence.scorecard(day, "BUYER_MATCH")).toMatchObject(expected);
  expect(restarted.evidence.tally("BUYER_MATCH", day)).toEqual(expected);
});

it("folds the KPI series inside RecordKpi when nothing else does", () => {
  const { ctx, handlers, restart } = levers(regressionService);
  calls(ctx, EVENTS, (i) =>
    handlers.recordKpi?.(
      create(RecordKpiRequestSchema, {
        domain: "SHOP",
        metric: "conversion",
        success: i % 4 !== 0,
        value: 1,
        correlationId: `k-${i}`,
      }),
    ),
  );
  expect(foldedSeq(ctx, "kpi_folded_seq")).toBeGreaterThanOrEqual(50_000);
  const state = ctx.tripwires.seriesState("SHOP", "conversion");
  expect(state.eventsSeen).toBe(EVENTS);
  const restarted = restart();
  expect(restarted.tripwires.seriesState("SHOP", "conversion")).toEqual(state);
  expect(restarted.tripwires.windowCounts("SHOP", "conversion", 4, 8)).toEqual(
    ctx.tripwires.windowCounts("SHOP", "conversion", 4, 8),
  );
});
