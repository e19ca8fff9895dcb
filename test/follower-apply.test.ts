/**
 * The follower's rules below the ports: which change may apply on top of an applied revision
 * (next revision, digest chain, replays), and what applying a snapshot or a change does to the
 * levers' state (absent policies removed, unchanged ones untouched, rolled back with the
 * transaction).
 */
import { create } from "@bufbuild/protobuf";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { TripwireAction } from "../gen/governance/v1/regression_pb.js";
import { type PolicySnapshot, PolicySnapshotSchema } from "../gen/governance/v1/sync_pb.js";
import { ManualClock } from "../src/clock.js";
import { createLeverContext, type LeverContext } from "../src/levers/context.js";
import { AppliedRevision } from "../src/sync/follower/applied-revision.js";
import { checkChange } from "../src/sync/follower/change-order.js";
import {
  applyChange,
  applySnapshot,
  type HeldRearm,
  releaseHeldRearms,
} from "../src/sync/follower/policy-apply.js";
import { reconnectDelayMs } from "../src/sync/follower/watch-connection.js";
import { chainedChange } from "./support/scripted-central.js";
import { openTempStore, type TempStore } from "./support/temp-store.js";

const D = "a".repeat(64);
const applied = (revision: bigint, digest = D) => ({ revision, digest, appliedMs: 0, heardMs: 0 });
const kill = {
  case: "goLive" as const,
  value: { killSwitchEngaged: true, changedBy: "ops", reason: "x" },
};

describe("checkChange", () => {
  it("applies the next revision chained from the applied digest", () => {
    expect(checkChange(applied(4n), chainedChange(D, 5n, kill))).toEqual({ kind: "apply" });
  });
  it("ignores a replay of an applied revision", () => {
    expect(checkChange(applied(5n), chainedChange(D, 5n, kill)).kind).toBe("replayed");
    expect(checkChange(applied(5n), chainedChange(D, 2n, kill)).kind).toBe("replayed");
  });
  it("refuses a gap, naming the revision that comes next", () => {
    const c = checkChange(applied(4n), chainedChange(D, 6n, kill));
    expect(c).toMatchObject({ kind: "refused", resync: false });
    expect(c.kind === "refused" && c.error).toMatch(/out of order, revision 5 comes next/);
  });
  it("refuses another history and asks for a snapshot", () => {
    const c = checkChange(applied(4n), chainedChange("b".repeat(64), 5n, kill));
    expect(c).toMatchObject({ kind: "refused", resync: true });
  });
  it("refuses a change before any snapshot, and a change without an entity", () => {
    expect(checkChange(applied(0n, ""), chainedChange("", 1n, kill))).toMatchObject({
      kind: "refused",
      resync: true,
    });
    const empty = chainedChange(D, 5n, kill);
    empty.entity = { case: undefined };
    expect(checkChange(applied(4n), empty)).toMatchObject({ kind: "refused" });
  });
});

describe("reconnectDelayMs", () => {
  it("waits a random time up to the first wait doubled per failed attempt, at most the longest", () => {
    const top = () => 1 - Number.EPSILON;
    expect([0, 1, 2, 3].map((a) => Math.round(reconnectDelayMs(a, 100, 5_000, top)))).toEqual([
      100, 200, 400, 800,
    ]);
    expect(reconnectDelayMs(20, 100, 5_000, top)).toBeLessThan(5_000);
    expect(reconnectDelayMs(20, 100, 5_000, top)).toBeGreaterThan(4_999);
    expect(reconnectDelayMs(3, 100, 5_000, () => 0)).toBe(0);
    // Full jitter: spread over the whole range, not bunched at its top.
    const waits = Array.from({ length: 2_000 }, () => reconnectDelayMs(4, 100, 5_000));
    expect(Math.max(...waits)).toBeLessThan(1_600);
    expect(waits.filter((w) => w < 400).length).toBeGreaterThan(200);
    expect(waits.filter((w) => w > 1_200).length).toBeGreaterThan(200);
  });
});

