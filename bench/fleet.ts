/**
 * `npm run bench -- --fleet [--sidecars N] [--changes N] [--equal-priority] [--profile]`: a real
 * `govd central` and N connected `govd serve --central` sidecars (default 50) from dist/ on
 * loopback. Reports the kill-switch round trip (commit on central to the ack of every sidecar,
 * from WaitForAcks' per-sidecar ack_ms) over alternating engage/release changes a second
 * apart, after two warm-up changes (the first reported apart), against a GetState round trip to
 * central in the same run as the baseline; central's resident memory per connected sidecar; and
 * central's CPU per heartbeat (CPU over an idle window with the fleet, minus the same window
 * with none). Sidecars run at the lowest CPU priority unless --equal-priority (see below).
 * It also reports the CPU every sidecar and central used from each commit until WaitForAcks
 * answered: on two shared cores, that work is what the round trip waits for.
 * FLEET_BENCH_DEBUG=1 logs each change's slowest acks and the CPU of its window (all sidecars, main
 * thread + others; central the same), an idle sidecar's CPU and CPU by thread;
 * FLEET_SIDECAR_NODE_ARGS="--flag ..." adds Node flags to every sidecar, FLEET_CENTRAL_NODE_ARGS
 * to central (to try V8 settings).
 * Writes bench/results/fleet.{json,md}. */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { cpus, setPriority, tmpdir } from "node:os";
import { join } from "node:path";
import {
  create,
  type DescMessage,
  fromBinary,
  type MessageInitShape,
  type MessageShape,
  toBinary,
} from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { GoLiveService } from "../gen/governance/v1/golive_pb.js";
import { SyncService } from "../gen/governance/v1/sync_pb.js";
import { cpuTimeUs, launcherNodeFlags, memoryOf, runNs } from "./processes.js";
import { latencySummary } from "./stats.js";

/** The operator token of every node the fleet benches start. */
export const TOKEN = "fleet-bench-token";
const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};

/** A timestamped progress line on stderr. */
export function log(line: string): void {
  process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${line}\n`);
}

/** A free loopback port, found at run time. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const a = s.address();
      s.close(() => resolve(typeof a === "object" && a ? a.port : 0));
    });
  });
}

/** Starts dist's govd with the launcher's Node flags (logs at warn, stderr inherited). */
export function govd(
  args: string[],
  env: Record<string, string>,
  nodeArgs: string[] = [],
): ChildProcess {
  const node = [...launcherNodeFlags(args[0]), ...nodeArgs, "dist/src/cli/govd.js", ...args];
  const child = spawn(process.execPath, node, {
    env: { ...process.env, GOVD_ADMIN_TOKEN: TOKEN, GOVD_LOG_LEVEL: "warn", ...env },
    stdio: ["ignore", "ignore", "inherit"],
  });
  return child;
}

/** A unary call over grpc-js with protobuf-es messages. */
export function unary<I extends DescMessage, O extends DescMessage>(
  client: grpc.Client,
  path: string,
  input: I,
  output: O,
  request: MessageInitShape<I>,
  token?: string,
): Promise<MessageShape<O>> {
  const metadata = new grpc.Metadata();
  if (token) metadata.set("authorization", `Bearer ${token}`);
  return new Promise((resolve, reject) =>
    client.makeUnaryRequest(
      path,
      (m: MessageInitShape<I>) => Buffer.from(toBinary(input, create(input, m))),
      (b: Buffer) => fromBinary(output, b),
      request,
      metadata,
      (err, v) => (err || !v ? reject(err) : resolve(v)),
    ),
  );
}

/** Resolves after `ms`. */
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `f` every 100 ms until it gives a value; fails after `ms`. */
export async function until<T>(
  what: string,
  f: () => Promise<T | undefined>,
  ms: number,
): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await f().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

/** Node flags from an environment variable ("--flag --other=1"); none when unset. */
export function envNodeFlags(name: string): string[] {
  return (process.env[name] ?? "").split(" ").filter(Boolean);
}

/** User and system ticks per thread of `pid`, by "tid name". */
function threadTimes(pid: number): Map<string, [number, number]> {
  const out = new Map<string, [number, number]>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8");
      const name = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      out.set(`${tid} ${name}`, [Number(f[11]), Number(f[12])]);
    } catch {
      // the thread ended
    }
  }
  return out;
}

/** Starts `govd central` on free loopback ports in `work`; resolves once /readyz answers. */
export async function startCentralProcess(work: string, args: string[], nodeArgs: string[] = []) {
  const [grpcPort, httpPort] = [await freePort(), await freePort()];
  const child = govd(
    ["central", ...args],
    {
      GOVD_DATA_DIR: join(work, "central"),
      GOVD_GRPC_PORT: String(grpcPort),
      GOVD_HTTP_PORT: String(httpPort),
    },
    nodeArgs,
  );
  await until(
    "central",
    async () => ((await fetch(`http://127.0.0.1:${httpPort}/readyz`)).ok ? true : undefined),
    30_000,
  ).catch((err: unknown) => {
    child.kill("SIGKILL");
    throw err;
  });
  return { child, address: `127.0.0.1:${grpcPort}` };
}

