/**
 * `npm run bench -- --fleet-lag [--sidecars N] [--rate R] [--seconds S] [--store URL] [--cost-reps K] [--lag-only]`: issue
 * 12's two shipping targets, with a real `govd central` and real `govd serve --central`
 * sidecars from dist/ on loopback.
 * - Lag: R decisions a second (default 2,000: Reserve+Settle pairs, open loop) spread over N
 *   sidecars (default 10), each deciding for an engine of its own. Every 100 ms the bench reads
 *   central's fleet ledger (GetLedgerToday) and takes how far behind it is: the age of the oldest
 *   answered Reserve whose action the fleet ledger does not count yet (0 when it counts all).
 *   Reports p50, p99 and max of that over the run; afterwards each engine's fleet actions must
 *   equal the Reserves its sidecar answered.
 * - Cost: saturated Reserve+Settle on one sidecar standalone, then the same sidecar build
 *   following central and shipping every event, alternating (ABAB...), with central at the
 *   lowest CPU priority (in production central has CPUs of its own), K times each (default 5).
 *   Reports the median throughput ratio of the K pairs and the sidecar's CPU per decision in
 *   each mode.
 * Writes bench/results/fleet-lag.{json,md}.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { setPriority, tmpdir } from "node:os";
import { join } from "node:path";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import {
  GetLedgerTodayRequestSchema,
  GetLedgerTodayResponseSchema,
  ReserveRequestSchema,
  ReserveResponseSchema,
  RiskServiceUpsertPolicyRequestSchema,
  RiskServiceUpsertPolicyResponseSchema,
  SettleRequestSchema,
} from "../gen/governance/v1/risk_pb.js";
import {
  ListSidecarsRequestSchema,
  ListSidecarsResponseSchema,
} from "../gen/governance/v1/sync_pb.js";
import { envNodeFlags, log, sleep, startCentralProcess, TOKEN, unary, until } from "./fleet.js";
import { drive, singleCaller } from "./h2-driver.js";
import { cpuTimeUs, runNs, type ServerProcess, startSidecar } from "./processes.js";
import { benchCapsPolicy, PATH, reserveSettle, setUpSidecar } from "./scenarios.js";
import { latencySummary, percentile, spread } from "./stats.js";

/** Reserve+Settle pairs in flight at most, over the whole fleet. */
const MAX_IN_FLIGHT = 400;
const arg = (name: string, fallback: string) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? (process.argv[i + 1] as string) : fallback;
};

/** A running central and the calls the bench makes to it. */
async function startCentral(work: string, store: string) {
  const { child, address } = await startCentralProcess(
    work,
    store ? ["--store", store] : [],
    envNodeFlags("FLEET_CENTRAL_NODE_ARGS"),
  );
  const client = new grpc.Client(address, grpc.credentials.createInsecure());
  const upsertCaps = (engine: string) =>
    unary(
      client,
      PATH.upsertRisk,
      RiskServiceUpsertPolicyRequestSchema,
      RiskServiceUpsertPolicyResponseSchema,
      benchCapsPolicy(engine, `lag-caps-${engine}`),
      TOKEN,
    );
  const ledger = () =>
    unary(
      client,
      "/governance.v1.RiskService/GetLedgerToday",
      GetLedgerTodayRequestSchema,
      GetLedgerTodayResponseSchema,
      {},
    );
  const sidecars = () =>
    unary(
      client,
      "/governance.v1.SyncService/ListSidecars",
      ListSidecarsRequestSchema,
      ListSidecarsResponseSchema,
      {},
    );
  return {
    child,
    address,
    url: `http://${address}`,
    upsertCaps,
    ledger,
    sidecars,
    close: () => client.close(),
  };
}
type Central = Awaited<ReturnType<typeof startCentral>>;

