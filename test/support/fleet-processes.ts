/**
 * Real fleet processes for tests: `govd central` and connected `govd serve --central` sidecars,
 * started from dist/ the way the installed bin runs them, on free loopback ports, each stopped
 * by its PID when the test ends (`stopAll`).
 */
import { mkdtempSync, rmSync } from "node:fs";
import * as https from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { launcherNodeFlags } from "../../bench/processes.js";
import { type Caller, grpcCaller } from "./callers.js";
import { freePort, type Program, startProgram, waitForOk } from "./program.js";

/** The operator token of every fleet process in tests. */
export const FLEET_TOKEN = "fleet-test-token";

/** One started process and how to reach it. */
export interface FleetProcess {
  program: Program;
  dataDir: string;
  grpcPort: number;
  httpPort: number;
  grpcAddress: string;
  httpUrl: string;
  grpc: Caller;
  /** Sends SIGKILL and waits for the exit. */
  kill(): Promise<void>;
  /** Sends SIGTERM and waits for the exit. */
  stop(): Promise<void>;
}

const started = new Set<FleetProcess>();
const dirs: string[] = [];

/** A fresh folder removed by `stopAll`. */
export function fleetDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), `govd-${prefix}-`));
  dirs.push(dir);
  return dir;
}

async function launch(
  command: string[],
  env: Record<string, string>,
  options: {
    dataDir: string;
    grpcPort?: number;
    httpPort?: number;
    waitReady: boolean;
    /** The HTTP port serves TLS with a certificate from this CA (wait over https). */
    httpsCa?: Buffer;
  },
): Promise<FleetProcess> {
  const grpcPort = options.grpcPort ?? (await freePort());
  const httpPort = options.httpPort ?? (await freePort());
  const program = startProgram(
    "node",
    [...launcherNodeFlags(command[0]), "dist/src/cli/govd.js", ...command],
    {
      GOVD_DATA_DIR: options.dataDir,
      GOVD_GRPC_PORT: String(grpcPort),
      GOVD_HTTP_PORT: String(httpPort),
      GOVD_ADMIN_TOKEN: FLEET_TOKEN,
      GOVD_LOG_LEVEL: "warn",
      ...env,
    },
  );
  const httpUrl = `http://127.0.0.1:${httpPort}`;
  const grpcAddress = `127.0.0.1:${grpcPort}`;
  const p: FleetProcess = {
    program,
    dataDir: options.dataDir,
    grpcPort,
    httpPort,
    grpcAddress,
    httpUrl,
    grpc: grpcCaller(grpcAddress),
    async kill() {
      program.signal("SIGKILL");
      await program.exited;
      started.delete(p);
    },
    async stop() {
      program.signal("SIGTERM");
      await program.exited;
      started.delete(p);
    },
  };
  started.add(p);
  // A sidecar is ready only once it has central's policy; /healthz answers before that.
  const probe = options.waitReady ? "readyz" : "healthz";
  if (options.httpsCa) await waitForHttps(httpPort, probe, options.httpsCa, program);
  else await waitForOk(`${httpUrl}/${probe}`, 30_000, program);
  return p;
}

/** Waits until https://127.0.0.1:port/path answers 200 with a certificate from `ca`. */
async function waitForHttps(port: number, path: string, ca: Buffer, program: Program) {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    const status = await new Promise<number>((resolve) => {
      const req = https.get(
        { host: "127.0.0.1", port, path: `/${path}`, ca, servername: "localhost" },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.on("error", () => resolve(0));
    });
    if (status === 200) return;
    if (program.child.exitCode !== null)
      throw new Error(`program exited early:\n${program.output()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`https://127.0.0.1:${port}/${path} did not answer 200:\n${program.output()}`);
}

/** Starts `govd central` on a data dir (SQLite there) or `store` (postgres://...). */
export function startCentral(
  options: {
    dataDir?: string;
    store?: string;
    grpcPort?: number;
    httpPort?: number;
    heartbeatMs?: number;
    replicaId?: string;
    /** More flags (TLS). */
    args?: string[];
    httpsCa?: Buffer;
  } = {},
): Promise<FleetProcess> {
  const args = ["central", ...(options.args ?? [])];
  if (options.store) args.push("--store", options.store);
  if (options.heartbeatMs) args.push("--heartbeat-ms", String(options.heartbeatMs));
  if (options.replicaId) args.push("--replica-id", options.replicaId);
  return launch(
    args,
    {},
    { ...options, dataDir: options.dataDir ?? fleetDir("central"), waitReady: true },
  );
}

/** Starts a sidecar following `central` (one address or several, comma-separated). */
export function startFollower(options: {
  central: string;
  /** Absent: no --sidecar-id (the store's recorded id, else the host name). */
  sidecarId?: string;
  dataDir?: string;
  engines?: string[];
  staleAfter?: string;
  grpcPort?: number;
  httpPort?: number;
  /** Wait for /readyz (the first snapshot applied) rather than /healthz. */
  waitReady?: boolean;
  /** More flags (TLS). */
  args?: string[];
}): Promise<FleetProcess> {
  const args = [
    "serve",
    "--central",
    options.central,
    ...(options.sidecarId === undefined ? [] : ["--sidecar-id", options.sidecarId]),
    ...(options.args ?? []),
  ];
  if (options.engines?.length) args.push("--engine", options.engines.join(","));
  if (options.staleAfter) args.push("--stale-after", options.staleAfter);
  return launch(
    args,
    { GOVD_CENTRAL_TOKEN: FLEET_TOKEN },
    {
      ...options,
      dataDir: options.dataDir ?? fleetDir("sidecar"),
      waitReady: options.waitReady ?? true,
    },
  );
}

/** SIGKILLs every process still running and removes the folders. */
export async function stopAll(): Promise<void> {
  for (const p of [...started]) {
    p.grpc.close();
    await p.kill();
  }
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
}
