/**
 * Robustness: garbage on the ports, oversized and malformed requests, a corrupt or read-only
 * store, and a clean shutdown on SIGTERM. The last three run the built program (dist/) as a child.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import * as http2 from "node:http2";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Code } from "@connectrpc/connect";
import { afterEach, describe, expect, it } from "vitest";
import { ExecutionClass } from "../gen/governance/v1/common_pb.js";
import { GoLiveService } from "../gen/governance/v1/golive_pb.js";
import { HeimdallService } from "../gen/governance/v1/heimdall_pb.js";
import { RiskService } from "../gen/governance/v1/risk_pb.js";
import { openDatabase } from "../src/store/database.js";
import { grpcCaller } from "./support/callers.js";
import { rejects } from "./support/expect-error.js";
import { type RunningSidecar, startSidecar, TOKEN } from "./support/sidecar.js";

const GOVD = fileURLToPath(new URL("../dist/src/cli/govd.js", import.meta.url));

// ---- cleanup of everything a test starts -------------------------------------------------------

const sidecars: RunningSidecar[] = [];
const children: ChildProcess[] = [];
const dirs: string[] = [];
const closers: (() => void)[] = [];

afterEach(async () => {
  for (const close of closers.splice(0)) {
    try {
      close();
    } catch {
      // already closed
    }
  }
  for (const child of children.splice(0)) {
    if (child.exitCode === null && child.signalCode === null) {
      const gone = new Promise((resolve) => child.once("exit", resolve));
      child.kill("SIGKILL");
      await gone;
    }
  }
  for (const s of sidecars.splice(0)) await s.stop();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

async function sidecar(options: { maxMessageBytes?: number } = {}): Promise<RunningSidecar> {
  const s = await startSidecar(options);
  sidecars.push(s);
  return s;
}

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "govd-robust-"));
  dirs.push(dir);
  return dir;
}

function sha256(file: string): string {
  return createHash("sha256").update(readFileSync(file)).digest("hex");
}

function portOf(address: string): number {
  return Number(address.slice(address.lastIndexOf(":") + 1));
}

async function checkGoLive(address: string) {
  const caller = grpcCaller(address);
  try {
    return await caller.call(GoLiveService, "checkGoLive", {
      executionClass: ExecutionClass.EXEMPT,
      engine: "WHOLESALE",
    });
  } finally {
    caller.close();
  }
}

// ---- the real program as a child process -------------------------------------------------------

interface Program {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  /** Resolves with the exit code (or the signal name) once the process is gone. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Starts `govd ARGS` with GOVD_* variables cleared; `user` runs it as another uid/gid. */
function govd(args: string[], options: { user?: { uid: number; gid: number } } = {}): Program {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("GOVD_")) env[k] = v;
  env.GOVD_ADMIN_TOKEN = TOKEN;
  env.GOVD_LOG_LEVEL = "info";
  const child = spawn(process.execPath, [GOVD, ...args], {
    cwd: tmpdir(),
    env,
    stdio: ["ignore", "pipe", "pipe"],
    ...(options.user ?? {}),
  });
  children.push(child);
  let out = "";
  let err = "";
  child.stdout?.setEncoding("utf8").on("data", (d: string) => {
    out += d;
  });
  child.stderr?.setEncoding("utf8").on("data", (d: string) => {
    err += d;
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("close", (code, signal) => resolve({ code, signal })),
  );
  return { child, stdout: () => out, stderr: () => err, exited };
}

function serveArgs(dir: string): string[] {
  return ["serve", "--data-dir", dir, "--grpc-port", "0", "--http-port", "0"];
}