/** Starts `n` sidecars following central, each for engine LAG_i; resolves once all are at its revision. */
async function startFleet(central: Central, work: string, n: number, tag: string) {
  const fleet: ServerProcess[] = [];
  // FLEET_LAG_PROFILE=DIR: each sidecar's CPU profile in DIR (written when it stops).
  const profile = process.env.FLEET_LAG_PROFILE;
  for (let i = 0; i < n; i++) {
    fleet.push(
      await startSidecar({
        dataDir: join(work, `${tag}-${i}`),
        token: TOKEN,
        nodeArgs: profile ? ["--cpu-prof", `--cpu-prof-dir=${profile}`] : [],
        args: ["--central", central.address, "--sidecar-id", `${tag}-${i}`, "--engine", `LAG_${i}`],
      }),
    );
  }
  await until(
    `${n} sidecars at central's revision`,
    async () => {
      const v = await central.sidecars();
      const ok = v.sidecars.filter(
        (s) => s.connected && s.lag === 0n && s.sidecarId.startsWith(tag),
      );
      return ok.length === n ? true : undefined;
    },
    60_000,
  );
  return fleet;
}

/** The lag run: open-loop Reserve+Settle at `rate` decisions/s over the fleet, sampling central. */
async function lagRun(central: Central, fleet: ServerProcess[], rate: number, seconds: number) {
  const n = fleet.length;
  const callers = await Promise.all(fleet.map((s) => singleCaller(`http://127.0.0.1:${s.port}`)));
  // Per engine, when each answered Reserve was answered (ms, in order of answers).
  const answered: number[][] = fleet.map(() => []);
  let failures = 0;
  let firstFailure = "";
  let inFlight = 0;
  const pairMs: number[] = [];
  const pair = async (i: number, seq: number) => {
    const sentAt = Date.now();
    inFlight++;
    try {
      const call = (callers[i] as { call: (p: string, b: Uint8Array) => Promise<Buffer> }).call;
      const r = fromBinary(
        ReserveResponseSchema,
        await call(
          PATH.reserve,
          toBinary(
            ReserveRequestSchema,
            create(ReserveRequestSchema, {
              engine: `LAG_${i}`,
              amount: "0.01",
              actor: "bench",
              correlationId: `lag-${i}-${seq}-r`,
            }),
          ),
        ),
      );
      if (!r.allowed) throw new Error(`Reserve denied: ${r.message}`);
      (answered[i] as number[]).push(Date.now());
      pairMs.push(Date.now() - sentAt);
      await call(
        PATH.settle,
        toBinary(
          SettleRequestSchema,
          create(SettleRequestSchema, {
            reservationId: r.reservationId,
            realizedLoss: "0",
            actor: "bench",
            correlationId: `lag-${i}-${seq}-s`,
          }),
        ),
      );
    } catch (err) {
      failures++;
      firstFailure ||= (err as Error).message;
    } finally {
      inFlight--;
    }
  };
  const pairsPerSec = rate / 2;
  const driverCpu0 = process.cpuUsage();
  const lags: number[] = [];
  const started = Date.now();
  const stopAt = started + seconds * 1000;
  let fired = 0;
  // Open loop, but bounded: past MAX_IN_FLIGHT pairs a due pair is not sent (counted as
  // unsent), so an overloaded machine shows as a lower rate, not as unbounded queues.
  let unsent = 0;
  const ticker = setInterval(() => {
    const due = Math.floor(((Date.now() - started) / 1000) * pairsPerSec);
    for (; fired < due; fired++) {
      if (inFlight >= MAX_IN_FLIGHT) unsent++;
      else void pair(fired % n, Math.floor(fired / n));
    }
  }, 5);
  const warmUpEnd = started + 3_000;
  const sampleMs: number[] = [];
  while (Date.now() < stopAt) {
    await sleep(100);
    const asked = Date.now();
    const v = await central.ledger();
    const now = Date.now();
    sampleMs.push(now - asked);
    if (now < warmUpEnd) continue;
    const counted = new Map(v.entries.map((e) => [e.engine, e.actions]));
    let behind = 0;
    for (let i = 0; i < n; i++) {
      const times = answered[i] as number[];
      const first = times[counted.get(`LAG_${i}`) ?? 0];
      if (first !== undefined) behind = Math.max(behind, now - first);
    }
    lags.push(behind);
  }
  clearInterval(ticker);
  while (inFlight > 0) await sleep(10);
  const elapsed = (Date.now() - started) / 1000;
  const used = process.cpuUsage(driverCpu0);
  const driverCpuS = (used.user + used.system) / 1e6;
  // Every answered Reserve is counted once the fleet drains.
  const totals = answered.map((t) => t.length);
  // (A Reserve the driver saw fail may still have been booked: the ledger may count more.)
  let counts: number[] = [];
  await until(
    "the fleet ledger to count every answered Reserve",
    async () => {
      const v = await central.ledger();
      const counted = new Map(v.entries.map((e) => [e.engine, e.actions]));
      counts = totals.map((_, i) => counted.get(`LAG_${i}`) ?? 0);
      return totals.every((t, i) => (counts[i] ?? 0) >= t) ? true : undefined;
    },
    60_000,
  ).catch((err: unknown) => {
    throw new Error(`${(err as Error).message}: answered ${totals}, counted ${counts}`);
  });
  for (const c of callers) c.close();
  lags.sort((a, b) => a - b);
  return {
    decisionsPerSec: ((fired - unsent) * 2) / elapsed,
    unsentPairs: unsent,
    driverCpuS,
    reserveMs: latencySummary(pairMs),
    ledgerReadMs: latencySummary(sampleMs),
    seconds: elapsed,
    failures,
    firstFailure,
    samples: lags.length,
    p50: percentile(lags, 50),
    p99: percentile(lags, 99),
    max: lags.at(-1) ?? 0,
  };
}

