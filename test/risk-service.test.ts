import { Code } from "@connectrpc/connect";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { DenyReason } from "../gen/governance/v1/common_pb.js";
import { ReservationStatus, RiskAction, RiskService } from "../gen/governance/v1/risk_pb.js";
import type { Caller } from "./support/callers.js";
import { rejects } from "./support/expect-error.js";
import { enableGoLive, type RunningSidecar, startSidecar, TOKEN } from "./support/sidecar.js";

let s: RunningSidecar;
beforeEach(async () => {
  s = await startSidecar();
});
afterEach(async () => {
  await s.stop();
});

let n = 0;
const cid = () => `c-${++n}`;

async function reserve(c: Caller, engine: string, amount: string, extra: object = {}) {
  return c.call(RiskService, "reserve", {
    engine,
    amount,
    correlationId: cid(),
    actor: "engine",
    ...extra,
  });
}

describe.each(["grpc", "connect-json"])("RiskService over %s", (port) => {
  const caller = () => (port === "grpc" ? s.grpc : s.connect);

  it("denies while go-live is disabled, and books nothing", async () => {
    const res = await reserve(caller(), "WHOLESALE", "10.00");
    expect(res.allowed).toBe(false);
    expect(res.reason).toBe(DenyReason.GO_LIVE_DISABLED);
    const ledger = await caller().call(RiskService, "getLedgerToday", { engine: "WHOLESALE" });
    expect(ledger.entries[0]?.exposureUsed).toBe("0.00");
    expect(ledger.entries[0]?.denials).toBe(1);
    const { events } = await caller().call(RiskService, "listEvents", { engine: "WHOLESALE" });
    expect(events.map((e) => [e.action, e.ok, e.metadata.deny_reason])).toEqual([
      [RiskAction.DENY, false, "DENY_REASON_GO_LIVE_DISABLED"],
    ]);
  });

  it("reserves, settles with a loss and releases, booking both ledgers", async () => {
    await enableGoLive(caller());
    const r = await reserve(caller(), "WHOLESALE", "100.25");
    expect(r.allowed).toBe(true);
    expect(r.reservationId).not.toBe("");
    expect(r.engineRemaining?.exposure).toBe("899.75");
    expect(r.globalRemaining?.exposure).toBe("1399.75");
    expect(r.engineRemaining?.openRisk).toBe("399.75");
    const settled = await caller().call(RiskService, "settle", {
      reservationId: r.reservationId,
      realizedLoss: "12.5",
      correlationId: cid(),
    });
    expect(settled.reservation?.status).toBe(ReservationStatus.SETTLED);
    const r2 = await reserve(caller(), "CAPITAL", "50");
    const released = await caller().call(RiskService, "release", {
      reservationId: r2.reservationId,
      correlationId: cid(),
    });
    expect(released.reservation?.status).toBe(ReservationStatus.RELEASED);
    const ledger = await caller().call(RiskService, "getLedgerToday", {});
    const byEngine = new Map(ledger.entries.map((e) => [e.engine, e]));
    expect(byEngine.get("WHOLESALE")).toMatchObject({
      exposureUsed: "100.25",
      openRisk: "0.00",
      realizedLoss: "12.50",
      actions: 1,
    });
    expect(byEngine.get("GLOBAL")).toMatchObject({
      exposureUsed: "150.25",
      openRisk: "0.00",
      realizedLoss: "12.50",
      actions: 2,
    });
    const events = await caller().call(RiskService, "listEvents", {});
    expect(events.events.map((e) => e.action)).toEqual([
      RiskAction.RESERVE,
      RiskAction.SETTLE,
      RiskAction.RESERVE,
      RiskAction.RELEASE,
    ]);
  });

  it("refuses an engine without a policy, and GLOBAL as an engine", async () => {
    await enableGoLive(caller());
    const res = await reserve(caller(), "UNKNOWN_BOT", "1");
    expect(res.allowed).toBe(false);
    expect(res.reason).toBe(DenyReason.UNKNOWN_ENGINE);
    await rejects(reserve(caller(), "GLOBAL", "1"), Code.InvalidArgument, /engine: GLOBAL/);
  });

  it("checks the engine and GLOBAL together: the tighter cap wins, nothing half-booked", async () => {
    await enableGoLive(caller());
    expect((await reserve(caller(), "WHOLESALE", "450")).allowed).toBe(true);
    const overEngine = await reserve(caller(), "WHOLESALE", "60");
    expect(overEngine.reason).toBe(DenyReason.ENGINE_OPEN_RISK_CAP);
    expect((await reserve(caller(), "CAPITAL", "300")).allowed).toBe(true);
    const overGlobal = await reserve(caller(), "CAPITAL", "1");
    expect(overGlobal.reason).toBe(DenyReason.ENGINE_OPEN_RISK_CAP);
    expect((await reserve(caller(), "WHOLESALE", "50")).allowed).toBe(true);
    const globalOpen = await reserve(caller(), "NOTIFY", "1");
    expect(globalOpen.reason).toBe(DenyReason.GLOBAL_OPEN_RISK_CAP);
    const ledger = await caller().call(RiskService, "getLedgerToday", {});
    const byEngine = new Map(ledger.entries.map((e) => [e.engine, e]));
    expect(byEngine.get("GLOBAL")?.openRisk).toBe("800.00");
    expect(byEngine.get("NOTIFY")?.exposureUsed ?? "0.00").toBe("0.00");
  });

  it("rejects malformed amounts naming the field", async () => {
    for (const amount of ["1e3", "-5", "12.3456789", ""]) {
      await rejects(reserve(caller(), "WHOLESALE", amount), Code.InvalidArgument, /amount/);
    }
  });

  it("returns the first answer to a retried Reserve and refuses a changed body", async () => {
    await enableGoLive(caller());
    const request = { engine: "WHOLESALE", amount: "10", correlationId: "retry-1" };
    const first = await caller().call(RiskService, "reserve", request);
    const again = await caller().call(RiskService, "reserve", request);
    expect(again.reservationId).toBe(first.reservationId);
    expect(again.engineRemaining).toEqual(first.engineRemaining);
    await rejects(
      caller().call(RiskService, "reserve", { ...request, amount: "11" }),
      Code.AlreadyExists,
      /retry-1/,
    );
    const ledger = await caller().call(RiskService, "getLedgerToday", { engine: "WHOLESALE" });
    expect(ledger.entries[0]).toMatchObject({ exposureUsed: "10.00", actions: 1 });
  });

  it("answers a retry whose map entries come in another order, on either port", async () => {
    await enableGoLive(caller());
    const id = `map-order-${port}`;
    const first = await caller().call(RiskService, "reserve", {
      engine: "WHOLESALE",
      amount: "3",
      correlationId: id,
      metadata: { deal: "d-1", "10": "x", desk: "north", "9": "y" },
    });
    // As a Go engine's encoder may write them: the same entries in another order.
    for (const c of [s.grpc, s.connect]) {
      const retry = await c.call(RiskService, "reserve", {
        engine: "WHOLESALE",
        amount: "3",
        correlationId: id,
        metadata: { "9": "y", desk: "north", "10": "x", deal: "d-1" },
      });
      expect(retry.reservationId).toBe(first.reservationId);
    }
    await rejects(
      caller().call(RiskService, "reserve", {
        engine: "WHOLESALE",
        amount: "3",
        correlationId: id,
        metadata: { deal: "d-2", desk: "north", "10": "x", "9": "y" },
      }),
      Code.AlreadyExists,
      new RegExp(id),
    );
    const ledger = await caller().call(RiskService, "getLedgerToday", { engine: "WHOLESALE" });
    expect(ledger.entries[0]).toMatchObject({ exposureUsed: "3.00", actions: 1 });
  });

  it("refuses to settle unknown or closed reservations and changes nothing", async () => {
    await enableGoLive(caller());
    await rejects(
      caller().call(RiskService, "settle", {
        reservationId: "nope",
        realizedLoss: "0",
        correlationId: cid(),
      }),
      Code.NotFound,
      /reservation nope not found/,
    );
    const r = await reserve(caller(), "WHOLESALE", "5");
    await caller().call(RiskService, "settle", {
      reservationId: r.reservationId,
      realizedLoss: "1",
      correlationId: cid(),
    });
    await rejects(
      caller().call(RiskService, "settle", {
        reservationId: r.reservationId,
        realizedLoss: "1",
        correlationId: cid(),
      }),
      Code.FailedPrecondition,
      /already settled/,
    );
    const ledger = await caller().call(RiskService, "getLedgerToday", { engine: "WHOLESALE" });
    expect(ledger.entries[0]?.realizedLoss).toBe("1.00");
  });

  it("releases a reservation whose TTL passed, and still books a late settle's loss", async () => {
    await enableGoLive(caller());
    const r = await reserve(caller(), "WHOLESALE", "400", { ttlSeconds: 60 });
    expect((await reserve(caller(), "WHOLESALE", "200")).reason).toBe(
      DenyReason.ENGINE_OPEN_RISK_CAP,
    );
    s.clock.advance(61_000);
    expect((await reserve(caller(), "WHOLESALE", "200")).allowed).toBe(true);
    const late = await caller().call(RiskService, "settle", {
      reservationId: r.reservationId,
      realizedLoss: "3",
      correlationId: cid(),
    });
    expect(late.reservation?.status).toBe(ReservationStatus.SETTLED);
    const ledger = await caller().call(RiskService, "getLedgerToday", { engine: "WHOLESALE" });
    expect(ledger.entries[0]).toMatchObject({ openRisk: "200.00", realizedLoss: "3.00" });
    const events = await caller().call(RiskService, "listEvents", { engine: "WHOLESALE" });
    expect(events.events.map((e) => e.action)).toContain(RiskAction.RELEASE);
  });

  it("resets daily figures at UTC midnight but keeps open risk", async () => {
    await enableGoLive(caller());
    await reserve(caller(), "WHOLESALE", "300", { ttlSeconds: 86400 });
    const r = await reserve(caller(), "WHOLESALE", "100", { ttlSeconds: 86400 });
    await caller().call(RiskService, "settle", {
      reservationId: r.reservationId,
      realizedLoss: "5",
      correlationId: cid(),
    });
    s.clock.set(Date.UTC(2026, 2, 3, 0, 0, 1));
    const ledger = await caller().call(RiskService, "getLedgerToday", { engine: "WHOLESALE" });
    expect(ledger.day).toBe("2026-03-03");
    expect(ledger.entries[0]).toMatchObject({
      exposureUsed: "0.00",
      actions: 0,
      realizedLoss: "0.00",
      openRisk: "300.00",
    });
  });

  it("needs the operator token to change a policy", async () => {
    const policy = {
      engine: "ROUTER",
      maxDailyLoss: "10",
      maxDailyExposure: "100",
      maxOpenRisk: "50",
      maxActionsPerDay: 10,
      enabled: true,
      actor: "alice",
      reason: "new engine",
      correlationId: cid(),
    };
    await rejects(
      caller().call(RiskService, "upsertPolicy", policy),
      Code.Unauthenticated,
      /operator/,
    );
    await rejects(
      caller().call(RiskService, "upsertPolicy", policy, { token: "wrong" }),
      Code.Unauthenticated,
      /operator/,
    );
    const listed = await caller().call(RiskService, "listPolicies", {});
    expect(listed.policies.map((p) => p.engine)).not.toContain("ROUTER");
    const saved = await caller().call(RiskService, "upsertPolicy", policy, { token: TOKEN });
    expect(saved.policy).toMatchObject({
      engine: "ROUTER",
      maxDailyExposure: "100.00",
      updatedBy: "alice",
    });
  });
});
