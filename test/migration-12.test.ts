/**
 * Migration 12 (one row per decision for RecordKpi): a store of version 10, whose outcomes are
 * kpi_event rows with no KPI audit event (as an older govd wrote them), migrates up with its
 * series intact in memory; outcomes recorded at version 12 write only their audit events, and a
 * wire's window reaches back across them into the old rows; down folds them into the tables,
 * so version 10 finds every outcome, count and chart; and up again gives the same series. The
 * same for sandbox trials and the day's scorecards.
 */
import { create } from "@bufbuild/protobuf";
import { afterEach, expect, it } from "vitest";
import { RecordSandboxTrialRequestSchema } from "../gen/governance/v1/heimdall_pb.js";
import {
  RecordKpiRequestSchema,
  RegressionServiceUpsertPolicyRequestSchema,
  TripwireMethod,
} from "../gen/governance/v1/regression_pb.js";
import { ManualClock } from "../src/clock.js";
import { createLeverContext, type LeverContext } from "../src/levers/context.js";
import { heimdallService } from "../src/levers/heimdall/service.js";
import { regressionService } from "../src/levers/regression/service.js";
import { verifyChain } from "../src/store/audit-trail.js";
import { type Db, migrateTo, schemaVersion } from "../src/store/database.js";
import { LATEST_VERSION } from "../src/store/migrations.js";
import { openTempStore, type TempStore } from "./support/temp-store.js";

const T0 = Date.UTC(2026, 2, 2, 12);

let store: TempStore | undefined;
afterEach(() => {
  store?.remove();
  store = undefined;
});

type Handler = (req: unknown) => unknown;

function record(ctx: LeverContext, domain: string, metric: string, success: boolean): void {
  const h = regressionService(ctx).handlers as unknown as Record<string, Handler>;
  h.recordKpi?.(create(RecordKpiRequestSchema, { domain, metric, success, value: 1 }));
}

/** A series' outcomes in the tables, newest first (what an older govd reads). */
function rows(db: Db, domain: string, metric: string): boolean[] {
  return db
    .prepare<[string, string], number>(
      "SELECT success FROM kpi_event WHERE domain = ? AND metric = ? ORDER BY id DESC",
    )
    .pluck()
    .all(domain, metric)
    .map((s) => s === 1);
}

function countsOf(newestFirst: readonly boolean[], window: number, baseline: number) {
  const current = newestFirst.slice(0, window);
  const before = newestFirst.slice(window, window + baseline);
  return {
    currentSuccesses: current.filter(Boolean).length,
    currentEvents: current.length,
    baselineSuccesses: before.filter(Boolean).length,
    baselineEvents: before.length,
  };
}