/** One saturated Reserve+Settle run on a sidecar: decisions/s and its CPU per decision (us). */
async function saturated(sidecar: ServerProcess, run: string, seconds: number) {
  const threads0 = runNs(sidecar.pid);
  const r = await drive(
    {
      url: `http://127.0.0.1:${sidecar.port}`,
      connections: 4,
      inFlight: 16,
      durationMs: seconds * 1000,
      maxOperations: Number.MAX_SAFE_INTEGER,
      warmupMs: 1_000,
      recordLatency: false,
      serverCpuUs: () => cpuTimeUs(sidecar.pid),
    },
    reserveSettle(run),
  );
  if (process.env.FLEET_BENCH_DEBUG) {
    // The main thread apart from the others (V8's collector and compiler, libuv's pool), per
    // call of the whole drive (its warm-up included).
    const threads1 = runNs(sidecar.pid);
    const per = (ns: number) => (ns / 1e3 / (r.calls * (1 + 1_000 / (seconds * 1000)))).toFixed(0);
    log(
      `${run}: ${Math.round(r.callsPerSec)} calls/s, CPU per call ${r.serverCpuUsPerCall.toFixed(0)} us; main thread ${per(threads1.main - threads0.main)} us + other threads ${per(threads1.others - threads0.others)} us`,
    );
  }
  return { perSec: r.callsPerSec, cpuUs: r.serverCpuUsPerCall, calls: r.calls };
}

