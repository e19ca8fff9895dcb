/**
 * The in-memory risk book always equals a full recomputation from the store's audit trail:
 * random Reserve, Settle, Release and TTL sweeps, some of them rolled back (a failed call's
 * savepoint, a whole batch whose commit failed), folds into the tables, day rollovers and
 * restarts (a new book rebuilt from the store) in between.
 */
import { create } from "@bufbuild/protobuf";
import fc from "fast-check";
import { afterEach, expect, it } from "vitest";
import {
  ReleaseRequestSchema,
  ReserveRequestSchema,
  SettleRequestSchema,
} from "../gen/governance/v1/risk_pb.js";
import { ManualClock, utcDay } from "../src/clock.js";
import { createLeverContext, type LeverContext } from "../src/levers/context.js";
import { releaseExpired } from "../src/levers/risk/reservations.js";
import { riskService } from "../src/levers/risk/service.js";
import { GroupCommit } from "../src/store/group-commit.js";
import { type Figures, LEDGERS, recompute, statuses } from "./support/risk-trail.js";
import { openTempStore, type TempStore } from "./support/temp-store.js";

const ENGINES = ["E1", "E2", "TIGHT", "NOPOLICY"] as const;
/** Ten minutes before UTC midnight, so runs cross into the next day. */
const START = Date.UTC(2026, 2, 2, 23, 50);

/** What the book says, for the same ledgers. */
function fromBook(ctx: LeverContext, day: string): Map<string, Figures> {
  return new Map(
    LEDGERS.map((e) => {
      const u = ctx.risk.usage(day, e);
      return [e, { ...u }];
    }),
  );
}

type Op =
  | { kind: "reserve"; engine: number; cents: number; ttlSeconds: number }
  | { kind: "settle"; pick: number; lossCents: number }
  | { kind: "release"; pick: number }
  | { kind: "advance"; seconds: number }
  | { kind: "sweep"; limit: number }
  | { kind: "fold"; events: number }
  | { kind: "restart" }
  | { kind: "idle" };

