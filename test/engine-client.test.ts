/**
 * The engine library's client on the paths a network makes: a deadline per attempt, a keyed
 * call retried with the same correlation_id after a stall (the sidecar books it once, however
 * many attempts reached it), and the sidecar's unix socket.
 */
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { RiskService as SidecarRisk } from "../gen/governance/v1/risk_pb.js";
import {
  createEngine,
  DenyReason,
  RiskService,
  SidecarCallError,
} from "../packages/engine/src/index.js";
import { enableGoLive, type RunningSidecar, startSidecar } from "./support/sidecar.js";
import { startTcpProxy, type TcpProxy } from "./support/tcp-proxy.js";

describe("engine client over a stalling network", () => {
  let s: RunningSidecar;
  let proxy: TcpProxy;
  beforeEach(async () => {
    s = await startSidecar();
    await enableGoLive(s.grpc);
    proxy = await startTcpProxy(s.grpcAddress);
  });
  afterEach(async () => {
    await proxy.close();
    await s.stop();
  });

  it("gives up after the deadline of each attempt with DEADLINE_EXCEEDED", async () => {
    const govd = createEngine({
      address: proxy.address,
      deadlineMs: 100,
      attempts: 2,
      backoffMs: 1,
    });
    await govd.client.call(RiskService.method.getLedgerToday, {});
    proxy.freeze();
    const start = performance.now();
    const err = await govd.client
      .call(RiskService.method.getLedgerToday, {})
      .catch((e: unknown) => e);
    const took = performance.now() - start;
    govd.close();
    expect(err).toBeInstanceOf(SidecarCallError);
    expect(err).toMatchObject({ codeName: "DEADLINE_EXCEEDED", attempts: 2 });
    expect(took).toBeGreaterThanOrEqual(190);
    expect(took).toBeLessThan(1_500);
  });

  it("retries a stalled Reserve with the same correlation_id and books it once", async () => {
    const govd = createEngine({
      address: proxy.address,
      deadlineMs: 150,
      attempts: 6,
      backoffMs: 50,
    });
    await govd.client.call(RiskService.method.getLedgerToday, {});
    proxy.freeze();
    setTimeout(() => proxy.restore(), 400);
    const r = await govd.reserveOrThrow("WHOLESALE", "100.00", { correlationId: "stalled-1" });
    govd.close();
    expect(r.reservationId).not.toBe("");
    const ledger = await s.grpc.call(SidecarRisk, "getLedgerToday", { engine: "WHOLESALE" });
    expect(ledger.entries[0]).toMatchObject({ exposureUsed: "100.00", actions: 1 });
  });
});

describe("engine client over the unix socket", () => {
  let s: RunningSidecar;
  beforeEach(async () => {
    s = await startSidecar({ grpcSocket: "govd.sock" });
  });
  afterEach(async () => {
    await s.stop();
  });

  it("reserves and follows go-live through unix:<path>", async () => {
    const govd = createEngine({ address: `unix:${join(s.dir, "govd.sock")}` });
    await govd.ready();
    expect(govd.decide("PROD").reason).toBe(DenyReason.GO_LIVE_DISABLED);
    await enableGoLive(s.grpc);
    const start = performance.now();
    while (!govd.decide("PROD").allowed && performance.now() - start < 1_000) {
      await new Promise((r) => setImmediate(r));
    }
    const r = await govd.reserveOrThrow("WHOLESALE", "1.00", { correlationId: "sock-1" });
    govd.close();
    expect(r.allowed).toBe(true);
  });
});