/** The cost run: the same saturated load on a standalone and on a connected sidecar, alternating. */
async function costRun(central: Central, work: string, reps: number, seconds: number) {
  const standalone = await startSidecar({
    dataDir: join(work, "alone"),
    token: TOKEN,
    nodeArgs: process.env.FLEET_LAG_PROFILE
      ? ["--cpu-prof", `--cpu-prof-dir=${process.env.FLEET_LAG_PROFILE}/alone`]
      : [],
  });
  await setUpSidecar(`http://127.0.0.1:${standalone.port}`, TOKEN);
  // The connected one decides for the same engine, under the same caps, set on central.
  const [connected] = await startFleet(central, work, 1, "cost");
  // Central at the lowest priority: on this machine it shares the two cores with the driver and
  // the sidecar; in production it has CPUs of its own.
  if (central.child.pid) setPriority(central.child.pid, 19);
  if (!connected) throw new Error("no connected sidecar");
  const a: { perSec: number; cpuUs: number; calls: number }[] = [];
  const b: { perSec: number; cpuUs: number; calls: number }[] = [];
  let backlog = 0;
  try {
    for (let rep = 0; rep < reps; rep++) {
      log(`cost rep ${rep}: standalone`);
      const centralCpu = () => cpuTimeUs(central.child.pid as number);
      let c0 = centralCpu();
      a.push(await saturated(standalone, `alone-${rep}`, seconds));
      if (process.env.FLEET_BENCH_DEBUG)
        log(`central CPU meanwhile ${((centralCpu() - c0) / 1e6).toFixed(2)} s`);
      log(`cost rep ${rep}: connected, shipping`);
      c0 = centralCpu();
      const conn = await saturated(connected, `conn-${rep}`, seconds);
      b.push(conn);
      if (process.env.FLEET_BENCH_DEBUG) {
        const used = centralCpu() - c0;
        log(
          `central CPU meanwhile ${(used / 1e6).toFixed(2)} s, ${(used / conn.calls).toFixed(1)} us per call (each call one event)`,
        );
      }
      const row = (await central.sidecars()).sidecars.find((s) => s.sidecarId === "cost-0");
      backlog = Math.max(backlog, Number(row?.outboxEvents ?? 0n));
      // The backlog drains before the next standalone run, so it does not ship during it
      // (central at normal priority meanwhile).
      if (central.child.pid) setPriority(central.child.pid, 0);
      await until(
        "the connected sidecar's outbox to drain",
        async () => {
          const r = (await central.sidecars()).sidecars.find((s) => s.sidecarId === "cost-0");
          return r && r.shippedSeq === r.headSeq && r.outboxEvents === 0n ? true : undefined;
        },
        120_000,
      );
      if (central.child.pid) setPriority(central.child.pid, 19);
    }
  } finally {
    await standalone.stop();
    await connected.stop();
  }
  const ratios = a.map((x, i) => (b[i]?.perSec ?? Number.NaN) / x.perSec);
  return {
    standalonePerSec: spread(a.map((x) => x.perSec)),
    connectedPerSec: spread(b.map((x) => x.perSec)),
    ratio: spread(ratios),
    standaloneCpuUs: spread(a.map((x) => x.cpuUs)),
    connectedCpuUs: spread(b.map((x) => x.cpuUs)),
    largestBacklogSeen: backlog,
  };
}

