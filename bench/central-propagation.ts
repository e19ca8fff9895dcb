/**
 * Central's fan-out, measured: a `govd central` process (from dist/) with N stand-in sidecars
 * on Watch streams (one HTTP/2 connection each, acking what they apply), then kill-switch
 * changes one after another. Reports the time from sending each change to central until each
 * sidecar received it (p50/p99/max over every sidecar and change: an upper bound of
 * propagation, since it includes the write's own commit), central's resident memory per
 * connected sidecar, and its CPU per heartbeat sent.
 *
 *   node dist/bench/central-propagation.js [--sidecars 50] [--changes 40] [--store postgres://...]
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import {
  EngageKillSwitchRequestSchema,
  EngageKillSwitchResponseSchema,
} from "../gen/governance/v1/golive_pb.js";
import {
  AckRequestSchema,
  AckResponseSchema,
  type WatchRequest,
  WatchRequestSchema,
  type WatchResponse,
  WatchResponseSchema,
} from "../gen/governance/v1/sync_pb.js";
import { cpuTimeUs, launcherNodeFlags, memoryOf } from "./processes.js";
import { latencySummary } from "./stats.js";

const arg = (name: string, fallback: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? (process.argv[i + 1] ?? fallback) : fallback;
};
const SIDECARS = Number(arg("sidecars", "50"));
const CHANGES = Number(arg("changes", "40"));
const STORE = arg("store", "");
const HEARTBEAT_MS = 1000;
const GAP_MS = Number(arg("gap-ms", "250"));
const TOKEN = "bench-token";

/** Starts central on port 0 and resolves with its pid and gRPC address once it serves. */
async function startCentral(dataDir: string) {
  const child = spawn(
    process.execPath,
    [
      ...launcherNodeFlags("central"),
      "dist/src/cli/govd.js",
      "central",
      "--grpc-port",
      "0",
      "--http-port",
      "0",
    ],
    {
      env: {
        ...process.env,
        GOVD_DATA_DIR: dataDir,
        GOVD_ADMIN_TOKEN: TOKEN,
        GOVD_LOG_LEVEL: "info",
        GOVD_HEARTBEAT_MS: String(HEARTBEAT_MS),
        ...(STORE ? { GOVD_STORE: STORE } : {}),
      },
      stdio: ["ignore", "pipe", "inherit"],
    },
  );
  const address = await new Promise<string>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout });
    lines.on("line", (line) => {
      try {
        const e = JSON.parse(line) as { msg?: string; grpc?: string };
        if (e.msg === "govd central serving" && e.grpc) resolve(e.grpc);
      } catch {
        // not a log line
      }
    });
    child.once("exit", (code) => reject(new Error(`central exited with ${code}`)));
  });
  child.stdout.resume();
  return { pid: child.pid as number, address, stop: () => child.kill("SIGKILL") };
}

