import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, createClient } from "@connectrpc/connect";
import { createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ExecutionClass } from "../gen/governance/v1/common_pb.js";
import { GoLiveService } from "../gen/governance/v1/golive_pb.js";
import { RiskService } from "../gen/governance/v1/risk_pb.js";
import { ManualClock } from "../src/clock.js";
import { createSidecar, type Sidecar } from "../src/server/sidecar.js";
import { migrateTo, openDatabase } from "../src/store/database.js";
import { grpcCaller } from "./support/callers.js";
import { rejects } from "./support/expect-error.js";
import { enableGoLive, type RunningSidecar, startSidecar, TOKEN } from "./support/sidecar.js";

describe("gRPC-Web on the HTTP/1.1 port", () => {
  let s: RunningSidecar;
  beforeEach(async () => {
    s = await startSidecar();
  });
  afterEach(async () => {
    await s.stop();
  });

  it("answers decisions and errors like the other ports", async () => {
    const transport = createGrpcWebTransport({ baseUrl: s.httpUrl, httpVersion: "1.1" });
    const golive = createClient(GoLiveService, transport);
    const res = await golive.checkGoLive({ executionClass: ExecutionClass.EXEMPT });
    expect(res.allowed).toBe(true);
    await rejects(
      golive.enable({ actor: "a", reason: "r", correlationId: "web-1" }),
      Code.Unauthenticated,
      /operator/,
    );
    const enabled = await golive.enable(
      { actor: "a", reason: "r", correlationId: "web-2" },
      { headers: { authorization: `Bearer ${TOKEN}` } },
    );
    expect(enabled.state?.goLiveEnabled).toBe(true);
  });

  it("books 1,000 reservations of 0.10 as exactly 100.00", async () => {
    await enableGoLive(s.grpc);
    await s.grpc.call(
      RiskService,
      "upsertPolicy",
      {
        engine: "WHOLESALE",
        maxDailyLoss: "200",
        maxDailyExposure: "1000",
        maxOpenRisk: "500",
        maxActionsPerDay: 5000,
        enabled: true,
        actor: "ops",
        reason: "room for the test",
        correlationId: "cap",
      },
      { token: TOKEN },
    );
    const client = createClient(
      RiskService,
      createGrpcTransport({ baseUrl: `http://${s.grpcAddress}` }),
    );
    const answers = await Promise.all(
      Array.from({ length: 1000 }, (_, i) =>
        client.reserve({ engine: "WHOLESALE", amount: "0.10", correlationId: `dime-${i}` }),
      ),
    );
    expect(answers.every((a) => a.allowed)).toBe(true);
    const ledger = await s.grpc.call(RiskService, "getLedgerToday", { engine: "WHOLESALE" });
    expect(ledger.entries[0]).toMatchObject({
      exposureUsed: "100.00",
      openRisk: "100.00",
      actions: 1000,
    });
  });
});

describe("gRPC on a unix socket", () => {
  let sidecar: Sidecar;
  let dir: string;
  afterEach(async () => {
    await sidecar.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("serves the same services as the TCP port", async () => {
    dir = mkdtempSync(join(tmpdir(), "govd-socket-"));
    const db = openDatabase(join(dir, "sidecar.db"));
    migrateTo(db);
    sidecar = createSidecar({
      db,
      clock: new ManualClock(0),
      token: TOKEN,
      storeFile: "sidecar.db",
    });
    const socket = join(dir, "govd.sock");
    const bound = await sidecar.listen({ grpcSocket: socket });
    expect(bound.grpcSocket).toBe(socket);
    const caller = grpcCaller(`unix:${socket}`);
    const res = await caller.call(GoLiveService, "checkGoLive", {
      executionClass: ExecutionClass.PROD,
    });
    expect(res.allowed).toBe(false);
    caller.close();
  });
});