/** Runs both measurements and writes bench/results/fleet-lag.{json,md}. */
export async function fleetLagBench(): Promise<void> {
  const n = Number(arg("--sidecars", "10"));
  const rate = Number(arg("--rate", "2000"));
  const seconds = Number(arg("--seconds", "20"));
  const store = arg("--store", "");
  const costReps = Number(arg("--cost-reps", "5"));
  const work = mkdtempSync(join(tmpdir(), "govd-fleet-lag-"));
  let central: Central | undefined;
  const fleet: ServerProcess[] = [];
  try {
    central = await startCentral(work, store);
    // Go-live enabled and the BENCH engine's caps (the cost run's), then each LAG engine's.
    await setUpSidecar(central.url, TOKEN);
    for (let i = 0; i < n; i++) await central.upsertCaps(`LAG_${i}`);
    await central.upsertCaps("GLOBAL");
    log(`starting ${n} sidecars following ${central.address}`);
    fleet.push(...(await startFleet(central, work, n, "lag")));
    log(`lag: ${rate} decisions/s over ${n} sidecars for ${seconds} s`);
    const centralCpu0 = cpuTimeUs(central.child.pid as number);
    const fleetCpu = () => fleet.reduce((sum, s) => sum + cpuTimeUs(s.pid), 0);
    const fleetCpu0 = fleetCpu();
    const lag = await lagRun(central, fleet, rate, seconds);
    const centralCpuS = (cpuTimeUs(central.child.pid as number) - centralCpu0) / 1e6;
    const sidecarsCpuS = (fleetCpu() - fleetCpu0) / 1e6;
    if (lag.failures > 0) log(`${lag.failures} decisions failed, the first: ${lag.firstFailure}`);
    for (const s of fleet.splice(0)) await s.stop();
    // --lag-only: no cost run (its figures are then NaN).
    const lagOnly = process.argv.includes("--lag-only");
    if (!lagOnly) log("cost: saturated Reserve+Settle, standalone vs connected");
    const cost = lagOnly
      ? {
          standalonePerSec: spread([]),
          connectedPerSec: spread([]),
          ratio: spread([]),
          standaloneCpuUs: spread([]),
          connectedCpuUs: spread([]),
          largestBacklogSeen: 0,
        }
      : await costRun(central, work, costReps, 5);
    const environment = {
      date: new Date().toISOString(),
      store: store ? "postgres" : "sqlite",
      sidecars: n,
      rate,
      seconds,
      node: process.version,
    };
    const result = { environment, lag: { ...lag, centralCpuS, sidecarsCpuS }, cost };
    const ms = (x: number) => `${Math.round(x)} ms`;
    const md = [
      "# Fleet shipping: lag and cost",
      "",
      `\`npm run bench -- --fleet-lag\`, ${environment.date}, central on ${environment.store}.`,
      "",
      "| figure | value | target |",
      "|---|---|---|",
      `| decisions/s sent (Reserve+Settle, ${n} sidecars; ${lag.unsentPairs} pairs unsent, ${lag.failures} failed) | ${Math.round(lag.decisionsPerSec)} | 2,000 |`,
      `| fleet ledger behind, p50 / p99 / max (${lag.samples} samples) | ${ms(lag.p50)} / ${ms(lag.p99)} / ${ms(lag.max)} | p99 <= 1 s |`,
      `| Reserve answered after sending, p50 / p99; central's GetLedgerToday, p50 / p99 | ${ms(lag.reserveMs.p50)} / ${ms(lag.reserveMs.p99)}; ${ms(lag.ledgerReadMs.p50)} / ${ms(lag.ledgerReadMs.p99)} |  |`,
      `| CPU over the run: the ${n} sidecars / central / the bench's own driver | ${sidecarsCpuS.toFixed(1)} s / ${centralCpuS.toFixed(1)} s / ${lag.driverCpuS.toFixed(1)} s of ${Math.round(lag.seconds)} s |  |`,
      `| saturated Reserve+Settle, standalone (median of ${costReps}) | ${Math.round(cost.standalonePerSec.median)}/s |  |`,
      `| the same, connected and shipping | ${Math.round(cost.connectedPerSec.median)}/s |  |`,
      `| connected / standalone | ${cost.ratio.median.toFixed(3)} (min ${cost.ratio.min.toFixed(3)}, max ${cost.ratio.max.toFixed(3)}) | >= 0.90 |`,
      `| sidecar CPU per decision, standalone / connected | ${Math.round(cost.standaloneCpuUs.median)} us / ${Math.round(cost.connectedCpuUs.median)} us |  |`,
      `| largest outbox seen after a saturated run | ${cost.largestBacklogSeen} events |  |`,
      "",
    ].join("\n");
    process.stdout.write(`\n${md}\n`);
    const out = join("bench", "results");
    mkdirSync(out, { recursive: true });
    const name = store ? "fleet-lag-postgres" : "fleet-lag";
    writeFileSync(join(out, `${name}.json`), `${JSON.stringify(result, null, 2)}\n`);
    writeFileSync(join(out, `${name}.md`), md);
  } finally {
    for (const s of fleet) await s.stop();
    central?.close();
    if (central?.child.exitCode === null) {
      central.child.kill("SIGTERM");
      await new Promise((r) => central?.child.once("exit", r));
    }
    rmSync(work, { recursive: true, force: true });
  }
}
