/** Runs h2load (nghttp2-client) over gRPC framing: one process per distinct request body. */
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseH2loadLog, parseH2loadOutput } from "./stats.js";

/** Installs h2load with apt-get when it is missing; throws if that fails. */
export function ensureH2load(): void {
  if (spawnSync("h2load", ["--version"]).status === 0) return;
  const install = () =>
    spawnSync("apt-get", ["install", "-y", "nghttp2-client"], { stdio: "inherit" }).status === 0;
  process.stderr.write("h2load is missing: apt-get install -y nghttp2-client\n");
  if (install()) return;
  spawnSync("apt-get", ["update"], { stdio: "inherit" });
  if (!install()) throw new Error("could not install nghttp2-client (h2load)");
}

/** The h2load version line, for the record. */
export function h2loadVersion(): string {
  return execFileSync("h2load", ["--version"]).toString().trim().split("\n")[0] ?? "";
}

/** One h2load measurement. */
export interface H2loadRun {
  url: string;
  /** Request body files (already gRPC-framed); one h2load process each, run in parallel. */
  bodies: string[];
  /** Clients per process. */
  clients: number;
  /** Max concurrent streams per client. */
  streams: number;
  durationS: number;
  warmupS: number;
  /** Write per-request logs and return the response times. */
  latency: boolean;
  workDir: string;
}

/** Requests per second summed over the processes; response times in microseconds if asked. */
export async function runH2load(
  run: H2loadRun,
): Promise<{ reqPerSec: number; requests: number; latencyUs: number[] }> {
  const procs = run.bodies.map((body, i) => {
    const log = join(run.workDir, `h2load-${i}.log`);
    const args = [
      "-c",
      String(run.clients),
      "-m",
      String(run.streams),
      "-t",
      "1",
      "-D",
      `${Math.round(run.durationS * 1000)}ms`,
      `--warm-up-time=${Math.round(run.warmupS * 1000)}ms`,
      "-H",
      "content-type: application/grpc",
      "-H",
      "te: trailers",
      "-d",
      body,
      ...(run.latency ? [`--log-file=${log}`] : []),
      run.url,
    ];
    return new Promise<{ out: string; log: string }>((resolve, reject) => {
      const child = spawn("h2load", args, { stdio: ["ignore", "pipe", "pipe"] });
      let out = "";
      child.stdout.on("data", (d: Buffer) => {
        out += d.toString();
      });
      child.stderr.on("data", (d: Buffer) => {
        out += d.toString();
      });
      const guard = setTimeout(
        () => child.kill("SIGKILL"),
        (run.durationS + run.warmupS + 30) * 1000,
      );
      child.on("close", (code) => {
        clearTimeout(guard);
        if (code !== 0) reject(new Error(`h2load exited ${code}:\n${out}`));
        else resolve({ out, log });
      });
    });
  });
  const results = await Promise.all(procs);
  let reqPerSec = 0;
  let requests = 0;
  const latencyUs: number[] = [];
  for (const r of results) {
    const s = parseH2loadOutput(r.out);
    if (s.failed > 0 || s.errored > 0 || s.succeeded === 0) {
      throw new Error(`h2load saw failures (${s.failed} failed, ${s.errored} errored):\n${r.out}`);
    }
    reqPerSec += s.reqPerSec;
    requests += s.succeeded;
    if (run.latency) {
      for (const us of parseH2loadLog(readFileSync(r.log, "utf8"))) latencyUs.push(us);
      rmSync(r.log, { force: true });
    }
  }
  return { reqPerSec, requests, latencyUs };
}

/** Writes each body to its own file and returns the paths. */
export function writeBodies(dir: string, name: string, bodies: Buffer[]): string[] {
  return bodies.map((b, i) => {
    const file = join(dir, `${name}-${i}.bin`);
    writeFileSync(file, b);
    return file;
  });
}

/** Total requests of a fixed-count h2load run (for the memory run); throws on failures. */
export function runH2loadCount(url: string, body: string, requests: number): void {
  const r = spawnSync(
    "h2load",
    [
      "-n",
      String(requests),
      "-c",
      "4",
      "-m",
      "16",
      "-t",
      "1",
      "-H",
      "content-type: application/grpc",
      "-H",
      "te: trailers",
      "-d",
      body,
      url,
    ],
    { timeout: 600_000 },
  );
  const out = `${r.stdout?.toString() ?? ""}${r.stderr?.toString() ?? ""}`;
  const s = parseH2loadOutput(out);
  if (s.succeeded !== requests) throw new Error(`h2load memory run incomplete:\n${out}`);
}