function logLines(text: string): { msg?: string; [k: string]: unknown }[] {
  return text
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((l) => JSON.parse(l) as { msg?: string });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Waits for the "govd sidecar serving" line (ports were 0) or for the process to exit. */
async function serving(
  p: Program,
  timeoutMs = 10_000,
): Promise<{ grpc: string; http: string } | { exited: number | null }> {
  let exit: { code: number | null } | undefined;
  void p.exited.then((e) => {
    exit = e;
  });
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const line = p
      .stdout()
      .split("\n")
      .find((l) => l.includes('"govd sidecar serving"'));
    if (line) {
      const entry = JSON.parse(line) as { grpc: string; http: string };
      return { grpc: entry.grpc, http: entry.http };
    }
    if (exit) return { exited: exit.code };
    await sleep(25);
  }
  throw new Error(
    `govd neither served nor exited within ${timeoutMs} ms\nstdout:\n${p.stdout()}\nstderr:\n${p.stderr()}`,
  );
}

async function waitReady(httpUrl: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      const res = await fetch(`${httpUrl}/readyz`);
      const body = await res.text();
      if (res.status === 200 && body.trim() === "ready") return;
    } catch {
      // not listening yet
    }
    await sleep(25);
  }
  throw new Error(`${httpUrl}/readyz did not answer 200 within ${timeoutMs} ms`);
}