const op: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant("reserve" as const),
      engine: fc.nat(ENGINES.length - 1),
      cents: fc.integer({ min: 1, max: 40_000 }),
      ttlSeconds: fc.integer({ min: 30, max: 900 }),
    }),
  },
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant("settle" as const),
      pick: fc.nat(),
      lossCents: fc.nat(50_000),
    }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("release" as const), pick: fc.nat() }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant("advance" as const),
      seconds: fc.integer({ min: 1, max: 400 }),
    }),
  },
  {
    weight: 1,
    // Past the 16 releaseExpired reads at a time, some sweeps read the snapshot twice.
    arbitrary: fc.record({
      kind: fc.constant("sweep" as const),
      limit: fc.integer({ min: 1, max: 20 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant("fold" as const),
      events: fc.integer({ min: 1, max: 6 }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("restart" as const) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("idle" as const) }) },
);

/** How a step is committed: alone, rolled back, or in a batch of which some part fails. */
const commitMode = fc.constantFrom("commit", "rollback", "batch-savepoint", "batch-lost");

let store: TempStore | undefined;
afterEach(() => {
  store?.remove();
  store = undefined;
});

const money = (cents: number) =>
  `${Math.floor(cents / 100)}.${String(cents % 100).padStart(2, "0")}`;

it("the in-memory ledgers equal a recomputation from the store after every step", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.tuple(op, commitMode), { minLength: 1, maxLength: 60 }),
      async (steps) => {
        store?.remove();
        store = openTempStore();
        const db = store.db;
        const clock = new ManualClock(START);
        let ctx = createLeverContext(db, clock);
        const caps = (engine: string, openRisk: bigint) =>
          ctx.risk.savePolicy({
            engine,
            maxDailyLoss: 10n ** 15n,
            maxDailyExposure: 10n ** 15n,
            maxOpenRisk: openRisk,
            maxActionsPerDay: 1_000_000,
            enabled: true,
            updatedBy: "test",
            updatedMs: START,
          });
        for (const e of ["GLOBAL", "E1", "E2"]) caps(e, 10n ** 15n);
        caps("TIGHT", 500_000_000n);
        ctx.goLive.set({ goLiveEnabled: true, killSwitchEngaged: false }, "test", "test", START);
        let handlers = riskService(ctx).handlers as unknown as Record<
          string,
          (req: unknown) => { reservationId?: string }
        >;
        const ids: string[] = [];
        let n = 0;
        /** What the last sweep released (below its limit: it found no other expired one). */
        let swept = 0;
        const call = (o: Op) => {
          const cid = `c-${++n}`;
          const pick = (i: number) => ids[i % Math.max(ids.length, 1)] ?? "none";
          if (o.kind === "reserve") {
            const req = create(ReserveRequestSchema, {
              engine: ENGINES[o.engine],
              amount: money(o.cents),
              ttlSeconds: o.ttlSeconds,
              correlationId: cid,
            });
            const id = handlers.reserve?.(req).reservationId;
            if (id) ids.push(id);
          } else if (o.kind === "settle") {
            handlers.settle?.(
              create(SettleRequestSchema, {
                reservationId: pick(o.pick),
                realizedLoss: money(o.lossCents),
                lossExceedsAmount: o.lossCents % 2 === 0,
                correlationId: cid,
              }),
            );
          } else if (o.kind === "release") {
            handlers.release?.(
              create(ReleaseRequestSchema, { reservationId: pick(o.pick), correlationId: cid }),
            );
          } else if (o.kind === "sweep") {
            swept = o.limit; // a sweep that fails proves nothing about what is left
            swept = releaseExpired(ctx, o.limit);
          } else if (o.kind === "fold") ctx.risk.fold(o.events);
        };
        const attempt = (o: Op) => {
          try {
            call(o);
          } catch {
            // Refusals (already settled, unknown id, a loss past the amount) book nothing.
          }
        };
        /** The book equals the trail: ledgers, open risk, and where each reservation stands. */
        const check = () => {
          const day = utcDay(clock.now());
          expect(fromBook(ctx, day)).toEqual(recompute(db, day));
          const trail = statuses(db);
          for (const id of ids) expect(ctx.risk.reservation(id)?.status).toBe(trail.get(id));
          // No reservation is released or settled twice (a sweep that released a closed one
          // again). A Settle after the TTL released it is allowed: it books the loss.
          expect(
            db
              .prepare(
                `SELECT reservation_id FROM audit_event WHERE lever = 'risk'
                 AND action IN ('SETTLE', 'RELEASE') GROUP BY reservation_id
                 HAVING sum(action = 'RELEASE') > 1 OR sum(action = 'SETTLE') > 1`,
              )
              .all(),
          ).toEqual([]);
        };
        /** Reservations the trail holds as open whose TTL has passed. */
        const expiredInTrail = () =>
          db
            .prepare(
              `SELECT r.reservation_id FROM audit_event r WHERE r.lever = 'risk'
               AND r.action = 'RESERVE' AND r.expires_ms <= ? AND NOT EXISTS (
                 SELECT 1 FROM audit_event c WHERE c.lever = 'risk' AND c.reservation_id = r.reservation_id
                 AND c.action IN ('SETTLE', 'RELEASE'))`,
            )
            .pluck()
            .all(clock.now());
        for (const [o, mode] of steps) {
          if (o.kind === "advance") {
            clock.advance(o.seconds * 1000);
            check();
            continue;
          }
          if (o.kind === "idle") {
            // A turn of the event loop: the book learns what is committed, and trims what a
            // fold moved into the tables.
            await new Promise((r) => setImmediate(r));
            await new Promise((r) => setImmediate(r));
            check();
            continue;
          }
          if (o.kind === "restart") {
            ctx = createLeverContext(db, clock);
            handlers = riskService(ctx).handlers as unknown as typeof handlers;
            check();
            continue;
          }
          const before = ids.length;
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
                call({ kind: "reserve", engine: 0, cents: 100, ttlSeconds: 60 });
                throw new Error("this call fails after its Reserve");
              })
              .catch(() => undefined);
            if (mode === "batch-savepoint") batch.commit();
            else db.exec("ROLLBACK"); // the shared commit failed: nothing of the batch is kept
          }
          // Ids of reservations a rollback took away may still be picked: they must be unknown.
          if (mode !== "commit" && mode !== "batch-savepoint") ids.length = before;
          check();
          // A committed sweep that released fewer than it could left nothing expired open.
          if (o.kind === "sweep" && mode === "commit" && swept < o.limit) {
            expect(expiredInTrail()).toEqual([]);
          }
        }
        // A book rebuilt from the store says the same, and so do the folded tables.
        const day = utcDay(clock.now());
        const rebuilt = createLeverContext(db, clock);
        expect(fromBook(rebuilt, day)).toEqual(recompute(db, day));
        db.transaction(() => ctx.risk.fold(Number.MAX_SAFE_INTEGER))();
        const tables = new Map(
          (
            db
              .prepare(
                "SELECT engine, exposure, realized_loss, actions, denials FROM risk_ledger WHERE day = ?",
              )
              .safeIntegers(true)
              .all(day) as {
              engine: string;
              exposure: bigint;
              realized_loss: bigint;
              actions: bigint;
              denials: bigint;
            }[]
          ).map((r) => [r.engine, r]),
        );
        const open = new Map(
          (
            db.prepare("SELECT engine, open_risk FROM risk_open").safeIntegers(true).all() as {
              engine: string;
              open_risk: bigint;
            }[]
          ).map((r) => [r.engine, r.open_risk]),
        );
        for (const [engine, f] of recompute(db, day)) {
          const row = tables.get(engine);
          expect([
            row?.exposure ?? 0n,
            row?.realized_loss ?? 0n,
            Number(row?.actions ?? 0n),
            Number(row?.denials ?? 0n),
            open.get(engine) ?? 0n,
          ]).toEqual([f.exposure, f.realizedLoss, f.actions, f.denials, f.openRisk]);
        }
      },
    ),
    { numRuns: 120 },
  );
});