/** A stand-in sidecar: a Watch stream on its own connection; calls `onRevision` per message. */
function sidecar(address: string, id: number, onRevision: (revision: bigint) => void) {
  // A distinct channel option gives each its own connection, as separate pods would have.
  const client = new grpc.Client(address, grpc.credentials.createInsecure(), {
    "bench.sidecar": id,
  });
  const call = client.makeServerStreamRequest(
    "/governance.v1.SyncService/Watch",
    (m: WatchRequest) => Buffer.from(toBinary(WatchRequestSchema, m)),
    (b: Buffer) => fromBinary(WatchResponseSchema, b),
    create(WatchRequestSchema, { sidecarId: `bench-${id}` }),
  );
  call.on("data", (m: WatchResponse) => {
    const v =
      m.message.case === "snapshot" || m.message.case === "change" ? m.message.value : undefined;
    if (!v) return;
    onRevision(v.revision);
    const ack = create(AckRequestSchema, {
      sidecarId: `bench-${id}`,
      revision: v.revision,
      digest: v.digest,
    });
    client.makeUnaryRequest(
      "/governance.v1.SyncService/Ack",
      (r: typeof ack) => Buffer.from(toBinary(AckRequestSchema, r)),
      (b: Buffer) => fromBinary(AckResponseSchema, b),
      ack,
      () => {},
    );
  });
  call.on("error", () => {});
  return () => {
    call.cancel();
    client.close();
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function main() {
  const dataDir = mkdtempSync(join(tmpdir(), "govd-central-bench-"));
  const central = await startCentral(dataDir);
  const admin = new grpc.Client(central.address, grpc.credentials.createInsecure());
  const write = (engage: boolean) =>
    new Promise<bigint>((resolve, reject) => {
      const metadata = new grpc.Metadata();
      metadata.set("authorization", `Bearer ${TOKEN}`);
      const request = create(EngageKillSwitchRequestSchema, {
        actor: "bench",
        reason: "propagation",
      });
      admin.makeUnaryRequest(
        `/governance.v1.GoLiveService/${engage ? "EngageKillSwitch" : "ReleaseKillSwitch"}`,
        (r: typeof request) => Buffer.from(toBinary(EngageKillSwitchRequestSchema, r)),
        (b: Buffer) => fromBinary(EngageKillSwitchResponseSchema, b),
        request,
        metadata,
        (err, res) => (err ? reject(err) : resolve(res?.state?.revision ?? 0n)),
      );
    });
  await sleep(1000);
  const before = memoryOf(central.pid).rss;
  const received = new Map<bigint, number[]>();
  let snapshots = 0;
  const stops = Array.from({ length: SIDECARS }, (_, i) =>
    sidecar(central.address, i, (revision) => {
      if (!received.has(revision)) {
        snapshots += 1;
        return;
      }
      received.get(revision)?.push(performance.now());
    }),
  );
  while (snapshots < SIDECARS) await sleep(20);
  await sleep(2 * HEARTBEAT_MS);
  const after = memoryOf(central.pid).rss;
  // CPU per heartbeat: idle streams for a few seconds.
  const idleSeconds = 5;
  const cpu0 = cpuTimeUs(central.pid);
  await sleep(idleSeconds * 1000);
  const cpuPerBeatUs =
    (cpuTimeUs(central.pid) - cpu0) / (idleSeconds * (1000 / HEARTBEAT_MS) * SIDECARS);
  const delays: number[] = [];
  const writes: number[] = [];
  for (let k = 0; k < CHANGES; k++) {
    const expected = BigInt(14 + k);
    received.set(expected, []);
    const t0 = performance.now();
    const revision = await write(k % 2 === 0);
    writes.push(performance.now() - t0);
    if (revision !== expected) throw new Error(`expected revision ${expected}, got ${revision}`);
    while ((received.get(expected)?.length ?? 0) < SIDECARS) await sleep(1);
    for (const t of received.get(expected) ?? []) delays.push(t - t0);
    // Operators change policies seconds apart: each change is measured on a quiet central,
    // once the acks of the one before are in.
    await sleep(GAP_MS);
  }
  const sorted = delays.sort((a, b) => a - b);
  const summary = latencySummary(sorted);
  const result = {
    store: STORE ? "postgres" : "sqlite",
    sidecars: SIDECARS,
    changes: CHANGES,
    propagationMs: { p50: summary.p50, p99: summary.p99, max: sorted[sorted.length - 1] ?? 0 },
    // The write's own answer (commit included), for comparison: propagation includes it.
    writeMs: latencySummary(writes),
    loadAverage: loadavg()[0],
    memoryPerSidecarKb: Math.round((after - before) / SIDECARS / 1024),
    cpuPerHeartbeatUs: Math.round(cpuPerBeatUs),
  };
  console.log(JSON.stringify(result));
  const file = `bench/results/central-propagation-${result.store}.json`;
  writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
  for (const stop of stops) stop();
  admin.close();
  central.stop();
  rmSync(dataDir, { recursive: true, force: true });
}

await main();