/** Resolves with the exit, or rejects when the process is still running after `ms`. */
async function exitWithin(p: Program, ms: number) {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new Error(
            `govd still running after ${ms} ms\nstdout:\n${p.stdout()}\nstderr:\n${p.stderr()}`,
          ),
        ),
      ms,
    );
  });
  try {
    return await Promise.race([p.exited, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** The one-line, no-stack-trace error a CLI failure must print. */
function expectOneCleanLine(stderr: string): string {
  expect(stderr).not.toContain("    at ");
  const lines = stderr.split("\n").filter((l) => l.trim() !== "");
  expect(lines).toHaveLength(1);
  return lines[0] as string;
}

// ---- 1. garbage on the gRPC port ---------------------------------------------------------------

describe("garbage on the gRPC port", () => {
  it("survives random bytes over raw TCP, drops that connection and keeps serving", async () => {
    const s = await sidecar();
    const port = portOf(s.grpcAddress);
    const payloads = [
      randomBytes(64 * 1024),
      // a valid HTTP/2 client preface followed by nonsense frames
      Buffer.concat([Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), randomBytes(4096)]),
      Buffer.from("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
    ];
    for (const payload of payloads) {
      const closedByServer = await new Promise<boolean>((resolve) => {
        const socket = net.connect(port, "127.0.0.1");
        const timer = setTimeout(() => {
          socket.destroy();
          resolve(false);
        }, 5_000);
        socket.on("error", () => {
          // a reset from the server is a fine way to drop a garbage connection
        });
        socket.on("connect", () => socket.write(payload));
        socket.on("data", () => {});
        socket.on("close", () => {
          clearTimeout(timer);
          resolve(true);
        });
      });
      expect(closedByServer).toBe(true);
    }
    // The existing client and a brand-new connection are both served.
    const res = await s.grpc.call(GoLiveService, "checkGoLive", {
      executionClass: ExecutionClass.EXEMPT,
    });
    expect(res.allowed).toBe(true);
    const fresh = await checkGoLive(s.grpcAddress);
    expect(fresh.allowed).toBe(true);
    expect(fresh.goLiveEnabled).toBe(false);
  });

  it("answers a Connect binary body that is garbage with invalid_argument (HTTP 400), as the gRPC port does", async () => {
    const s = await sidecar();
    for (const [path, body] of [
      ["/governance.v1.RiskService/Reserve", Buffer.from("hello")],
      ["/governance.v1.GoLiveService/CheckGoLive", Buffer.from([0xff, 0xff, 0xff])],
    ] as const) {
      const res = await fetch(`${s.httpUrl}${path}`, {
        method: "POST",
        headers: { "content-type": "application/proto" },
        body,
      });
      expect(res.status, path).toBe(400);
      const error = (await res.json()) as { code: string; message: string };
      expect(error.code).toBe("invalid_argument");
      expect(error.message).toMatch(
        /invalid request: the body is not a valid governance\.v1\.\w+Request in protobuf binary/,
      );
    }
    // A valid binary body is served as before, and nothing was booked by the garbage.
    const ok = await fetch(`${s.httpUrl}/governance.v1.GoLiveService/CheckGoLive`, {
      method: "POST",
      headers: { "content-type": "application/proto" },
      body: Buffer.from([0x08, 0x02]),
    });
    expect(ok.status).toBe(200);
    expect(ok.headers.get("content-type")).toBe("application/proto");
    expect(s.db.prepare("SELECT count(*) AS n FROM risk_reservation").get()).toEqual({ n: 0 });
  });

  it("answers a gRPC request whose protobuf body is garbage with INVALID_ARGUMENT naming the type", async () => {
    const s = await sidecar();
    const session = http2.connect(`http://${s.grpcAddress}`);
    closers.push(() => session.close());
    session.on("error", () => {});
    const body = Buffer.from([0x00, 0x00, 0x00, 0x00, 0x03, 0xff, 0xff, 0xff]);
    const answer = await new Promise<{
      headers: http2.IncomingHttpHeaders;
      trailers: http2.IncomingHttpHeaders;
      data: Buffer;
    }>((resolve, reject) => {
      const req = session.request({
        ":method": "POST",
        ":path": "/governance.v1.RiskService/Reserve",
        "content-type": "application/grpc",
        te: "trailers",
      });
      let headers: http2.IncomingHttpHeaders = {};
      let trailers: http2.IncomingHttpHeaders = {};
      const chunks: Buffer[] = [];
      req.on("response", (h) => {
        headers = h;
      });
      req.on("trailers", (t) => {
        trailers = t;
      });
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => resolve({ headers, trailers, data: Buffer.concat(chunks) }));
      req.on("error", reject);
      req.end(body);
    });
    expect(answer.headers[":status"]).toBe(200);
    expect(answer.data.length).toBe(0);
    // A trailers-only answer carries the status in its only HEADERS frame (END_STREAM).
    const status = answer.trailers["grpc-status"] ?? answer.headers["grpc-status"];
    const message = answer.trailers["grpc-message"] ?? answer.headers["grpc-message"];
    expect(status).toBe(String(Code.InvalidArgument));
    expect(typeof message).toBe("string");
    expect(decodeURIComponent(message as string)).toMatch(/governance\.v1\.ReserveRequest/);
    // Nothing was booked, and the process keeps serving.
    expect(s.db.prepare("SELECT count(*) AS n FROM risk_reservation").get()).toEqual({ n: 0 });
    const ledger = await s.grpc.call(RiskService, "getLedgerToday", {});
    expect(ledger.entries.every((e) => e.denials === 0 && e.actions === 0)).toBe(true);
    expect((await checkGoLive(s.grpcAddress)).allowed).toBe(true);
  });
});

// ---- 2. oversized messages ---------------------------------------------------------------------

describe("oversized messages", () => {
  const big = JSON.stringify({ buyer: "b-17", notes: "x".repeat(10_000) });
  let n = 0;
  const request = (recommendationJson: string) => ({
    domain: "BUYER_MATCH",
    confidence: 0.5,
    recommendationJson,
    correlationId: `big-${++n}`,
  });
  const stored = (s: RunningSidecar) => ({
    recommendations: (
      s.db.prepare("SELECT count(*) AS n FROM heimdall_recommendation").get() as { n: number }
    ).n,
    keys: (s.db.prepare("SELECT count(*) AS n FROM idempotency").get() as { n: number }).n,
  });

  it("refuses a 10 KB Recommend on both ports with RESOURCE_EXHAUSTED and stores nothing", async () => {
    const s = await sidecar({ maxMessageBytes: 4096 });
    const before = stored(s);
    expect(before).toEqual({ recommendations: 0, keys: 0 });

    await rejects(
      s.grpc.call(HeimdallService, "recommend", request(big)),
      Code.ResourceExhausted,
      /larger than max/i,
    );

    const res = await fetch(`${s.httpUrl}/governance.v1.HeimdallService/Recommend`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(request(big)),
    });
    const json = (await res.json()) as { code?: string; message?: string };
    // The Connect protocol maps resource_exhausted to HTTP 429.
    expect(res.status).toBe(429);
    expect(json.code).toBe("resource_exhausted");
    expect(json.message).toMatch(/4096/);

    expect(stored(s)).toEqual(before);

    // A request under the limit still goes through on both ports.
    const ok1 = await s.grpc.call(HeimdallService, "recommend", request('{"buyer":"b-1"}'));
    const ok2 = await s.connect.call(HeimdallService, "recommend", request('{"buyer":"b-2"}'));
    expect(ok1.recommendationId).not.toBe("");
    expect(ok2.recommendationId).not.toBe("");
    expect(stored(s)).toEqual({ recommendations: 2, keys: 2 });
  });
});

// ---- 3. invalid JSON on the HTTP port ----------------------------------------------------------

describe("invalid JSON on the HTTP port", () => {
  it("answers 400 invalid_argument and keeps serving", async () => {
    const s = await sidecar();
    const res = await fetch(`${s.httpUrl}/governance.v1.RiskService/Reserve`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{not json",
    });
    expect(res.status).toBe(400);
    expect(res.headers.get("content-type")).toMatch(/application\/json/);
    const json = (await res.json()) as { code?: string; message?: string };
    expect(json.code).toBe("invalid_argument");
    expect(json.message).toMatch(/ReserveRequest/);
    expect(s.db.prepare("SELECT count(*) AS n FROM risk_reservation").get()).toEqual({ n: 0 });

    const after = await s.connect.call(GoLiveService, "checkGoLive", {
      executionClass: ExecutionClass.EXEMPT,
    });
    expect(after.allowed).toBe(true);
    const denied = await s.connect.call(RiskService, "reserve", {
      engine: "WHOLESALE",
      amount: "1.00",
      correlationId: "after-bad-json",
    });
    expect(denied.allowed).toBe(false);
  });
});

// ---- 4. a corrupt store ------------------------------------------------------------------------

describe("a corrupt store file", () => {
  it("exits 1 with one clear line, no stack trace, and leaves the file untouched", async () => {
    const dir = tempDir();
    const file = join(dir, "sidecar.db");
    const garbage = randomBytes(16 * 1024);
    garbage.write("not sqlite", 0); // never a valid "SQLite format 3\0" header by chance
    writeFileSync(file, garbage);
    const before = sha256(file);

    const p = govd(serveArgs(dir));
    const exit = await exitWithin(p, 10_000);
    expect(exit.code).toBe(1);
    expect(p.stdout()).not.toContain('"govd sidecar serving"');
    const line = expectOneCleanLine(p.stderr());
    expect(line).toContain(file);
    expect(line).toMatch(/not a valid SQLite database/);

    expect(sha256(file)).toBe(before);
    expect(existsSync(`${file}-wal`)).toBe(false);
    expect(existsSync(`${file}-journal`)).toBe(false);
  });
});

// ---- 5. a read-only store ----------------------------------------------------------------------

function nobody(): { uid: number; gid: number } {
  return {
    uid: Number(execFileSync("id", ["-u", "nobody"], { encoding: "utf8" }).trim()),
    gid: Number(execFileSync("id", ["-g", "nobody"], { encoding: "utf8" }).trim()),
  };
}

describe("a read-only store file", () => {
  it.each([
    ["neither the file nor its folder", false],
    ["its folder but not the file", true],
  ])(
    "refuses with a clear 'cannot be written' line when the user may write %s",
    async (_, folderWritable) => {
      const user = nobody();
      expect(user.uid).toBeGreaterThan(0);
      const dir = tempDir();
      const file = join(dir, "sidecar.db");
      execFileSync(process.execPath, [GOVD, "migrate", "up", "--data-dir", dir], {
        cwd: tmpdir(),
        stdio: "pipe",
      });
      chmodSync(file, 0o444);
      chmodSync(dir, 0o755);
      if (folderWritable) chownSync(dir, user.uid, user.gid);
      // Preconditions: root owns the file; nobody may read it but not write it.
      expect(statSync(file).uid).toBe(0);
      expect(statSync(file).mode & 0o777).toBe(0o444);
      expect(statSync(dir).uid).toBe(folderWritable ? user.uid : 0);
      expect(statSync(dir).mode & 0o777).toBe(0o755);
      expect(existsSync(`${file}-wal`)).toBe(false);
      const before = sha256(file);

      const p = govd(serveArgs(dir), { user });
      const outcome = await serving(p);
      // A store it cannot write is refused at start, before /readyz could say ready.
      expect("exited" in outcome && outcome.exited).toBe(1);
      const line = expectOneCleanLine(p.stderr());
      expect(line).toContain(file);
      expect(line).toMatch(/cannot be written|read-?only/i);
      expect(sha256(file)).toBe(before);
      expect(statSync(file).mode & 0o777).toBe(0o444);
    },
  );
});

// ---- 6. graceful shutdown ----------------------------------------------------------------------

describe("graceful shutdown on SIGTERM", () => {
  it("finishes, logs 'store closed', exits 0 and leaves a checkpointed, intact store", async () => {
    const dir = tempDir();
    const file = join(dir, "sidecar.db");
    const p = govd(serveArgs(dir));
    const outcome = await serving(p);
    if ("exited" in outcome) throw new Error(`govd exited early: ${p.stderr()}`);
    const httpUrl = `http://${outcome.http}`;
    await waitReady(httpUrl);

    // Calls on both ports; the gRPC connection stays open while the signal arrives.
    const caller = grpcCaller(outcome.grpc);
    closers.push(() => caller.close());
    await caller.call(
      GoLiveService,
      "enable",
      { actor: "ops", reason: "shutdown test", correlationId: "sd-enable" },
      { token: TOKEN },
    );
    const reserved = await caller.call(RiskService, "reserve", {
      engine: "WHOLESALE",
      amount: "12.34",
      correlationId: "sd-reserve",
      actor: "engine",
    });
    expect(reserved.allowed).toBe(true);
    const viaHttp = await fetch(`${httpUrl}/governance.v1.RiskService/Reserve`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ engine: "CAPITAL", amount: "5.00", correlationId: "sd-reserve-2" }),
    });
    expect(viaHttp.status).toBe(200);
    expect(((await viaHttp.json()) as { allowed?: boolean }).allowed).toBe(true);
    // While running in WAL mode, the writes sit in the -wal file.
    expect(existsSync(`${file}-wal`)).toBe(true);

    p.child.kill("SIGTERM");
    const exit = await exitWithin(p, 5_000);
    expect(exit).toEqual({ code: 0, signal: null });
    const messages = logLines(p.stdout()).map((l) => l.msg ?? "");
    expect(messages).toContain("shutting down: finishing in-flight calls");
    expect(messages.some((m) => /store closed/.test(m))).toBe(true);
    expect(p.stderr()).toBe("");

    // The last connection's close checkpoints the WAL into the main file and removes it.
    expect(existsSync(`${file}-wal`) ? statSync(`${file}-wal`).size : 0).toBe(0);
    expect(existsSync(`${file}-wal`)).toBe(false);
    expect(existsSync(`${file}-shm`)).toBe(false);

    const db = openDatabase(file);
    try {
      expect(db.pragma("integrity_check", { simple: true })).toBe("ok");
      const reservations = db
        .prepare("SELECT engine FROM risk_reservation ORDER BY engine")
        .all() as { engine: string }[];
      expect(reservations.map((r) => r.engine)).toEqual(["CAPITAL", "WHOLESALE"]);
      expect(db.prepare("SELECT go_live_enabled FROM golive_state").get()).toEqual({
        go_live_enabled: 1,
      });
    } finally {
      db.close();
    }
  });
});