describe("applying central's policy", () => {
  let store: TempStore;
  let ctx: LeverContext;
  const clock = new ManualClock(Date.UTC(2026, 2, 2));
  beforeEach(() => {
    store = openTempStore();
    ctx = createLeverContext(store.db, clock);
  });
  afterEach(() => store.remove());

  const snapshot = (exposure = "1000"): PolicySnapshot =>
    create(PolicySnapshotSchema, {
      revision: 3n,
      digest: D,
      goLive: { goLiveEnabled: true, changedBy: "ops", reason: "open" },
      riskPolicies: [
        {
          engine: "GLOBAL",
          maxDailyLoss: "1",
          maxDailyExposure: "2",
          maxOpenRisk: "3",
          enabled: true,
        },
        {
          engine: "WHOLESALE",
          maxDailyLoss: "1",
          maxDailyExposure: exposure,
          maxOpenRisk: "3",
          enabled: true,
        },
      ],
      regressionPolicies: [
        {
          domain: "CAPITAL",
          metric: "roi_event",
          windowEvents: 10,
          baselineEvents: 10,
          minEventsToEnforce: 20,
          maxDropFraction: 0.3,
          action: TripwireAction.THROTTLE,
          enabled: true,
        },
      ],
    });
  const inTx = <T>(f: () => T) => store.db.transaction(f)();

  it("replaces what the sidecar had: policies absent from the snapshot are removed", () => {
    expect(ctx.risk.policy("CAPITAL")).toBeDefined();
    inTx(() => applySnapshot(ctx, snapshot(), [], clock.now()));
    expect(ctx.risk.policies().map((p) => p.engine)).toEqual(["GLOBAL", "WHOLESALE"]);
    expect(ctx.evidence.policies()).toEqual([]);
    expect(ctx.tripwires.policies().map((p) => `${p.domain}/${p.metric}`)).toEqual([
      "CAPITAL/roi_event",
    ]);
    expect(ctx.goLive.get().goLiveEnabled).toBe(true);
  });

  it("leaves unchanged entities untouched when the same snapshot comes again", () => {
    inTx(() => applySnapshot(ctx, snapshot(), [], clock.now()));
    const goLiveRevision = ctx.goLive.get().revision;
    const series = ctx.tripwires.seriesState("CAPITAL", "roi_event");
    inTx(() => applySnapshot(ctx, snapshot(), [], clock.now() + 1000));
    expect(ctx.goLive.get().revision).toBe(goLiveRevision);
    expect(ctx.tripwires.seriesState("CAPITAL", "roi_event")).toEqual(series);
  });

  it("writes nothing when the transaction rolls back", () => {
    expect(() =>
      inTx(() => {
        applySnapshot(ctx, snapshot("77"), [], clock.now());
        throw new Error("disk full");
      }),
    ).toThrow("disk full");
    expect(ctx.risk.policy("WHOLESALE")?.maxDailyExposure).toBe(1000_000_000n);
    expect(ctx.goLive.get().goLiveEnabled).toBe(false);
  });

  it("refuses a malformed policy with the field named, so the revision is NACKed", () => {
    const bad = chainedChange(D, 4n, {
      case: "riskPolicy",
      value: { engine: "WHOLESALE", maxDailyLoss: "lots", maxDailyExposure: "1", maxOpenRisk: "1" },
    });
    expect(() => inTx(() => applyChange(ctx, bad, [], clock.now()))).toThrow(/max_daily_loss/);
  });

  it("re-arms a wire central re-armed, unless this sidecar's own trip is still owed", () => {
    inTx(() => applySnapshot(ctx, snapshot(), [], clock.now()));
    const trip = (tripped: boolean) =>
      chainedChange(D, 4n, {
        case: "tripwireTrip",
        value: { domain: "CAPITAL", metric: "roi_event", tripped },
      });
    inTx(() => applyChange(ctx, trip(true), [], clock.now()));
    expect(ctx.tripwires.throttled().has("CAPITAL")).toBe(true);
    const owed = [
      {
        id: "r1",
        domain: "CAPITAL",
        metric: "roi_event",
        action: "THROTTLE" as const,
        reason: "local",
        trippedMs: clock.now(),
        correlationId: "r1",
        recordedRevision: null,
      },
    ];
    inTx(() => applyChange(ctx, trip(false), owed, clock.now()));
    expect(ctx.tripwires.throttled().has("CAPITAL")).toBe(true);
    inTx(() => applyChange(ctx, trip(false), [], clock.now()));
    expect(ctx.tripwires.throttled().has("CAPITAL")).toBe(false);
  });

  it("holds a re-arm while its own report is unanswered, and takes it only if nothing tripped the wire since", () => {
    inTx(() => applySnapshot(ctx, snapshot(), [], clock.now()));
    const trip = (revision: bigint, tripped: boolean) =>
      chainedChange(D, revision, {
        case: "tripwireTrip",
        value: { domain: "CAPITAL", metric: "roi_event", tripped },
      });
    const report = (recordedRevision: bigint | null) => ({
      id: "r1",
      domain: "CAPITAL",
      metric: "roi_event",
      action: "THROTTLE" as const,
      reason: "local",
      trippedMs: clock.now(),
      correlationId: "r1",
      recordedRevision,
    });
    const wire = { domain: "CAPITAL", metric: "roi_event" };
    const throttled = () => ctx.tripwires.throttled().has("CAPITAL");
    inTx(() => applyChange(ctx, trip(4n, true), [report(null)], clock.now()));
    const held: HeldRearm[] = [];
    inTx(() => applyChange(ctx, trip(5n, false), [report(null)], clock.now(), held));
    expect(held).toEqual([{ ...wire, revision: 5n }]);
    expect(throttled()).toBe(true);

    // Answered with a revision after the re-arm: the trip is newer, it stays.
    let left = inTx(() => releaseHeldRearms(ctx, held, [report(6n)], wire, 6n));
    expect([left, throttled()]).toEqual([held, true]);
    // Another report of the wire still unanswered: it stays too.
    left = inTx(() => releaseHeldRearms(ctx, held, [report(4n), report(null)], wire, 4n));
    expect([left, throttled()]).toEqual([held, true]);
    // Answered at 4, before the re-arm at 5: re-armed, nothing held any more.
    left = inTx(() => releaseHeldRearms(ctx, held, [report(4n)], wire, 4n));
    expect([left, throttled()]).toEqual([[], false]);

    // Tripped again on central (7) after a held re-arm (6): that re-arm is dropped, not taken.
    inTx(() => applyChange(ctx, trip(6n, true), [report(null)], clock.now()));
    const again: HeldRearm[] = [];
    inTx(() => applyChange(ctx, trip(6n, false), [report(null)], clock.now(), again));
    inTx(() => applyChange(ctx, trip(7n, true), [report(null)], clock.now(), again));
    expect(again).toEqual([]);
    inTx(() => releaseHeldRearms(ctx, again, [report(5n)], wire, 5n));
    expect(throttled()).toBe(true);
  });

  it("keeps the applied revision and the trip reports across a reopen of the store", () => {
    const a = new AppliedRevision(store.db);
    inTx(() => {
      a.applied(7n, D, 123);
      a.addReport({
        id: "t1",
        domain: "CAPITAL",
        metric: "roi_event",
        action: "KILL_SWITCH",
        reason: "r",
        trippedMs: 5,
        correlationId: "c",
      });
    });
    const again = new AppliedRevision(store.db);
    expect(again.get()).toEqual({ revision: 7n, digest: D, appliedMs: 123, heardMs: 123 });
    expect(again.reports()).toMatchObject([
      { id: "t1", action: "KILL_SWITCH", recordedRevision: null },
    ]);
    inTx(() => again.recorded("t1", 9n));
    inTx(() => again.applied(8n, D, 200));
    expect(again.reports()).toHaveLength(1);
    inTx(() => again.applied(9n, D, 300));
    expect(again.reports()).toEqual([]);
  });
});
