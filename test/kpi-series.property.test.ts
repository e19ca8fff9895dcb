/**
 * The in-memory KPI series always equal a recomputation from the store: random RecordKpi calls
 * over a few series (a RELATIVE_DROP wire, a SEQUENTIAL wire with an operator's baseline, a
 * dry-run SEQUENTIAL wire with a measured one, a series without a wire), some rolled back (a
 * failed call's savepoint, a whole batch whose commit failed), with folds, re-arms, resets,
 * Evaluate calls, restarts and a day rollover between them. After every step each series' count,
 * windows and newest id equal what the audit trail holds; its whole state equals that of a
 * series rebuilt from the store, and that of the tables once every event is folded into them.
 */
import { create } from "@bufbuild/protobuf";
import fc from "fast-check";
import { afterEach, expect, it } from "vitest";
import {
  EvaluateRequestSchema,
  RecordKpiRequestSchema,
  RegressionServiceUpsertPolicyRequestSchema,
  ResetTripwireRequestSchema,
  TripwireMethod,
} from "../gen/governance/v1/regression_pb.js";
import { ManualClock } from "../src/clock.js";
import { createLeverContext, type LeverContext } from "../src/levers/context.js";
import { regressionService } from "../src/levers/regression/service.js";
import { type SeriesState, Tripwires } from "../src/levers/regression/tripwires.js";
import type { Db } from "../src/store/database.js";
import { GroupCommit } from "../src/store/group-commit.js";
import { openTempStore, type TempStore } from "./support/temp-store.js";

const DOMAIN = "SHOP";
const SERIES = ["drop", "chart", "dry", "bare"] as const;
/** Twenty minutes before UTC midnight, so runs cross into the next day. */
const START = Date.UTC(2026, 2, 2, 23, 40);

/** The wires: [metric, UpsertPolicy fields]; `bare` has none. */
const WIRES = [
  {
    metric: "drop",
    method: TripwireMethod.RELATIVE_DROP,
    windowEvents: 4,
    baselineEvents: 8,
    minEventsToEnforce: 6,
    maxDropFraction: 0.3,
  },
  {
    metric: "chart",
    method: TripwireMethod.SEQUENTIAL,
    windowEvents: 4,
    baselineEvents: 8,
    maxDropFraction: 0.5,
    baselineRate: 0.9,
    expectedEventsBetweenFalseAlarms: 40,
  },
  {
    metric: "dry",
    method: TripwireMethod.SEQUENTIAL,
    windowEvents: 3,
    baselineEvents: 6,
    maxDropFraction: 0.5,
    expectedEventsBetweenFalseAlarms: 30,
    dryRun: true,
  },
] as const;

type Op =
  | { kind: "record"; series: number; success: boolean }
  | { kind: "upsert"; wire: number; enabled: boolean }
  | { kind: "reset"; wire: number }
  | { kind: "evaluate" }
  | { kind: "fold"; events: number }
  | { kind: "advance"; minutes: number }
  | { kind: "restart" }
  | { kind: "idle" };

