/**
 * Overload: a client that sends more calls than the sidecar can answer is pushed back, never
 * let to crash it. A real `govd serve` (the launcher's flags, its heap lowered to 64 MB so a
 * pile-up shows in seconds) gets 20,000 unary calls at once on ONE grpc-js channel. Before
 * `--max-concurrent-streams`, grpc-js accepted every stream: the calls piled up at about 5 KB
 * of heap each and the process died with "JavaScript heap out of memory" within 5 s. Now the
 * server announces SETTINGS_MAX_CONCURRENT_STREAMS, the client queues the rest, and every
 * call is answered. Central bounds each connection the same way, which caps no fleet: each
 * sidecar follows on a connection of its own.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import * as http2 from "node:http2";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create, toBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { afterAll, expect, it } from "vitest";
import { launcherNodeFlags } from "../bench/processes.js";
import { ExecutionClass } from "../gen/governance/v1/common_pb.js";
import { CheckGoLiveRequestSchema, GoLiveService } from "../gen/governance/v1/golive_pb.js";
import { WatchRequestSchema } from "../gen/governance/v1/sync_pb.js";
import { DEFAULT_MAX_CONCURRENT_STREAMS } from "../src/server/grpc-server.js";
import { type RunningCentral, startCentral, tempSqlite } from "./support/central.js";
import { freePort, type Program, startProgram, waitForOk } from "./support/program.js";

const CALLS = 20_000;
const dir = mkdtempSync(join(tmpdir(), "govd-overload-"));
let program: Program | undefined;
const cleanups: (() => unknown)[] = [];

afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
  program?.signal("SIGKILL");
  rmSync(dir, { recursive: true, force: true });
});

/** Resident size of a process in MB, from /proc (Linux). */
function rssMb(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return Number(m?.[1] ?? 0) / 1024;
  } catch {
    return 0;
  }
}

/** The SETTINGS_MAX_CONCURRENT_STREAMS a gRPC port announces, read with node:http2. */
async function announcedStreamLimit(address: string): Promise<number | undefined> {
  const session = http2.connect(`http://${address}`);
  try {
    const settings = await new Promise<http2.Settings>((resolve, reject) => {
      session.once("remoteSettings", resolve);
      session.once("error", reject);
    });
    return settings.maxConcurrentStreams;
  } finally {
    session.close();
  }
}

it("answers 20,000 calls sent at once on one channel, alive, with its memory bounded", async () => {
  const [grpcPort, httpPort] = [await freePort(), await freePort()];
  program = startProgram(
    process.execPath,
    [...launcherNodeFlags(), "--max-old-space-size=64", "dist/src/cli/govd.js", "serve"],
    {
      GOVD_DATA_DIR: dir,
      GOVD_GRPC_PORT: String(grpcPort),
      GOVD_HTTP_PORT: String(httpPort),
      GOVD_ADMIN_TOKEN: "overload-test-token",
      GOVD_LOG_LEVEL: "warn",
    },
  );
  const sidecar = program;
  await waitForOk(`http://127.0.0.1:${httpPort}/readyz`, 30_000, sidecar);
  const address = `127.0.0.1:${grpcPort}`;

  const pid = sidecar.child.pid as number;
  const rssBefore = rssMb(pid);
  let rssPeak = rssBefore;
  const sampler = setInterval(() => {
    rssPeak = Math.max(rssPeak, rssMb(pid));
  }, 50);
  const client = new grpc.Client(address, grpc.credentials.createInsecure());
  cleanups.push(() => client.close());
  const body = Buffer.from(
    toBinary(
      CheckGoLiveRequestSchema,
      create(CheckGoLiveRequestSchema, { executionClass: ExecutionClass.PROD_EXEC }),
    ),
  );
  const path = `/${GoLiveService.typeName}/${GoLiveService.method.checkGoLive.name}`;
  let answered = 0;
  const failures = new Map<string, number>();
  const started = performance.now();
  await Promise.race([
    new Promise<void>((done) => {
      let left = CALLS;
      for (let i = 0; i < CALLS; i++) {
        client.makeUnaryRequest(
          path,
          (b: Buffer) => b,
          (b: Buffer) => b,
          body,
          new grpc.Metadata(),
          (err) => {
            if (err) {
              const key = `${grpc.status[err.code]}: ${err.details}`;
              failures.set(key, (failures.get(key) ?? 0) + 1);
            } else answered++;
            if (--left === 0) done();
          },
        );
      }
    }),
    sidecar.exited,
  ]);
  const seconds = (performance.now() - started) / 1000;
  clearInterval(sampler);
  rssPeak = Math.max(rssPeak, rssMb(pid));

  // Alive (else this fails with its output: "JavaScript heap out of memory"), every call
  // answered (none refused: a grpc-js client waits for a free stream).
  await waitForOk(`http://127.0.0.1:${httpPort}/readyz`, 5_000, sidecar);
  expect(Object.fromEntries(failures)).toEqual({});
  expect(answered).toBe(CALLS);
  // What the flood added stays small: about 10 MB here; 20,000 streams held at once took
  // over 100 MB of heap before the process died.
  expect(rssPeak - rssBefore).toBeLessThan(48);
  console.log(
    `${CALLS} calls in ${seconds.toFixed(1)} s; RSS ${rssBefore.toFixed(0)} MB before, peak ${rssPeak.toFixed(0)} MB`,
  );
  // What bounded it is the announced limit.
  expect(await announcedStreamLimit(address)).toBe(DEFAULT_MAX_CONCURRENT_STREAMS);
}, 60_000);

it("bounds each connection to central, not the number of sidecars watching", async () => {
  const location = tempSqlite();
  cleanups.push(location.drop);
  const limit = 2;
  const c: RunningCentral = await startCentral(location.url, { maxConcurrentStreams: limit });
  cleanups.push(() => c.close());
  expect(await announcedStreamLimit(c.grpcAddress)).toBe(limit);

  /** A Watch stream; resolves once its first message arrives. */
  const watch = (client: grpc.Client, sidecarId: string) => {
    const call = client.makeServerStreamRequest(
      "/governance.v1.SyncService/Watch",
      (m: object) => Buffer.from(toBinary(WatchRequestSchema, create(WatchRequestSchema, m))),
      (b: Buffer) => b,
      { sidecarId },
    );
    call.on("error", () => {});
    cleanups.push(() => call.cancel());
    let first = false;
    const heard = new Promise<void>((resolve) =>
      call.once("data", () => {
        first = true;
        resolve();
      }),
    );
    return { heard, heardYet: () => first };
  };
  // Twice the limit of sidecars, each on its own connection (as separate processes are): all
  // of them are served.
  const fleet = Array.from({ length: 2 * limit }, (_, i) => {
    const client = new grpc.Client(c.grpcAddress, grpc.credentials.createInsecure(), {
      "grpc.use_local_subchannel_pool": 1,
    });
    cleanups.push(() => client.close());
    return watch(client, `sidecar-${i}`);
  });
  await Promise.all(fleet.map((w) => w.heard));
  // One connection holding `limit` streams: the next one waits in the client.
  const shared = new grpc.Client(c.grpcAddress, grpc.credentials.createInsecure(), {
    "grpc.use_local_subchannel_pool": 1,
  });
  cleanups.push(() => shared.close());
  const held = Array.from({ length: limit }, (_, i) => watch(shared, `shared-${i}`));
  await Promise.all(held.map((w) => w.heard));
  const waiting = watch(shared, "shared-over");
  await new Promise((r) => setTimeout(r, 500));
  expect(waiting.heardYet()).toBe(false);
}, 30_000);