it("migrates a store with outcomes up, records outcomes as events alone, and folds them down", () => {
  store = openTempStore(10);
  const db = store.db;
  // Version 10, as an older govd left it: 300 outcomes of one series, counted.
  const insert = db.prepare(
    "INSERT INTO kpi_event (domain, metric, success, value, time_ms) VALUES ('WHOLESALE', 'contract_rate', ?, 1, ?)",
  );
  const old: boolean[] = []; // oldest first
  db.transaction(() => {
    for (let i = 0; i < 300; i++) {
      old.push(i % 4 !== 0);
      insert.run(i % 4 !== 0 ? 1 : 0, T0 - 1000 + i);
    }
    db.exec(`INSERT INTO tripwire_state (domain, metric, events_seen, tripped, tripped_ms, last_trip_reason)
      VALUES ('WHOLESALE', 'contract_rate', 300, 0, NULL, '')`);
  })();

  migrateTo(db);
  expect(schemaVersion(db)).toBe(LATEST_VERSION);
  const clock = new ManualClock(T0);
  let ctx = createLeverContext(db, clock);
  const w = ctx.tripwires;
  expect(w.seriesState("WHOLESALE", "contract_rate").eventsSeen).toBe(300);
  expect(w.lastKpiId("WHOLESALE", "contract_rate")).toBe(300);
  expect(w.windowCounts("WHOLESALE", "contract_rate", 50, 200)).toEqual(
    countsOf([...old].reverse(), 50, 200),
  );

  // A SEQUENTIAL wire with an operator's baseline, and outcomes of both series at version 12.
  const h = regressionService(ctx).handlers as unknown as Record<string, Handler>;
  db.transaction(() =>
    h.upsertPolicy?.(
      create(RegressionServiceUpsertPolicyRequestSchema, {
        domain: "CAPITAL",
        metric: "roi_event",
        method: TripwireMethod.SEQUENTIAL,
        windowEvents: 10,
        baselineEvents: 20,
        maxDropFraction: 0.3,
        baselineRate: 0.9,
        enabled: true,
        actor: "test",
        reason: "test",
      }),
    ),
  )();
  const outcomesBefore = db.prepare("SELECT count(*) FROM kpi_event").pluck().get();
  const series = [...old];
  db.transaction(() => {
    for (let i = 0; i < 30; i++) {
      series.push(i % 3 !== 0);
      record(ctx, "WHOLESALE", "contract_rate", i % 3 !== 0);
      record(ctx, "CAPITAL", "roi_event", i % 6 !== 5);
    }
  })();
  // Only audit events were written.
  expect(db.prepare("SELECT count(*) FROM kpi_event").pluck().get()).toBe(outcomesBefore);
  expect(
    db
      .prepare("SELECT events_seen FROM tripwire_state WHERE metric = 'contract_rate'")
      .pluck()
      .get(),
  ).toBe(300);
  const chart = w.seriesState("CAPITAL", "roi_event");
  expect(chart.eventsSeen).toBe(30);
  expect(chart.design).not.toBeNull();
  expect(chart.cusum).toBeGreaterThan(0);
  const drop = w.seriesState("WHOLESALE", "contract_rate");
  expect(drop.eventsSeen).toBe(330);
  // The window reaches back across the new outcomes into the old rows.
  const expected = countsOf([...series].reverse(), 50, 200);
  expect(w.windowCounts("WHOLESALE", "contract_rate", 50, 200)).toEqual(expected);
  expect(w.lastKpiId("WHOLESALE", "contract_rate")).toBeGreaterThan(300);

  // Down: the tables hold every outcome, count and chart, as version 10 reads them.
  migrateTo(db, 10);
  expect(rows(db, "WHOLESALE", "contract_rate")).toEqual([...series].reverse());
  expect(rows(db, "CAPITAL", "roi_event")).toHaveLength(30);
  const stateRow = db.prepare<[string], { events_seen: number; cusum: number }>(
    "SELECT events_seen, cusum FROM tripwire_state WHERE metric = ?",
  );
  const state = (metric: string) => stateRow.get(metric);
  expect(state("contract_rate")).toEqual({ events_seen: 330, cusum: 0 });
  expect(state("roi_event")).toEqual({ events_seen: 30, cusum: chart.cusum });
  expect(verifyChain(db).ok).toBe(true);

  // An older govd appends after the folded ids; up again reads the same series.
  insert.run(0, T0 + 5000);
  db.exec("UPDATE tripwire_state SET events_seen = events_seen + 1 WHERE metric = 'contract_rate'");
  series.push(false);
  migrateTo(db);
  ctx = createLeverContext(db, clock);
  expect(ctx.tripwires.seriesState("CAPITAL", "roi_event")).toEqual(chart);
  expect(ctx.tripwires.seriesState("WHOLESALE", "contract_rate")).toEqual({
    ...drop,
    eventsSeen: 331,
  });
  expect(ctx.tripwires.windowCounts("WHOLESALE", "contract_rate", 50, 200)).toEqual(
    countsOf([...series].reverse(), 50, 200),
  );
  record(ctx, "WHOLESALE", "contract_rate", true);
  expect(ctx.tripwires.lastKpiId("WHOLESALE", "contract_rate")).toBeGreaterThan(331);
  expect(verifyChain(db).ok).toBe(true);
});

it("keeps a store's sandbox scorecards through up, trials recorded as events alone, and down", () => {
  store = openTempStore(10);
  const db = store.db;
  const day = "2026-03-02";
  db.exec(`INSERT INTO heimdall_scorecard (day, domain, trials, successes, confidence_sum)
    VALUES ('${day}', 'BUYER_MATCH', 4, 3, 3.5)`);
  migrateTo(db);
  const clock = new ManualClock(T0);
  const ctx = createLeverContext(db, clock);
  expect(ctx.evidence.scorecard(day, "BUYER_MATCH")).toEqual({
    domain: "BUYER_MATCH",
    day,
    trials: 4,
    successes: 3,
    confidenceSum: 3.5,
  });
  const h = heimdallService(ctx).handlers as unknown as Record<string, Handler>;
  db.transaction(() => {
    for (const success of [true, false, true]) {
      h.recordSandboxTrial?.(
        create(RecordSandboxTrialRequestSchema, {
          domain: "BUYER_MATCH",
          success,
          confidence: 0.25,
        }),
      );
    }
  })();
  // Only audit events were written; the scorecard in memory holds the trials.
  expect(db.prepare("SELECT trials FROM heimdall_scorecard").pluck().get()).toBe(4);
  const card = { domain: "BUYER_MATCH", day, trials: 7, successes: 5, confidenceSum: 4.25 };
  expect(ctx.evidence.scorecard(day, "BUYER_MATCH")).toEqual(card);
  expect(ctx.evidence.tally("BUYER_MATCH", day)).toEqual({ trials: 7, successes: 5 });
  migrateTo(db, 10);
  expect(
    db
      .prepare("SELECT trials, successes, confidence_sum FROM heimdall_scorecard WHERE day = ?")
      .get(day),
  ).toEqual({ trials: 7, successes: 5, confidence_sum: 4.25 });
  migrateTo(db);
  expect(createLeverContext(db, clock).evidence.scorecard(day, "BUYER_MATCH")).toEqual(card);
  expect(verifyChain(db).ok).toBe(true);
});
