/**
 * The sandbox scorecards in memory always equal a recomputation from the store: random
 * RecordSandboxTrial calls over three domains, some rolled back (a failed call's savepoint, a
 * whole batch whose commit failed), with folds, restarts and a day rollover between them. After
 * every step each day's scorecards and each domain's tally equal the trail's trials added up in
 * the order they were recorded, a book rebuilt from the store, and the table once every trial
 * is folded into it.
 */
import { create } from "@bufbuild/protobuf";
import fc from "fast-check";
import { afterEach, expect, it } from "vitest";
import { RecordSandboxTrialRequestSchema } from "../gen/governance/v1/heimdall_pb.js";
import { ManualClock, utcDay } from "../src/clock.js";
import { createLeverContext, type LeverContext } from "../src/levers/context.js";
import { ScorecardBook, type ScorecardRecord } from "../src/levers/heimdall/scorecard-book.js";
import { heimdallService } from "../src/levers/heimdall/service.js";
import { trialOf } from "../src/levers/heimdall/trial-event.js";
import type { Db } from "../src/store/database.js";
import { GroupCommit } from "../src/store/group-commit.js";
import { openTempStore, type TempStore } from "./support/temp-store.js";

const DOMAINS = ["WHOLESALE_OFFER", "BUYER_MATCH", "CAPITAL_ROUTE"] as const;
/** Twenty minutes before UTC midnight, so runs cross into the next day. */
const START = Date.UTC(2026, 2, 2, 23, 40);

type Op =
  | { kind: "trial"; domain: number; success: boolean; confidence: number }
  | { kind: "fold"; events: number }
  | { kind: "advance"; minutes: number }
  | { kind: "restart" }
  | { kind: "idle" };

const op: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 10,
    arbitrary: fc.record({
      kind: fc.constant("trial" as const),
      domain: fc.nat(DOMAINS.length - 1),
      success: fc.boolean(),
      confidence: fc.double({ min: 0, max: 1, noNaN: true }),
    }),
  },
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

const commitMode = fc.constantFrom("commit", "rollback", "batch-savepoint", "batch-lost");

let store: TempStore | undefined;
afterEach(() => {
  store?.remove();
  store = undefined;
});

/** Every day's scorecards from the trail's trials, added up in the order they were recorded. */
function fromTrail(db: Db): Map<string, ScorecardRecord> {
  const cards = new Map<string, ScorecardRecord>();
  const rows = db
    .prepare<[], { time_ms: number; subject: string; ok: number; metadata: string }>(
      "SELECT time_ms, subject, ok, metadata FROM audit_event WHERE lever = 'heimdall' AND action = 'SANDBOX_TRIAL' ORDER BY seq",
    )
    .all();
  for (const r of rows) {
    const b = trialOf({
      lever: "heimdall",
      action: "SANDBOX_TRIAL",
      subject: r.subject,
      ok: r.ok === 1,
      timeMs: r.time_ms,
      metadataJson: r.metadata,
    });
    if (!b) continue;
    const key = `${b.day}|${b.domain}`;
    const c = cards.get(key) ?? {
      domain: b.domain,
      day: b.day,
      trials: 0,
      successes: 0,
      confidenceSum: 0,
    };
    cards.set(key, {
      ...c,
      trials: c.trials + 1,
      successes: c.successes + (b.success ? 1 : 0),
      confidenceSum: c.confidenceSum + b.confidence,
    });
  }
  return cards;
}

it("the sandbox scorecards in memory equal a recomputation from the store after every step", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.tuple(op, commitMode), { minLength: 1, maxLength: 60 }),
      async (steps) => {
        store?.remove();
        store = openTempStore();
        const db = store.db;
        const clock = new ManualClock(START);
        let ctx: LeverContext = createLeverContext(db, clock);
        type Handler = (req: unknown) => unknown;
        let handlers = heimdallService(ctx).handlers as unknown as Record<string, Handler>;
        const days = [utcDay(START), utcDay(START + 3_600_000)];
        let n = 0;
        const call = (o: Op) => {
          if (o.kind === "trial") {
            handlers.recordSandboxTrial?.(
              create(RecordSandboxTrialRequestSchema, {
                domain: DOMAINS[o.domain],
                success: o.success,
                confidence: o.confidence,
                correlationId: `t-${++n}`,
              }),
            );
          } else if (o.kind === "fold") ctx.evidence.fold(o.events);
        };
        const check = () => {
          const trail = fromTrail(db);
          const rebuilt = new ScorecardBook(db);
          db.exec("SAVEPOINT check_fold");
          let folded: ScorecardRecord[][];
          try {
            new ScorecardBook(db).fold(Number.MAX_SAFE_INTEGER);
            const rows = new ScorecardBook(db);
            folded = days.map((d) => rows.scorecards(d));
          } finally {
            db.exec("ROLLBACK TO check_fold; RELEASE check_fold");
          }
          days.forEach((day, i) => {
            const expected = [...trail.values()]
              .filter((c) => c.day === day)
              .sort((a, b) => (a.domain < b.domain ? -1 : 1));
            expect(ctx.evidence.scorecards(day)).toEqual(expected);
            expect(rebuilt.scorecards(day)).toEqual(expected);
            expect(folded[i]).toEqual(expected);
            for (const domain of DOMAINS) {
              const card = trail.get(`${day}|${domain}`);
              expect(ctx.evidence.scorecard(day, domain)).toEqual(
                card ?? { domain, day, trials: 0, successes: 0, confidenceSum: 0 },
              );
            }
          });
          for (const domain of DOMAINS) {
            for (const from of days) {
              const cards = [...trail.values()].filter((c) => c.domain === domain && c.day >= from);
              expect(ctx.evidence.tally(domain, from)).toEqual({
                trials: cards.reduce((s, c) => s + c.trials, 0),
                successes: cards.reduce((s, c) => s + c.successes, 0),
              });
            }
          }
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
            check();
            continue;
          }
          if (o.kind === "restart") {
            ctx = createLeverContext(db, clock);
            handlers = heimdallService(ctx).handlers as unknown as typeof handlers;
            check();
            continue;
          }
          if (mode === "commit") db.transaction(() => call(o))();
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
            const batch = new GroupCommit(db);
            void batch.run(() => call(o)).catch(() => undefined);
            void batch
              .run(() => {
                call({ kind: "trial", domain: 0, success: true, confidence: 0.3 });
                throw new Error("this call fails after its trial");
              })
              .catch(() => undefined);
            if (mode === "batch-savepoint") batch.commit();
            else db.exec("ROLLBACK");
          }
          check();
        }
      },
    ),
    { numRuns: 60 },
  );
});
