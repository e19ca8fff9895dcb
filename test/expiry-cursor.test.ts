/**
 * The TTL sweep reads the stored open reservations after a cursor (the ones closed since the
 * last fold are skipped once, not read again by every batch). Cases in which a cursor moved
 * too far would leave an expired reservation open for good: a lookup whose answer was cut
 * short by newer reservations expiring first, and a sweep rolled back after the cursor moved.
 */
import { create } from "@bufbuild/protobuf";
import { afterEach, expect, it } from "vitest";
import { fillExpiredBacklog } from "../bench/expired-backlog.js";
import { ReserveRequestSchema, SettleRequestSchema } from "../gen/governance/v1/risk_pb.js";
import { ManualClock } from "../src/clock.js";
import { createLeverContext, type LeverContext } from "../src/levers/context.js";
import { releaseExpired } from "../src/levers/risk/reservations.js";
import { riskService } from "../src/levers/risk/service.js";
import { openTempStore, type TempStore } from "./support/temp-store.js";

const T0 = Date.UTC(2026, 2, 2, 10, 0, 0);
let store: TempStore | undefined;
afterEach(() => {
  store?.remove();
  store = undefined;
});

/** A store whose tables hold `stored` open reservations expiring at T0 + 60 s + i ms. */
function setUp(stored: number): { ctx: LeverContext; clock: ManualClock } {
  store = openTempStore();
  if (stored > 0) {
    fillExpiredBacklog(store.db, {
      count: stored,
      engine: "WHOLESALE",
      amountMicros: 1_000_000,
      expiredMs: T0 + 60_000,
    });
  }
  const clock = new ManualClock(T0);
  const ctx = createLeverContext(store.db, clock);
  for (const engine of ["GLOBAL", "WHOLESALE"]) {
    ctx.risk.savePolicy({
      engine,
      maxDailyLoss: 10n ** 12n,
      maxDailyExposure: 10n ** 12n,
      maxOpenRisk: 10n ** 12n,
      maxActionsPerDay: 1_000_000,
      enabled: true,
      updatedBy: "test",
      updatedMs: T0,
    });
  }
  ctx.goLive.set({ goLiveEnabled: true, killSwitchEngaged: false }, "test", "test", T0);
  return { ctx, clock };
}

type Handlers = Record<string, (req: unknown) => { reservationId?: string }>;

/** Reserves `count` of 1.00 on WHOLESALE for `ttlSeconds`; returns their ids. */
function reserve(ctx: LeverContext, count: number, ttlSeconds: number): string[] {
  const handlers = riskService(ctx).handlers as unknown as Handlers;
  return Array.from({ length: count }, (_, i) => {
    const req = create(ReserveRequestSchema, {
      engine: "WHOLESALE",
      amount: "1.00",
      ttlSeconds,
      correlationId: `reserve-${ttlSeconds}-${i}`,
    });
    return handlers.reserve?.(req).reservationId ?? "";
  });
}

/** Two turns of the event loop: the book learns of commits, and trims what a fold stored. */
const turns = async () => {
  await new Promise((r) => setImmediate(r));
  await new Promise((r) => setImmediate(r));
};

/** Open risk left by reservations whose TTL has passed, in the book. */
function expiredLeft(ctx: LeverContext, nowMs: number): string[] {
  return ctx.risk.expiredReservations(nowMs, 1_000).map((r) => r.id);
}

it("finds a stored reservation again when newer ones that expired first took its place", () => {
  const { ctx, clock } = setUp(3);
  const handlers = riskService(ctx).handlers as unknown as Handlers;
  // Three reservations decided now (in memory, not folded) expire before the stored ones.
  expect(reserve(ctx, 3, 30).every(Boolean)).toBe(true);
  // The second stored one is settled: the lookup skips it, after the first (still open).
  handlers.settle?.(
    create(SettleRequestSchema, {
      reservationId: "backlog-00000002",
      realizedLoss: "0.00",
      correlationId: "settle-2",
    }),
  );
  clock.advance(120_000);
  // Three at a time: the newer three come first, the stored first and third wait.
  expect(releaseExpired(ctx, 3)).toBe(3);
  expect(expiredLeft(ctx, clock.now())).toEqual(["backlog-00000001", "backlog-00000003"]);
  expect(releaseExpired(ctx, 3)).toBe(2);
  expect(expiredLeft(ctx, clock.now())).toEqual([]);
});

it("finds stored reservations again after a sweep that passed them was rolled back", () => {
  const { ctx, clock } = setUp(40);
  clock.advance(120_000);
  const db = store?.db;
  if (!db) throw new Error("no store");
  // More than one read of the table: the cursor moves past the first read's releases.
  expect(() =>
    db.transaction(() => {
      expect(releaseExpired(ctx, 30)).toBe(30);
      throw new Error("the commit failed");
    })(),
  ).toThrow("the commit failed");
  expect(expiredLeft(ctx, clock.now())).toHaveLength(40);
  expect(releaseExpired(ctx, 40)).toBe(40);
  expect(expiredLeft(ctx, clock.now())).toEqual([]);
  const released = db
    .prepare("SELECT count(DISTINCT reservation_id) FROM audit_event WHERE action = 'RELEASE'")
    .pluck()
    .get();
  expect(released).toBe(40);
});

it("finds reservations a fold stored behind the cursor before its trim", async () => {
  const { ctx, clock } = setUp(1);
  const db = store?.db;
  if (!db) throw new Error("no store");
  // Twenty decided now and folded: the table holds them, memory too until the trim.
  reserve(ctx, 20, 30);
  db.transaction(() => ctx.risk.fold(1_000))();
  clock.advance(120_000);
  // Before the trim: the lookup reads the twenty stored rows as decided and moves past them.
  db.transaction(() => expect(releaseExpired(ctx, 4)).toBe(4))();
  await turns();
  // After it, sixteen of them are in the table alone, behind where the cursor was.
  expect(expiredLeft(ctx, clock.now())).toHaveLength(17);
  db.transaction(() => expect(releaseExpired(ctx, 100)).toBe(17))();
  expect(expiredLeft(ctx, clock.now())).toEqual([]);
});

it("a book first used after a fold that was rolled back still holds what it folded", async () => {
  const { ctx, clock } = setUp(0);
  const db = store?.db;
  if (!db) throw new Error("no store");
  const [id] = reserve(ctx, 1, 30);
  // A restart: a new book, first used in a sweep's first step, right after that step's fold.
  const restarted = createLeverContext(db, clock);
  clock.advance(60_000);
  expect(() =>
    db.transaction(() => {
      restarted.risk.fold(1_000);
      restarted.risk.expiredReservations(clock.now(), 16);
      throw new Error("the step failed (a full disk, say)");
    })(),
  ).toThrow("the step failed");
  await turns();
  expect(restarted.risk.reservation(id ?? "")?.status).toBe("OPEN");
  expect(expiredLeft(restarted, clock.now())).toEqual([id]);
});

it("counts a reservation expired at the very millisecond of its TTL, and not one before", () => {
  const { ctx, clock } = setUp(0);
  const [id] = reserve(ctx, 1, 30);
  const expiresMs = T0 + 30_000;
  expect(expiredLeft(ctx, expiresMs - 1)).toEqual([]);
  expect(expiredLeft(ctx, expiresMs)).toEqual([id]);
  clock.advance(30_000);
  expect(releaseExpired(ctx, 10)).toBe(1);
  expect(expiredLeft(ctx, clock.now())).toEqual([]);
});
