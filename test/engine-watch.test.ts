/**
 * The engine library's pushed go-live state when the stream is lost: the last state holds
 * within the staleness bound, PROD and PROD_EXEC fail closed past it (the 503 names
 * DENY_REASON_POLICY_STALE), EXEMPT keeps running, and the state recovers, with what changed
 * meanwhile, once the sidecar is reachable again. Both a reset connection and a silent stall
 * (heartbeats stop arriving) are covered.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { GoLiveService } from "../gen/governance/v1/golive_pb.js";
import { createEngine, DenyReason, type Engine } from "../packages/engine/src/index.js";
import { type EngineApp, nodeApp } from "./support/engine-apps.js";
import { enableGoLive, type RunningSidecar, startSidecar, TOKEN } from "./support/sidecar.js";
import { startTcpProxy, type TcpProxy } from "./support/tcp-proxy.js";

const BOUND_MS = 300;

async function until(check: () => boolean, timeoutMs: number): Promise<number> {
  const start = performance.now();
  while (!check()) {
    if (performance.now() - start > timeoutMs) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 2));
  }
  return performance.now() - start;
}

describe("pushed go-live state across a lost stream", () => {
  let s: RunningSidecar;
  let proxy: TcpProxy;
  let govd: Engine;
  let app: EngineApp;
  beforeEach(async () => {
    s = await startSidecar({ settings: { watchHeartbeatMs: 50 } });
    await enableGoLive(s.grpc);
    proxy = await startTcpProxy(s.grpcAddress);
    govd = createEngine({
      address: proxy.address,
      staleAfterMs: BOUND_MS,
      reconnectMs: 10,
      maxReconnectMs: 50,
    });
    await govd.ready();
    app = await nodeApp(govd);
  });
  afterEach(async () => {
    await app.close();
    govd.close();
    await proxy.close();
    await s.stop();
  });

  for (const loss of ["cut", "freeze"] as const) {
    it(`fails closed after the bound when the connection is ${loss === "cut" ? "reset" : "stalled"}, and recovers`, async () => {
      expect(govd.decide("PROD_EXEC").allowed).toBe(true);
      const lostAt = performance.now();
      proxy[loss]();
      // Inside the bound the last state holds: a blip does not stop the engine.
      await new Promise((r) => setTimeout(r, BOUND_MS / 3));
      expect(govd.decide("PROD_EXEC").allowed).toBe(true);
      await until(() => !govd.decide("PROD").allowed, 2_000);
      const closedAfter = performance.now() - lostAt;
      expect(closedAfter).toBeGreaterThanOrEqual(BOUND_MS - 60);
      expect(closedAfter).toBeLessThan(BOUND_MS + 250);
      expect(govd.decide("PROD_EXEC")).toMatchObject({ reason: DenyReason.POLICY_STALE });
      expect(govd.decide("EXEMPT").allowed).toBe(true);
      const res = await fetch(`${app.url}/deals/d-1/execute`, { method: "POST" });
      expect(res.status).toBe(503);
      const body = (await res.json()) as { reason: string; message: string };
      expect(body.reason).toBe("DENY_REASON_POLICY_STALE");
      expect(body.message).toMatch(/has not been heard from/);
      expect((await fetch(`${app.url}/health`)).status).toBe(200);

      // Meanwhile an operator engages the kill switch; the engine learns it on recovery.
      await s.grpc.call(
        GoLiveService,
        "engageKillSwitch",
        { actor: "ops", reason: "outage drill" },
        { token: TOKEN },
      );
      proxy.restore();
      await until(() => govd.decide("PROD").allowed, 3_000);
      expect(govd.decide("PROD_EXEC")).toMatchObject({ reason: DenyReason.KILL_SWITCH_ENGAGED });
    });
  }

  it("fails closed before any state has arrived", () => {
    const early = createEngine({ address: "127.0.0.1:1" });
    expect(early.decide("PROD")).toMatchObject({ allowed: false, reason: DenyReason.POLICY_STALE });
    expect(early.decide("PROD").message).toMatch(/no go-live state has been received yet/);
    expect(early.decide("EXEMPT").allowed).toBe(true);
    early.close();
  });
});