const op: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 12,
    arbitrary: fc.record({
      kind: fc.constant("record" as const),
      series: fc.nat(SERIES.length - 1),
      // Mostly failures on some runs, mostly successes on others: wires trip and stay armed.
      success: fc.boolean(),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant("upsert" as const),
      wire: fc.nat(WIRES.length - 1),
      enabled: fc.boolean(),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({ kind: fc.constant("reset" as const), wire: fc.nat(WIRES.length - 1) }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("evaluate" as const) }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant("fold" as const),
      events: fc.integer({ min: 1, max: 8 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant("advance" as const),
      minutes: fc.integer({ min: 1, max: 30 }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("restart" as const) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("idle" as const) }) },
);

/** How a step is committed: alone, rolled back, or in a batch of which some part fails. */
const commitMode = fc.constantFrom("commit", "rollback", "batch-savepoint", "batch-lost");

let store: TempStore | undefined;
afterEach(() => {
  store?.remove();
  store = undefined;
});

/** What a wire decides on, counted from outcomes listed newest first. */
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

/** A series' outcomes as the audit trail holds them, newest first, with their sequence numbers. */
function trailOf(db: Db, metric: string): { seq: number; ok: number }[] {
  return db
    .prepare<[string], { seq: number; ok: number }>(
      "SELECT seq, ok FROM audit_event WHERE lever = 'kpi' AND subject = ? ORDER BY seq DESC",
    )
    .all(`${DOMAIN}/${metric}`);
}

/** Every series' state once all events are folded into the tables (the fold is then undone). */
function foldedStates(db: Db): Map<string, SeriesState> {
  db.exec("SAVEPOINT check_fold");
  try {
    const wires = new Tripwires(db);
    wires.fold(Number.MAX_SAFE_INTEGER);
    // A series read now has no event after the fold: it is its row alone.
    return new Map(SERIES.map((m) => [m, wires.seriesState(DOMAIN, m)]));
  } finally {
    db.exec("ROLLBACK TO check_fold; RELEASE check_fold");
  }
}

it("the in-memory KPI series equal a recomputation from the store after every step", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.tuple(op, commitMode), { minLength: 1, maxLength: 70 }),
      async (steps) => {
        store?.remove();
        store = openTempStore();
        const db = store.db;
        const clock = new ManualClock(START);
        let ctx: LeverContext = createLeverContext(db, clock);
        type Handler = (req: unknown) => unknown;
        let handlers = regressionService(ctx).handlers as unknown as Record<string, Handler>;
        const upsert = (wire: number, enabled: boolean) => {
          const w = WIRES[wire];
          handlers.upsertPolicy?.(
            create(RegressionServiceUpsertPolicyRequestSchema, {
              domain: DOMAIN,
              ...w,
              enabled,
              actor: "test",
              reason: "property test",
            }),
          );
        };
        db.transaction(() => {
          for (let i = 0; i < WIRES.length; i++) upsert(i, true);
        })();
        let n = 0;
        const call = (o: Op) => {
          const correlationId = `c-${++n}`;
          if (o.kind === "record") {
            handlers.recordKpi?.(
              create(RecordKpiRequestSchema, {
                domain: DOMAIN,
                metric: SERIES[o.series],
                success: o.success,
                value: n,
                correlationId,
              }),
            );
          } else if (o.kind === "upsert") upsert(o.wire, o.enabled);
          else if (o.kind === "reset") {
            handlers.resetTripwire?.(
              create(ResetTripwireRequestSchema, {
                domain: DOMAIN,
                metric: WIRES[o.wire]?.metric,
                reason: "re-arm",
                correlationId,
              }),
            );
          } else if (o.kind === "evaluate") {
            handlers.evaluate?.(create(EvaluateRequestSchema, { domain: DOMAIN }));
          } else if (o.kind === "fold") ctx.tripwires.fold(o.events);
        };
        const attempt = (o: Op) => {
          try {
            call(o);
          } catch {
            // A reset of a wire that is not tripped is refused and writes nothing.
          }
        };
        const check = () => {
          const rebuilt = new Tripwires(db);
          const folded = foldedStates(db);
          for (const metric of SERIES) {
            const trail = trailOf(db, metric);
            const outcomes = trail.map((e) => e.ok === 1);
            const state = ctx.tripwires.seriesState(DOMAIN, metric);
            expect(state.eventsSeen).toBe(trail.length);
            expect(ctx.tripwires.lastKpiId(DOMAIN, metric)).toBe(trail[0]?.seq ?? 0);
            expect(ctx.tripwires.windowCounts(DOMAIN, metric, 4, 8)).toEqual(
              countsOf(outcomes, 4, 8),
            );
            expect(ctx.tripwires.windowCounts(DOMAIN, metric, 3, 20)).toEqual(
              countsOf(outcomes, 3, 20),
            );
            expect(rebuilt.seriesState(DOMAIN, metric)).toEqual(state);
            expect(folded.get(metric)).toEqual(state);
          }
          expect([...ctx.tripwires.throttled()].sort()).toEqual([...rebuilt.throttled()].sort());
        };
        for (const [o, mode] of steps) {
          if (o.kind === "advance") {
            clock.advance(o.minutes * 60_000);
            check();
            continue;
          }
          if (o.kind === "idle") {
            await new Promise((r) => setImmediate(r));
            await new Promise((r) => setImmediate(r));
            expect(ctx.tripwires.uncommitted).toBe(0);
            check();
            continue;
          }
          if (o.kind === "restart") {
            ctx = createLeverContext(db, clock);
            handlers = regressionService(ctx).handlers as unknown as typeof handlers;
            check();
            continue;
          }
          if (mode === "commit") db.transaction(() => attempt(o))();
          else if (mode === "rollback") {
            try {
              db.transaction(() => {
                call(o);
                throw new Error("rolled back after its writes");
              })();
            } catch {
              // expected
            }
          } else {
            // A batch: this step, then a call that fails inside its own savepoint after writing.
            const batch = new GroupCommit(db);
            void batch.run(() => attempt(o)).catch(() => undefined);
            void batch
              .run(() => {
                call({ kind: "record", series: 0, success: false });
                call({ kind: "record", series: 1, success: false });
                throw new Error("this call fails after its outcomes");
              })
              .catch(() => undefined);
            if (mode === "batch-savepoint") batch.commit();
            else db.exec("ROLLBACK"); // the shared commit failed: nothing of the batch is kept
          }
          check();
        }
      },
    ),
    {
      numRuns: 60,
      examples: [
        // A re-arm rolled back after its write: the wire must stay tripped in memory (a check of
        // the stored row that always failed once let the series be read back mid-transaction).
        [
          [
            [{ kind: "record", series: 1, success: false }, "commit"],
            [{ kind: "record", series: 1, success: false }, "commit"],
            [{ kind: "reset", wire: 1 }, "rollback"],
            [{ kind: "reset", wire: 1 }, "batch-lost"],
          ],
        ],
      ],
    },
  );
});
