/** Values kept between writes must never outlive a write of this process, nor a rolled-back one. */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ManualClock } from "../src/clock.js";
import { createLeverContext, type LeverContext } from "../src/levers/context.js";
import type { Db } from "../src/store/database.js";
import { openTempStore, type TempStore } from "./support/temp-store.js";

let store: TempStore;
let db: Db;
let ctx: LeverContext;

beforeEach(() => {
  store = openTempStore();
  db = store.db;
  ctx = createLeverContext(db, new ManualClock(Date.UTC(2026, 2, 2)));
});
afterEach(() => store.remove());

const tick = () => new Promise((resolve) => setImmediate(resolve));

describe("state kept between writes (CommittedValue)", () => {
  it("sees a committed go-live change at once, inside and outside transactions", async () => {
    expect(ctx.goLive.get().goLiveEnabled).toBe(false);
    db.transaction(() => {
      ctx.goLive.set({ goLiveEnabled: true, killSwitchEngaged: false }, "ops", "launch", 1);
      expect(ctx.goLive.get().goLiveEnabled).toBe(true);
    }).immediate();
    expect(ctx.goLive.get().goLiveEnabled).toBe(true);
    await tick();
    expect(db.transaction(() => ctx.goLive.get().goLiveEnabled)()).toBe(true);
  });

  it("never serves a write that was rolled back, even when read inside the writing transaction", async () => {
    const before = ctx.revision.current();
    expect(ctx.goLive.get().killSwitchEngaged).toBe(false);
    expect(() =>
      db
        .transaction(() => {
          ctx.goLive.set({ goLiveEnabled: false, killSwitchEngaged: true }, "ops", "test", 1);
          ctx.revision.next();
          // Read inside the transaction: the uncommitted write, which must not be kept.
          expect(ctx.goLive.get().killSwitchEngaged).toBe(true);
          expect(ctx.revision.current()).toBe(before + 1n);
          throw new Error("roll back");
        })
        .immediate(),
    ).toThrow("roll back");
    // Next decision, still inside one synchronous run and inside a transaction.
    db.transaction(() => {
      expect(ctx.goLive.get().killSwitchEngaged).toBe(false);
      expect(ctx.revision.current()).toBe(before);
    }).immediate();
    await tick();
    expect(ctx.goLive.get().killSwitchEngaged).toBe(false);
    expect(ctx.revision.current()).toBe(before);
  });

  it("sees a risk policy upsert and forgets a rolled-back one", async () => {
    const seeded = ctx.risk.policy("WHOLESALE");
    expect(seeded?.maxDailyExposure).toBe(1000n * 1_000_000n);
    expect(() =>
      db
        .transaction(() => {
          ctx.risk.savePolicy({ ...(seeded as NonNullable<typeof seeded>), maxDailyExposure: 5n });
          expect(ctx.risk.policy("WHOLESALE")?.maxDailyExposure).toBe(5n);
          throw new Error("roll back");
        })
        .immediate(),
    ).toThrow("roll back");
    expect(ctx.risk.policy("WHOLESALE")?.maxDailyExposure).toBe(1000n * 1_000_000n);
    db.transaction(() => {
      ctx.risk.savePolicy({ ...(seeded as NonNullable<typeof seeded>), maxDailyExposure: 7n });
    }).immediate();
    await tick();
    expect(ctx.risk.policy("WHOLESALE")?.maxDailyExposure).toBe(7n);
    expect(ctx.risk.policies()[0]?.engine).toBe("GLOBAL");
  });

  it("throttles as soon as a THROTTLE wire is marked tripped, and lifts it when re-armed", async () => {
    const p = ctx.tripwires.policy("WHOLESALE", "contract_rate");
    expect(p).toBeDefined();
    expect(ctx.tripwires.throttled().has("WHOLESALE")).toBe(false);
    const state = ctx.tripwires.seriesState("WHOLESALE", "contract_rate");
    db.transaction(() => {
      ctx.tripwires.saveSeries("WHOLESALE", "contract_rate", { ...state, tripped: true });
    }).immediate();
    expect(ctx.tripwires.throttled().has("WHOLESALE")).toBe(true);
    await tick();
    db.transaction(() => {
      ctx.tripwires.saveSeries("WHOLESALE", "contract_rate", { ...state, tripped: false });
    }).immediate();
    expect(ctx.tripwires.throttled().has("WHOLESALE")).toBe(false);
  });
});
