/**
 * `node --max-semi-space-size=2 dist/bench/alloc-profile.js golive|in-process [calls]` (after
 * `npm run build`): bytes allocated per call and the functions that allocate them, from V8's
 * sampling heap profiler through node:inspector with the objects the collector already freed
 * included (so every allocation counts, not only what survives). `golive`: a sidecar in this
 * process, CheckGoLive from h2load (4 processes, c=1 m=16 each) after 20,000 warm-up calls.
 * `in-process`: Reserve+Settle through CallPipeline.invoke (the in-process bench's store), a
 * warm-up run first; the sampled run opens a store and pipeline of its own, so it includes one
 * compilation of the validation rules (about 24 MB: 0.6 KB a call over 40,000 calls). Sampling slows the process: it reports bytes, not speed. Compare builds by
 * running it in each build's tree, one after the other.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { Session } from "node:inspector/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { systemClock } from "../src/clock.js";
import { createSidecar } from "../src/server/sidecar.js";
import { migrateTo, openDatabase } from "../src/store/database.js";
import { ensureH2load, writeBodies } from "./h2load.js";
import { inProcessReserve } from "./in-process.js";
import { checkBodies, checkGoLiveBodies, PATH, setUpSidecar } from "./scenarios.js";

/** A node of V8's sampling heap profile. */
interface ProfileNode {
  callFrame: { functionName: string; url: string; lineNumber: number };
  selfSize: number;
  children: ProfileNode[];
}

/** Samples this process's allocations while `run` runs; prints bytes per call and the top allocators. */
async function sample(run: () => Promise<number>, top: number): Promise<void> {
  const session = new Session();
  session.connect();
  await session.post("HeapProfiler.enable");
  await session.post("HeapProfiler.startSampling", {
    samplingInterval: 2048,
    includeObjectsCollectedByMajorGC: true,
    includeObjectsCollectedByMinorGC: true,
  });
  const calls = await run();
  const { profile } = (await session.post("HeapProfiler.stopSampling")) as unknown as {
    profile: { head: ProfileNode };
  };
  session.disconnect();
  const self = new Map<string, number>();
  let total = 0;
  const walk = (node: ProfileNode) => {
    const f = node.callFrame;
    const where = f.url.replace(/^.*node_modules\//, "").replace(/^file:\/\/.*\/dist\//, "");
    const key = `${f.functionName || "(anonymous)"} ${where}:${f.lineNumber + 1}`;
    total += node.selfSize;
    self.set(key, (self.get(key) ?? 0) + node.selfSize);
    for (const child of node.children) walk(child);
  };
  walk(profile.head);
  console.log(`${Math.round(total / calls)} bytes allocated per call over ${calls} calls`);
  console.log("bytes per call (self), function:");
  for (const [key, bytes] of [...self].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    console.log(`${String(Math.round(bytes / calls)).padStart(7)}  ${key}`);
  }
}

/** `calls` CheckGoLive calls from h2load, split over one process per body (c=1 m=16 each). */
function h2load(url: string, bodies: string[], calls: number): Promise<void> {
  const each = Math.round(calls / bodies.length);
  const runs = bodies.map(
    (body) =>
      new Promise<void>((resolve, reject) => {
        const args = ["-n", String(each), "-c", "1", "-m", "16", "-t", "1", "-d", body];
        const headers = ["-H", "content-type: application/grpc", "-H", "te: trailers"];
        const p = spawn("h2load", [...args, ...headers, url], { stdio: "ignore" });
        p.once("exit", (code) => (code === 0 ? resolve() : reject(new Error(`h2load: ${code}`))));
      }),
  );
  return Promise.all(runs).then(() => undefined);
}

async function checkGoLive(calls: number): Promise<void> {
  ensureH2load();
  const dir = mkdtempSync(join(tmpdir(), "govd-bench-alloc-"));
  const file = join(dir, "sidecar.db");
  const db = openDatabase(file);
  migrateTo(db);
  const token = "bench-alloc-token";
  const sidecar = createSidecar({ db, clock: systemClock, token, storeFile: file, warmUp: true });
  try {
    const bound = await sidecar.listen({ grpcHost: "127.0.0.1", grpcPort: 0, httpPort: 0 });
    const url = `http://127.0.0.1:${bound.grpcPort}`;
    await setUpSidecar(url, token);
    const frames = checkGoLiveBodies(4);
    await checkBodies(url, frames);
    const bodies = writeBodies(dir, "checkgolive", frames);
    await h2load(`${url}${PATH.checkGoLive}`, bodies, 20_000);
    await sample(async () => {
      await h2load(`${url}${PATH.checkGoLive}`, bodies, calls);
      return calls;
    }, 30);
  } finally {
    await sidecar.close();
    db.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

const [mode, count] = process.argv.slice(2);
if (mode === "golive") await checkGoLive(Number(count ?? 40_000));
else if (mode === "in-process") {
  const pairs = Math.round(Number(count ?? 40_000) / 2);
  // Warms up the JIT on a store of its own.
  await inProcessReserve("pipeline", 5_000, 2_000);
  await sample(async () => {
    await inProcessReserve("pipeline", pairs, 0);
    return pairs * 2;
  }, 30);
} else {
  console.error("usage: alloc-profile.js golive|in-process [calls]");
  process.exitCode = 2;
}