/** Runs the fleet benchmark and writes its results. */
export async function fleetBench(): Promise<void> {
  const n = arg("--sidecars", 50);
  const changes = arg("--changes", 20);
  const heartbeatMs = 1_000;
  const work = mkdtempSync(join(tmpdir(), "govd-fleet-bench-"));
  const children: ChildProcess[] = [];
  try {
    // --profile: central's CPU profile in bench/results/profiles/ (stopped with SIGINT to write it).
    const profileDir = join("bench", "results", "profiles");
    if (process.argv.includes("--profile")) mkdirSync(profileDir, { recursive: true });
    const { child: central, address } = await startCentralProcess(
      work,
      ["--heartbeat-ms", String(heartbeatMs)],
      [
        ...envNodeFlags("FLEET_CENTRAL_NODE_ARGS"),
        ...(process.argv.includes("--profile")
          ? ["--cpu-prof", "--cpu-prof-interval=250", `--cpu-prof-dir=${profileDir}`]
          : []),
      ],
    );
    children.push(central);
    const client = new grpc.Client(address, grpc.credentials.createInsecure());
    const sync = SyncService.method;
    const golive = GoLiveService.method;
    const call = <I extends DescMessage, O extends DescMessage>(
      m: { input: I; output: O; name: string; parent: { typeName: string } },
      request: MessageInitShape<I>,
      token?: string,
    ) => unary(client, `/${m.parent.typeName}/${m.name}`, m.input, m.output, request, token);
    await call(golive.enable, { actor: "bench", reason: "open" }, TOKEN).catch(() => undefined);

    // Central alone, idle: memory and CPU over the window.
    await sleep(2_000);
    const pid = central.pid as number;
    const windowMs = 10_000;
    const rssAlone = memoryOf(pid).rss;
    let cpu0 = cpuTimeUs(pid);
    await sleep(windowMs);
    const cpuAlone = cpuTimeUs(pid) - cpu0;

    log(`starting ${n} sidecars following ${address}`);
    for (let i = 0; i < n; i++) {
      // Port 0: each sidecar binds free ports itself (no race with other processes).
      children.push(
        govd(
          ["serve", "--central", address, "--sidecar-id", `bench-${i}`, "--engine", "WHOLESALE"],
          {
            GOVD_DATA_DIR: join(work, `sidecar-${i}`),
            GOVD_GRPC_PORT: "0",
            GOVD_HTTP_PORT: "0",
          },
          // --profile: sidecar 0's CPU profile too.
          [
            ...envNodeFlags("FLEET_SIDECAR_NODE_ARGS"),
            ...(i === 0 && process.argv.includes("--profile")
              ? ["--cpu-prof", `--cpu-prof-dir=${profileDir}`]
              : []),
          ],
        ),
      );
      // Each sidecar runs at the lowest CPU priority (--equal-priority: the same as central's).
      // In production central has CPUs of its own and each sidecar its pod's; on this machine
      // the 50 sidecars and central share two cores, and at equal priority the scheduler gives
      // central a 51st of them while the whole fleet applies a change, so acks wait at central
      // for CPU, not for the protocol. Lowest priority gives central the CPU when it has work.
      const sidecar = children.at(-1);
      if (sidecar?.pid && !process.argv.includes("--equal-priority")) setPriority(sidecar.pid, 19);
      if (i % 10 === 9) await sleep(1_000);
    }
    await until(
      `${n} connected sidecars at central's revision`,
      async () => {
        const v = await call(sync.listSidecars, {});
        const ok = v.sidecars.filter((s) => s.connected && s.lag === 0n).length;
        return ok === n ? v : undefined;
      },
      180_000,
    );
    await sleep(3_000);
    const rssFleet = memoryOf(pid).rss;
    cpu0 = cpuTimeUs(pid);
    await sleep(windowMs);
    const cpuFleet = cpuTimeUs(pid) - cpu0;
    const heartbeats = (n * windowMs) / heartbeatMs;

    // CPU of every sidecar process and of central over the changes, against an idle window of
    // the same length: what one applied-and-acked change costs each side.
    const sidecarPids = children.slice(1).map((c) => c.pid as number);
    const fleetCpu = () => sidecarPids.reduce((sum, p) => sum + cpuTimeUs(p), 0);
    let side0 = fleetCpu();
    const idleStart = performance.now();
    await sleep(process.env.FLEET_BENCH_DEBUG ? 10_000 : 2_000);
    const sidecarIdlePerMs = (fleetCpu() - side0) / (performance.now() - idleStart);
    if (process.env.FLEET_BENCH_DEBUG)
      log(`idle fleet CPU: ${(sidecarIdlePerMs / 10 / n).toFixed(2)}% of a core per sidecar`);
    log(`${changes} kill-switch changes, each acked by all ${n}`);
    let central0 = 0;
    let changesStart = 0;
    let threads0: Map<string, [number, number]> | undefined;
    let centralThreads0: Map<string, [number, number]> | undefined;
    // The CPU figures start after the warm-up changes (below).
    const startCounting = () => {
      side0 = fleetCpu();
      central0 = cpuTimeUs(pid);
      if (process.env.FLEET_BENCH_DEBUG) {
        threads0 = threadTimes(sidecarPids[0] as number);
        centralThreads0 = threadTimes(pid);
      }
      changesStart = performance.now();
    };
    const lastAck: number[] = [];
    const everyAck: number[] = [];
    // CPU from just before each counted change until WaitForAcks answered (every ack in):
    // the work that competes for the two cores while the change travels.
    const fleetRun = () =>
      sidecarPids.reduce(
        (sum, p) => {
          const r = runNs(p);
          return { main: sum.main + r.main, others: sum.others + r.others };
        },
        { main: 0, others: 0 },
      );
    const inWindow = { sidecarMain: 0, sidecarOthers: 0, centralMain: 0, centralOthers: 0 };
    const baseline: number[] = [];
    let missed = 0;
    // Two changes first, not counted: the first change a fresh fleet applies pays for code
    // run the first time on every sidecar and for opening each AckStream (reported apart).
    const warmUps = 2;
    let firstChangeMs = 0;
    for (let i = -warmUps; i < changes; i++) {
      if (i === 0) startCounting();
      const t = performance.now();
      await call(golive.getState, {});
      if (i >= 0) baseline.push(performance.now() - t);
      const change = { actor: "bench", reason: `bench change ${i}` };
      const [side, cent] = [fleetRun(), runNs(pid)];
      const answer =
        (i + warmUps) % 2 === 0
          ? await call(golive.engageKillSwitch, change, TOKEN)
          : await call(golive.releaseKillSwitch, change, TOKEN);
      const revision = answer.state?.revision ?? 0n;
      const w = await call(sync.waitForAcks, { revision, timeoutMs: 5_000n });
      let cpuLine = "";
      if (i >= 0) {
        const [side1, cent1] = [fleetRun(), runNs(pid)];
        inWindow.sidecarMain += side1.main - side.main;
        inWindow.sidecarOthers += side1.others - side.others;
        inWindow.centralMain += cent1.main - cent.main;
        inWindow.centralOthers += cent1.others - cent.others;
        const ms = (ns: number) => (ns / 1e6).toFixed(1);
        cpuLine = `; CPU in its window: sidecars ${ms(side1.main - side.main)} + ${ms(side1.others - side.others)} ms, central ${ms(cent1.main - cent.main)} + ${ms(cent1.others - cent.others)} ms`;
      }
      const ms = w.acks.filter((a) => a.acked).map((a) => Number(a.ackMs));
      if (i < 0) {
        if (i === -warmUps) firstChangeMs = Math.max(...ms);
        await sleep(1_000);
        continue;
      }
      missed += w.connected - w.acked;
      if (process.env.FLEET_BENCH_DEBUG) {
        const top = [...w.acks].sort((a, b) => Number(b.ackMs - a.ackMs)).slice(0, 3);
        log(
          `change ${i}: slowest ${top.map((a) => `${a.sidecarId}=${a.ackMs}`).join(" ")}${cpuLine}`,
        );
      }
      everyAck.push(...ms);
      lastAck.push(Math.max(...ms));
      // Changes a second apart, as an operator's are: the tail of one change (each sidecar ships
      // its APPLY_CHANGE event after the shipper's linger) is over before the next one commits.
      await sleep(1_000);
    }
    const changesMs = performance.now() - changesStart;
    if (threads0 && centralThreads0) {
      for (const [who, p, t0] of [
        ["sidecar 0", sidecarPids[0] as number, threads0],
        ["central", pid, centralThreads0],
      ] as const) {
        const t1 = threadTimes(p);
        const rows = [...t1].map(([k, v]) => {
          const b = t0.get(k) ?? [0, 0];
          return `${k} user ${(((v[0] - b[0]) * 10) / changes).toFixed(2)} sys ${(((v[1] - b[1]) * 10) / changes).toFixed(2)}`;
        });
        log(`${who} ms per change by thread: ${rows.join("; ")}`);
      }
    }
    const sidecarCpuPerChangeUs =
      (fleetCpu() - side0 - sidecarIdlePerMs * changesMs) / (changes * n);
    const centralCpuPerChangeUs = (cpuTimeUs(pid) - central0) / changes;
    client.close();
    const figures = {
      sidecars: n,
      sidecarPriority: process.argv.includes("--equal-priority") ? "equal" : "lowest (nice 19)",
      changes,
      missedAcks: missed,
      allAckedMs: latencySummary(lastAck),
      // The slowest change is the p99 of 20; it is usually one of the first few a fresh fleet
      // applies (V8 warming up on every sidecar at once): both parts, apart.
      firstFiveSlowestMs: Math.max(...lastAck.slice(0, 5)),
      laterAllAckedMs: latencySummary(lastAck.slice(5)),
      firstChangeAllAckedMs: firstChangeMs,
      eachAckMs: latencySummary(everyAck),
      getStateRoundTripMs: latencySummary(baseline),
      sidecarCpuPerChangeUs,
      centralCpuPerChangeUs,
      // Until the last ack: each sidecar's main thread and other threads, central's two.
      untilAckedCpuUs: {
        sidecarMain: inWindow.sidecarMain / 1000 / changes / n,
        sidecarOthers: inWindow.sidecarOthers / 1000 / changes / n,
        centralMain: inWindow.centralMain / 1000 / changes,
        centralOthers: inWindow.centralOthers / 1000 / changes,
      },
      centralRssMb: { alone: rssAlone / 2 ** 20, fleet: rssFleet / 2 ** 20 },
      rssPerSidecarKb: (rssFleet - rssAlone) / n / 1024,
      cpuPerHeartbeatUs: (cpuFleet - cpuAlone) / heartbeats,
      cpuIdleWindowUs: { alone: cpuAlone, fleet: cpuFleet, windowMs },
    };
    const u = figures.untilAckedCpuUs;
    const md = [
      `# Fleet benchmark (${new Date().toISOString()}, ${cpus().length} x ${cpus()[0]?.model ?? "?"})`,
      "",
      "| figure | value |",
      "|---|---|",
      `| sidecars' CPU priority | ${figures.sidecarPriority} |`,
      `| kill switch committed on central -> acked by all ${n} sidecars, p50 / p99 over ${changes} changes | ${figures.allAckedMs.p50.toFixed(1)} / ${figures.allAckedMs.p99.toFixed(1)} ms (target p99 <= 100 ms) |`,
      `| the same, slowest of the first 5 counted changes / changes 6-${changes}, p50 and slowest | ${figures.firstFiveSlowestMs.toFixed(0)} / ${changes > 5 ? `${figures.laterAllAckedMs.p50.toFixed(0)}, ${Math.max(...lastAck.slice(5)).toFixed(0)}` : "none"} ms |`,
      `| the first change after the fleet started (not counted above) | ${figures.firstChangeAllAckedMs.toFixed(0)} ms |`,
      `| each sidecar's ack, p50 / p99 | ${figures.eachAckMs.p50.toFixed(1)} / ${figures.eachAckMs.p99.toFixed(1)} ms |`,
      `| baseline: GetState round trip to central, p50 | ${figures.getStateRoundTripMs.p50.toFixed(2)} ms |`,
      `| acks missing after 5 s | ${missed} |`,
      `| central RSS alone / with ${n} sidecars | ${figures.centralRssMb.alone.toFixed(1)} / ${figures.centralRssMb.fleet.toFixed(1)} MB |`,
      `| central memory per connected sidecar | ${figures.rssPerSidecarKb.toFixed(0)} KB |`,
      `| central CPU per heartbeat (idle window with the fleet minus without) | ${figures.cpuPerHeartbeatUs.toFixed(1)} us |`,
      `| CPU per change: each sidecar (apply + ack, idle subtracted) / central (commit, fan-out, ${n} acks) | ${(figures.sidecarCpuPerChangeUs / 1000).toFixed(2)} / ${(figures.centralCpuPerChangeUs / 1000).toFixed(1)} ms |`,
      `| CPU from the commit until the last ack: each sidecar, main thread + other threads / central, main + others | ${(u.sidecarMain / 1000).toFixed(2)} + ${(u.sidecarOthers / 1000).toFixed(2)} / ${(u.centralMain / 1000).toFixed(1)} + ${(u.centralOthers / 1000).toFixed(1)} ms |`,
      `| so one change needs at least (${n} x sidecar + central) / ${cpus().length} cores | ${((n * figures.sidecarCpuPerChangeUs + figures.centralCpuPerChangeUs) / 1000 / cpus().length).toFixed(0)} ms |`,
      "",
    ].join("\n");
    process.stdout.write(`\n${md}\n`);
    const out = join("bench", "results");
    mkdirSync(out, { recursive: true });
    writeFileSync(join(out, "fleet.json"), `${JSON.stringify(figures, null, 2)}\n`);
    writeFileSync(join(out, "fleet.md"), md);
  } finally {
    // The other sidecars first; then central and sidecar 0 gently, so their CPU profiles are
    // written on the way out.
    for (const c of children.slice(2)) c.kill("SIGKILL");
    const gentle = children.slice(0, 2).filter((c) => c.exitCode === null);
    const exited = Promise.all(gentle.map((c) => new Promise((r) => c.once("exit", r))));
    for (const c of gentle) c.kill("SIGINT");
    await Promise.race([exited, sleep(10_000)]);
    for (const c of children) c.kill("SIGKILL");
    await sleep(500);
    rmSync(work, { recursive: true, force: true });
  }
}
