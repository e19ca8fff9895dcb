/** Standard tools on the gRPC port: server reflection with buf curl, and grpc.health.v1. */
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { healthClient } from "./support/health-client.js";
import { type RunningSidecar, startSidecar } from "./support/sidecar.js";

const run = promisify(execFile);

async function bufCurl(args: string[]): Promise<string> {
  const { stdout } = await run(
    "npx",
    ["buf", "curl", "--protocol", "grpc", "--http2-prior-knowledge", ...args],
    {
      timeout: 30_000,
    },
  );
  return stdout;
}

describe("server reflection", () => {
  let s: RunningSidecar;
  beforeAll(async () => {
    s = await startSidecar();
  });
  afterAll(() => s.stop());

  it.each(["grpc-v1", "grpc-v1alpha"])("lists the services with %s", async (protocol) => {
    const out = await bufCurl([
      "--reflect-protocol",
      protocol,
      "--list-services",
      `http://${s.grpcAddress}`,
    ]);
    const services = out.trim().split("\n").sort();
    expect(services).toEqual(
      expect.arrayContaining([
        "governance.v1.GoLiveService",
        "governance.v1.HeimdallService",
        "governance.v1.RegressionService",
        "governance.v1.RiskService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
      ]),
    );
  });

  it("lists every method", async () => {
    const out = await bufCurl(["--list-methods", `http://${s.grpcAddress}`]);
    expect(out).toContain("governance.v1.RiskService/Reserve");
    expect(out).toContain("governance.v1.RiskService/ListEvents");
  });

  it("calls a method without the .proto files", async () => {
    const out = await bufCurl([
      "-d",
      '{"engine":"WHOLESALE","amount":"10.00","correlationId":"reflect-1"}',
      `http://${s.grpcAddress}/governance.v1.RiskService/Reserve`,
    ]);
    const body = JSON.parse(out) as { allowed?: boolean; reason?: string };
    // go-live is disabled on a fresh store: a denial is an answer, with its enum name resolved.
    expect(body.allowed).toBeUndefined();
    expect(body.reason).toBe("DENY_REASON_GO_LIVE_DISABLED");
  });

  it("answers an unknown symbol with NOT_FOUND", async () => {
    await expect(
      bufCurl(["-d", "{}", `http://${s.grpcAddress}/governance.v1.NoSuchService/Nope`]),
    ).rejects.toThrow(/not found|NoSuchService/i);
  });
});

describe("grpc.health.v1", () => {
  it("agrees with /readyz: SERVING while ready, NOT_SERVING from shutdown on", async () => {
    const s = await startSidecar();
    const h = healthClient(s.grpcAddress);
    try {
      expect(await h.check("")).toBe(1);
      expect(await h.check("governance.v1.RiskService")).toBe(1);
      expect((await fetch(`${s.httpUrl}/readyz`)).status).toBe(200);
      await expect(h.check("no.such.Service")).rejects.toMatchObject({
        code: grpc.status.NOT_FOUND,
      });

      const seen: number[] = [];
      const stream = h.watch("");
      const ended = new Promise<void>((resolve) => {
        stream.on("data", (status: number) => seen.push(status));
        stream.on("end", () => resolve());
        stream.on("error", () => resolve());
      });
      await expect.poll(() => seen.length).toBe(1);
      expect(seen).toEqual([1]);

      await s.stop();
      await ended;
      expect(seen).toEqual([1, 2]);
      expect(s.sidecar.readiness.isReady()).toBe(false);
    } finally {
      h.client.close();
    }
  });

  it("says NOT_SERVING while the store's disk is full, and SERVING once it recovers", async () => {
    const s = await startSidecar();
    const h = healthClient(s.grpcAddress);
    try {
      s.sidecar.readiness.markStoreFull(true);
      expect(await h.check("")).toBe(2);
      const res = await fetch(`${s.httpUrl}/readyz`);
      expect(res.status).toBe(503);
      expect(await res.text()).toMatch(/not ready: the store's disk is full/);
      s.sidecar.readiness.markStoreFull(false);
      expect(await h.check("")).toBe(1);
      expect((await fetch(`${s.httpUrl}/readyz`)).status).toBe(200);
    } finally {
      h.client.close();
      await s.stop();
    }
  });

  it("says NOT_SERVING before the sidecar is ready", async () => {
    const s = await startSidecar();
    const h = healthClient(s.grpcAddress);
    try {
      s.sidecar.readiness.markClosing();
      expect(await h.check("")).toBe(2);
      expect((await fetch(`${s.httpUrl}/readyz`)).status).toBe(503);
    } finally {
      h.client.close();
      await s.stop();
    }
  });
});

describe("shutdown with a reflection stream left open", () => {
  it("does not wait for the client to close it", async () => {
    const s = await startSidecar();
    const client = new grpc.Client(s.grpcAddress, grpc.credentials.createInsecure());
    const stream = client.makeBidiStreamRequest(
      "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
      (b: Buffer) => b,
      (b: Buffer) => b,
    );
    const got = new Promise((resolve) => stream.once("data", resolve));
    // list_services = "" (field 7, length-delimited, empty)
    stream.write(Buffer.from([0x3a, 0x00]));
    await got;
    const stopped = await Promise.race([
      s.stop().then(() => "stopped"),
      new Promise((r) => setTimeout(() => r("hung"), 5_000)),
    ]);
    client.close();
    expect(stopped).toBe("stopped");
  });
});

describe("reflection index", () => {
  it("finds the file of messages, fields, services, methods and imports", async () => {
    const { ReflectionIndex } = await import("../src/server/standard/reflection.js");
    const { RiskService } = await import("../gen/governance/v1/risk_pb.js");
    const index = new ReflectionIndex([RiskService]);
    for (const symbol of [
      "governance.v1.RiskService",
      "governance.v1.RiskService.Reserve",
      "governance.v1.ReserveRequest",
      "governance.v1.ReserveRequest.amount",
      ".governance.v1.DenyReason",
    ]) {
      expect(index.fileBySymbol(symbol)?.proto.name, symbol).toMatch(
        /^governance\/v1\/(risk|common)\.proto$/,
      );
    }
    expect(index.fileBySymbol("governance.v1.Nope")).toBeUndefined();
    expect(index.fileByName("buf/validate/validate.proto")).toBeDefined();
    expect(index.extensionsOf("google.protobuf.FieldOptions").map((e) => e.number)).toContain(1159);
    const sent = new Set<string>();
    const risk = index.fileByName("governance/v1/risk.proto");
    expect(risk && index.serialize(risk, sent).length).toBeGreaterThanOrEqual(5);
    expect(risk && index.serialize(risk, sent)).toEqual([]); // each file once per stream
  });
});
