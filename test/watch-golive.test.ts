/**
 * GoLiveService.WatchGoLive on both ports: the committed state first, then each committed
 * change (never a rolled-back one), heartbeats, and the end of every stream on shutdown.
 */
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  GoLiveService,
  WatchGoLiveRequestSchema,
  type WatchGoLiveResponse,
  WatchGoLiveResponseSchema,
} from "../gen/governance/v1/golive_pb.js";
import { RegressionService, TripwireAction } from "../gen/governance/v1/regression_pb.js";
import { changeSwitches } from "../src/levers/golive/service.js";
import { enableGoLive, type RunningSidecar, startSidecar, TOKEN } from "./support/sidecar.js";

/** A WatchGoLive stream read over grpc-js: every message lands in `messages`. */
function watchOverGrpc(address: string) {
  const client = new grpc.Client(address, grpc.credentials.createInsecure());
  const messages: WatchGoLiveResponse[] = [];
  const call = client.makeServerStreamRequest(
    "/governance.v1.GoLiveService/WatchGoLive",
    (m: object) =>
      Buffer.from(toBinary(WatchGoLiveRequestSchema, create(WatchGoLiveRequestSchema, m))),
    (b: Buffer) => fromBinary(WatchGoLiveResponseSchema, b),
    { engine: "TEST" },
  );
  call.on("data", (m: WatchGoLiveResponse) => messages.push(m));
  const ended = new Promise<grpc.StatusObject>((resolve) => call.on("status", resolve));
  call.on("error", () => {});
  const close = () => {
    call.cancel();
    client.close();
  };
  return { messages, ended, close };
}

async function until(check: () => boolean, timeoutMs = 2_000): Promise<number> {
  const start = performance.now();
  while (!check()) {
    if (performance.now() - start > timeoutMs) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 1));
  }
  return performance.now() - start;
}

describe("WatchGoLive", () => {
  let s: RunningSidecar;
  beforeEach(async () => {
    s = await startSidecar({ settings: { watchHeartbeatMs: 100 } });
  });
  afterEach(async () => {
    await s.stop();
  });

  it("sends the state, then each change as the operator makes it, then heartbeats", async () => {
    const w = watchOverGrpc(s.grpcAddress);
    await until(() => w.messages.length === 1);
    expect(w.messages[0]).toMatchObject({ goLiveEnabled: false, heartbeat: false });
    const first = w.messages[0]?.revision ?? 0n;
    await enableGoLive(s.grpc);
    await until(() => w.messages.some((m) => m.goLiveEnabled && !m.heartbeat));
    await s.grpc.call(
      GoLiveService,
      "engageKillSwitch",
      { actor: "ops", reason: "drill" },
      { token: TOKEN },
    );
    await until(() => w.messages.some((m) => m.killSwitchEngaged));
    const changes = w.messages.filter((m) => !m.heartbeat);
    expect(changes.map((m) => m.revision)).toEqual([first, first + 1n, first + 2n]);
    expect(changes[2]).toMatchObject({ changedBy: "ops", reason: "drill" });
    expect(changes[2]?.policyRevision).toBeGreaterThan(changes[0]?.policyRevision ?? 0n);
    await until(() => w.messages.some((m) => m.heartbeat && m.killSwitchEngaged));
    w.close();
  });

  it("pushes the kill switch a tripwire engages on its own", async () => {
    await enableGoLive(s.grpc);
    const w = watchOverGrpc(s.grpcAddress);
    await until(() => w.messages.length === 1);
    await s.grpc.call(
      RegressionService,
      "upsertPolicy",
      {
        domain: "CAPITAL",
        metric: "roi_event",
        windowEvents: 5,
        baselineEvents: 10,
        maxDropFraction: 0.2,
        action: TripwireAction.KILL_SWITCH,
        enabled: true,
        actor: "alice",
        reason: "arm",
      },
      { token: TOKEN },
    );
    for (const success of [...Array.from({ length: 15 }, () => true), false, false]) {
      await s.grpc.call(RegressionService, "recordKpi", {
        domain: "CAPITAL",
        metric: "roi_event",
        success,
        value: success ? 1 : 0,
      });
    }
    await until(() => w.messages.some((m) => m.killSwitchEngaged));
    expect(w.messages.find((m) => m.killSwitchEngaged)).toMatchObject({
      heartbeat: false,
      changedBy: "tripwire:CAPITAL/roi_event",
    });
    w.close();
  });

  it("never pushes a write that was rolled back", async () => {
    const w = watchOverGrpc(s.grpcAddress);
    await until(() => w.messages.length === 1);
    const ctx = s.sidecar.context;
    expect(() =>
      ctx.db.transaction(() => {
        changeSwitches(ctx, { killSwitchEngaged: true }, "KILL_SWITCH_ENGAGE", "t", "r", "c-1");
        throw new Error("undo");
      })(),
    ).toThrow("undo");
    // Three heartbeats later, nothing but heartbeats of the committed state arrived.
    await until(() => w.messages.filter((m) => m.heartbeat).length >= 3);
    expect(w.messages.every((m) => !m.killSwitchEngaged)).toBe(true);
    expect(w.messages.filter((m) => !m.heartbeat)).toHaveLength(1);
    w.close();
  });

  it("streams over the Connect protocol on the HTTP port too", async () => {
    const client = createClient(
      GoLiveService,
      createConnectTransport({ baseUrl: s.httpUrl, httpVersion: "1.1" }),
    );
    const abort = new AbortController();
    const seen: WatchGoLiveResponse[] = [];
    const reading = (async () => {
      for await (const m of client.watchGoLive({}, { signal: abort.signal })) {
        seen.push(m);
        if (seen.length === 1) await enableGoLive(s.grpc);
        if (m.goLiveEnabled) break;
      }
    })();
    await reading;
    expect(seen.filter((m) => !m.heartbeat).map((m) => m.goLiveEnabled)).toEqual([false, true]);
  });

  it("refuses an invalid request with INVALID_ARGUMENT naming the field", async () => {
    const client = new grpc.Client(s.grpcAddress, grpc.credentials.createInsecure());
    const call = client.makeServerStreamRequest(
      "/governance.v1.GoLiveService/WatchGoLive",
      (m: object) =>
        Buffer.from(toBinary(WatchGoLiveRequestSchema, create(WatchGoLiveRequestSchema, m))),
      (b: Buffer) => fromBinary(WatchGoLiveResponseSchema, b),
      { engine: "E".repeat(65) },
    );
    call.on("data", () => {});
    call.on("error", () => {});
    const status = await new Promise<grpc.StatusObject>((resolve) => call.on("status", resolve));
    client.close();
    expect(status.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(status.details).toMatch(/engine/);
  });

  it("ends every open stream when the sidecar shuts down", async () => {
    const w = watchOverGrpc(s.grpcAddress);
    await until(() => w.messages.length === 1);
    const client = createClient(
      GoLiveService,
      createConnectTransport({ baseUrl: s.httpUrl, httpVersion: "1.1" }),
    );
    const connectDone = (async () => {
      let n = 0;
      for await (const _ of client.watchGoLive({})) n++;
      return n;
    })();
    await new Promise((r) => setTimeout(r, 50));
    await s.sidecar.close();
    expect((await w.ended).code).toBe(grpc.status.OK);
    expect(await connectDone).toBeGreaterThanOrEqual(1);
    w.close();
  });
});
