/**
 * Hardening: the HTTP port refuses rebound host names, idle connections are closed on both
 * ports, and an operator token others can read is refused.
 */
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import * as http from "node:http";
import * as http2 from "node:http2";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { GoLiveService } from "../gen/governance/v1/golive_pb.js";
import { hostAllowed, hostName, parseAllowedHosts } from "../src/server/allowed-hosts.js";
import { loadOrCreateToken } from "../src/server/operator-token.js";
import { type RunningSidecar, startSidecar } from "./support/sidecar.js";

const stops: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const stop of stops.splice(0)) await stop();
});

async function sidecar(options: Parameters<typeof startSidecar>[0] = {}): Promise<RunningSidecar> {
  const s = await startSidecar(options);
  stops.push(() => s.stop());
  return s;
}

/** GET a path of the HTTP port with a chosen Host header; resolves status and body. */
function getWithHost(s: RunningSidecar, path: string, host: string) {
  const url = new URL(s.httpUrl);
  return new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = http.request(
      { host: url.hostname, port: url.port, path, method: "GET", headers: { host } },
      (res) => {
        let body = "";
        res.on("data", (c: Buffer) => {
          body += c.toString();
        });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on("error", reject);
    req.end();
  });
}

describe("Host header (DNS rebinding guard)", () => {
  it("serves IP literals, localhost and allowed names only", () => {
    const allowed = parseAllowedHosts(" govd.internal ,Sidecar.Example,");
    expect([...allowed]).toEqual(["govd.internal", "sidecar.example"]);
    for (const h of [
      undefined,
      "127.0.0.1:8014",
      "127.0.0.1",
      "[::1]:8014",
      "10.1.2.3:80",
      "localhost:8014",
      "LOCALHOST",
      "app.localhost",
      "govd.internal:8014",
      "sidecar.example.",
    ]) {
      expect(hostAllowed(h, allowed), String(h)).toBe(true);
    }
    for (const h of ["evil.example:8014", "127.0.0.1.nip.io", "localhost.evil.example", "govd"]) {
      expect(hostAllowed(h, allowed), h).toBe(false);
    }
    expect(hostName("[::1]:8014")).toBe("::1");
    expect(hostName("Evil.Example:80")).toBe("evil.example");
  });

  it("answers a rebound name with 403 on every path, and serves the real address", async () => {
    const s = await sidecar({ httpAllowedHosts: parseAllowedHosts("govd.internal") });
    const port = new URL(s.httpUrl).port;
    for (const path of ["/readyz", "/metrics", "/governance.v1.GoLiveService/GetState"]) {
      const refused = await getWithHost(s, path, `evil.example:${port}`);
      expect(refused.status, path).toBe(403);
      expect(refused.body).toMatch(/host evil\.example is not served here.*--http-allowed-hosts/);
    }
    expect((await getWithHost(s, "/readyz", `127.0.0.1:${port}`)).status).toBe(200);
    expect((await getWithHost(s, "/readyz", `localhost:${port}`)).status).toBe(200);
    expect((await getWithHost(s, "/readyz", `govd.internal:${port}`)).status).toBe(200);
    // The port still serves Connect calls to its address.
    expect((await s.connect.call(GoLiveService, "getState", {})).state).toBeDefined();
  });
});

describe("idle connections", () => {
  it("are closed on the gRPC port after the idle time, and a new call reconnects", async () => {
    const s = await sidecar({ idleTimeoutMs: 300 });
    const session = http2.connect(`http://${s.grpcAddress}`);
    session.on("error", () => {});
    const closed = new Promise<number>((resolve) => {
      const start = Date.now();
      session.once("close", () => resolve(Date.now() - start));
    });
    await new Promise<void>((resolve) => session.once("connect", () => resolve()));
    const elapsed = await closed;
    expect(elapsed).toBeGreaterThanOrEqual(250);
    expect((await s.grpc.call(GoLiveService, "getState", {})).state).toBeDefined();
  });

  it("are closed on the HTTP port after the idle time", async () => {
    const s = await sidecar({ idleTimeoutMs: 300 });
    const url = new URL(s.httpUrl);
    const agent = new http.Agent({ keepAlive: true });
    const socketClosed = await new Promise<boolean>((resolve, reject) => {
      const req = http.request(
        { host: url.hostname, port: url.port, path: "/healthz", agent },
        (res) => {
          res.resume();
          res.on("end", () => {
            const socket = req.socket;
            if (!socket) return resolve(false);
            const timer = setTimeout(() => resolve(false), 3_000);
            socket.once("close", () => {
              clearTimeout(timer);
              resolve(true);
            });
          });
        },
      );
      req.on("error", reject);
      req.end();
    });
    agent.destroy();
    expect(socketClosed).toBe(true);
  });
});

describe("operator token file", () => {
  it("is refused when others can read it, and accepted with a warning when told to", () => {
    const dir = mkdtempSync(join(tmpdir(), "govd-token-"));
    try {
      const file = join(dir, "admin.token");
      writeFileSync(file, "shared-token\n");
      chmodSync(file, 0o640);
      expect(() => loadOrCreateToken(dir)).toThrow(/mode 0640.*chmod 600/);
      const warnings: string[] = [];
      const token = loadOrCreateToken(dir, undefined, {
        allowReadable: true,
        warn: (m) => warnings.push(m),
      });
      expect(token).toBe("shared-token");
      expect(warnings).toEqual([expect.stringMatching(/mode 0640.*--allow-readable-token/)]);
      chmodSync(file, 0o600);
      expect(loadOrCreateToken(dir)).toBe("shared-token");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
