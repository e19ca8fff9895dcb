/**
 * The engine library's interceptors on an engine's own services, fed by a real sidecar: the
 * Connect interceptor on a connect-node service and the grpc-js server interceptor on a
 * grpc-js service. A PROD_EXEC method is refused while go-live is disabled, with UNAVAILABLE
 * (HTTP 503 in the Connect protocol) and the reason in the message and a header or trailer,
 * and runs once go-live is enabled; an EXEMPT method always runs.
 */
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { create, type DescMessage, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { connectNodeAdapter, createConnectTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ExecutionClass } from "../gen/governance/v1/common_pb.js";
import {
  CheckGoLiveResponseSchema,
  GetChecklistResponseSchema,
  GoLiveService,
} from "../gen/governance/v1/golive_pb.js";
import { GoLiveService as EngineOwnService } from "../packages/engine/gen/governance/v1/golive_pb.js";
import { goLiveInterceptor } from "../packages/engine/src/connect-interceptor.js";
import { createEngine, type Engine } from "../packages/engine/src/index.js";
import { grpcCaller } from "./support/callers.js";
import { enableGoLive, type RunningSidecar, startSidecar } from "./support/sidecar.js";

describe("Connect interceptor", () => {
  let s: RunningSidecar;
  let govd: Engine;
  let server: http.Server;
  let url: string;
  beforeAll(async () => {
    s = await startSidecar();
    govd = createEngine({ address: s.grpcAddress });
    await govd.ready();
    // Stands in for an engine's own service: two methods, one EXEMPT, one PROD_EXEC.
    const handler = connectNodeAdapter({
      routes: (router) =>
        router.service(EngineOwnService, {
          getChecklist: () => ({ ready: true }),
          checkGoLive: () => ({ allowed: true, message: "engine work done" }),
        }),
      interceptors: [
        goLiveInterceptor(govd.goLive, {
          "/governance.v1.GoLiveService/GetChecklist": "EXEMPT",
          "/governance.v1.GoLiveService/CheckGoLive": "PROD_EXEC",
        }),
      ],
    });
    server = http.createServer(handler);
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
    govd.close();
    await s.stop();
  });

  it("refuses PROD_EXEC with 503 and the reason until go-live, never EXEMPT", async () => {
    const client = createClient(
      EngineOwnService,
      createConnectTransport({ baseUrl: url, httpVersion: "1.1" }),
    );
    expect((await client.getChecklist({})).ready).toBe(true);
    const err = await client.checkGoLive({}).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.Unavailable);
    expect((err as ConnectError).rawMessage).toMatch(/DENY_REASON_GO_LIVE_DISABLED/);
    expect((err as ConnectError).metadata.get("govd-deny-reason")).toBe(
      "DENY_REASON_GO_LIVE_DISABLED",
    );
    const raw = await fetch(`${url}/governance.v1.GoLiveService/CheckGoLive`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{}",
    });
    expect(raw.status).toBe(503);

    await enableGoLive(s.grpc);
    const start = performance.now();
    while (!govd.decide("PROD_EXEC").allowed && performance.now() - start < 1_000) {
      await new Promise((r) => setImmediate(r));
    }
    expect((await client.checkGoLive({})).message).toBe("engine work done");
  });
});

/** A unary grpc-js method definition answering messages of `output`. */
function unary(name: string, output: DescMessage): grpc.MethodDefinition<Buffer, object> {
  return {
    path: `/governance.v1.GoLiveService/${name}`,
    requestStream: false,
    responseStream: false,
    requestSerialize: (b: Buffer) => b,
    requestDeserialize: (b: Buffer) => b,
    responseSerialize: (m: object) => Buffer.from(toBinary(output, create(output, m as never))),
    responseDeserialize: (b: Buffer) => b as never,
  };
}

describe("grpc-js server interceptor", () => {
  let s: RunningSidecar;
  let govd: Engine;
  let server: grpc.Server;
  let address: string;
  beforeAll(async () => {
    s = await startSidecar();
    govd = createEngine({ address: s.grpcAddress });
    await govd.ready();
    server = new grpc.Server({
      interceptors: [
        govd.grpcInterceptor({
          "/governance.v1.GoLiveService/GetChecklist": "EXEMPT",
          "/governance.v1.GoLiveService/CheckGoLive": "PROD_EXEC",
        }),
      ],
    });
    server.addService(
      {
        getChecklist: unary("GetChecklist", GetChecklistResponseSchema),
        checkGoLive: unary("CheckGoLive", CheckGoLiveResponseSchema),
      },
      {
        getChecklist: (_call: unknown, done: grpc.sendUnaryData<object>) =>
          done(null, { ready: true }),
        checkGoLive: (_call: unknown, done: grpc.sendUnaryData<object>) =>
          done(null, { allowed: true, message: "engine work done" }),
      },
    );
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, p) =>
        err ? reject(err) : resolve(p),
      ),
    );
    address = `127.0.0.1:${port}`;
  });
  afterAll(async () => {
    server.forceShutdown();
    govd.close();
    await s.stop();
  });

  it("refuses PROD_EXEC with UNAVAILABLE and the reason until go-live, never EXEMPT", async () => {
    const client = grpcCaller(address);
    expect((await client.call(GoLiveService, "getChecklist", {})).ready).toBe(true);
    const ask = () =>
      client.call(GoLiveService, "checkGoLive", { executionClass: ExecutionClass.PROD_EXEC });
    const err = await ask().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.Unavailable);
    expect((err as ConnectError).rawMessage).toMatch(
      /^blocked by govd \(DENY_REASON_GO_LIVE_DISABLED\): go-live is disabled/,
    );
    await enableGoLive(s.grpc);
    const start = performance.now();
    while (!govd.decide("PROD_EXEC").allowed && performance.now() - start < 1_000) {
      await new Promise((r) => setImmediate(r));
    }
    expect((await ask()).message).toBe("engine work done");
    client.close();
  });
});
