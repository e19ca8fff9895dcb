/**
 * `npm run bench [-- --quick] [-- --profile]`: the sidecar from dist/ against the runtime's
 * ceiling, the seed's PostgreSQL design and the in-process floor. Prints a table (median of the
 * repetitions, min and max beside it), writes bench/results/latest.{json,md} (quick runs:
 * quick.{json,md}) and says for each target whether it is met.
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { type Figures, ROWS } from "./figure-rows.js";
import { memoryRun, storeUsage } from "./footprint.js";
import { ensureH2load, h2loadVersion, writeBodies } from "./h2load.js";
import { commitFloor, inProcessReserve, walPagesPerReserve } from "./in-process.js";
import { inProcessRecordKpi, walPagesPerRecordKpi } from "./in-process-kpi.js";
import { pgBaseline, pgSettings } from "./pg-baseline.js";
import {
  memoryOf,
  type ServerProcess,
  scrapeMetrics,
  startCeiling,
  startSidecar,
} from "./processes.js";
import { type FigureSpread, issueTargets, type MemoryRun, renderReport } from "./report.js";
import { benchConfig, benchRuns } from "./runs.js";
import {
  checkBodies,
  checkGoLive,
  checkGoLiveBodies,
  PATH,
  recordKpi,
  reserveSettle,
  setUpSidecar,
} from "./scenarios.js";
import { callsPerCommit, latencySummary, meanCallUs, spread } from "./stats.js";

const quick = process.argv.includes("--quick");
const profile = process.argv.includes("--profile");
const TOKEN = "bench-operator-token";

const config = benchConfig(quick);
const runs = benchRuns(config);

const MB = 1024 * 1024;

function log(line: string): void {
  process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${line}\n`);
}

/** One repetition of every RPC scenario on fresh servers. */
async function repetition(rep: number, workDir: string, sweepAt: Record<string, string>) {
  const f: Figures = {};
  const dataDir = join(workDir, `sidecar-${rep}`);
  mkdirSync(dataDir);
  const profileDir = join("bench", "results", "profiles");
  if (profile) mkdirSync(profileDir, { recursive: true });
  const servers: ServerProcess[] = [];
  try {
    const ceiling = await startCeiling(false);
    servers.push(ceiling);
    const echo = await startCeiling(true);
    servers.push(echo);
    const sidecar = await startSidecar({
      dataDir,
      token: TOKEN,
      nodeArgs: profile ? ["--cpu-prof", `--cpu-prof-dir=${profileDir}`] : [],
    });
    servers.push(sidecar);
    const url = (p: ServerProcess) => `http://127.0.0.1:${p.port}`;
    await setUpSidecar(url(sidecar), TOKEN);
    const frames = checkGoLiveBodies(4);
    await checkBodies(url(sidecar), frames);
    const bodies = writeBodies(workDir, "checkgolive", frames);
    const h2 = (p: ServerProcess) => `${url(p)}${PATH.checkGoLive}`;

    log(`rep ${rep}: ceiling (h2load)`);
    const ceilH2 = await runs.h2loadSaturated(h2(ceiling), bodies, workDir, ceiling.pid);
    f["ceiling.h2load.cpu"] = ceilH2.cpu;
    f["ceiling.h2load.sat"] = ceilH2.reqPerSec;
    sweepAt["ceiling.h2load.sat"] = ceilH2.at;
    const ceilH2Lat = await runs.h2loadOneAtATime(h2(ceiling), bodies, workDir);
    f["ceiling.h2load.p50"] = ceilH2Lat.p50;
    f["ceiling.h2load.p99"] = ceilH2Lat.p99;

    log(`rep ${rep}: grpc-js echo (h2load)`);
    const echoSat = await runs.h2loadSaturated(h2(echo), bodies, workDir, echo.pid);
    f["grpcjs.h2load.cpu"] = echoSat.cpu;
    f["grpcjs.h2load.sat"] = echoSat.reqPerSec;
    f["grpcjs.h2load.ratio"] = echoSat.reqPerSec / ceilH2.reqPerSec;
    f["grpcjs.h2load.p50"] = (await runs.h2loadOneAtATime(h2(echo), bodies, workDir)).p50;

    log(`rep ${rep}: ceiling (node driver)`);
    const ceilOp = checkGoLive(frames);
    const ceilNode = await runs.saturated(url(ceiling), ceilOp, ceiling.pid);
    f["ceiling.node.cpu"] = ceilNode.best.serverCpuUsPerCall;
    f["ceiling.node.sat"] = ceilNode.best.callsPerSec;
    sweepAt["ceiling.node.sat"] = ceilNode.at;
    const ceilNodeLat = latencySummary(
      (await runs.oneAtATime(url(ceiling), ceilOp)).latencyUs.get(PATH.checkGoLive) ?? [],
    );
    f["ceiling.node.p50"] = ceilNodeLat.p50;
    f["ceiling.node.p99"] = ceilNodeLat.p99;

    log(`rep ${rep}: CheckGoLive (h2load)`);
    // Each run right after the ceiling's at the same point (runs.ts, saturatedBeside).
    const cglH2 = await runs.h2loadSaturatedBeside(
      { url: h2(sidecar), pid: sidecar.pid },
      { url: h2(ceiling), pid: ceiling.pid },
      bodies,
      workDir,
    );
    f["cgl.h2load.cpu"] = cglH2.cpu;
    f["cgl.h2load.sat"] = cglH2.reqPerSec;
    f["cgl.h2load.ceiling"] = cglH2.ceiling;
    f["cgl.h2load.ratio"] = cglH2.reqPerSec / cglH2.ceiling;
    sweepAt["cgl.h2load.sat"] = cglH2.at;
    const cglH2Lat = await runs.h2loadOneAtATime(h2(sidecar), bodies, workDir);
    f["cgl.h2load.p50"] = cglH2Lat.p50;
    f["cgl.h2load.p99"] = cglH2Lat.p99;

    log(`rep ${rep}: CheckGoLive (node driver)`);
    const cglNode = await runs.saturated(url(sidecar), checkGoLive(frames), sidecar.pid);
    f["cgl.node.cpu"] = cglNode.best.serverCpuUsPerCall;
    f["cgl.node.sat"] = cglNode.best.callsPerSec;
    f["cgl.node.ratio"] = cglNode.best.callsPerSec / ceilNode.best.callsPerSec;
    sweepAt["cgl.node.sat"] = cglNode.at;
    const cglNodeLat = latencySummary(
      (await runs.oneAtATime(url(sidecar), checkGoLive(frames))).latencyUs.get(PATH.checkGoLive) ??
        [],
    );
    f["cgl.node.p50"] = cglNodeLat.p50;
    f["cgl.node.p99"] = cglNodeLat.p99;

    const storeFile = join(dataDir, "sidecar.db");
    log(`rep ${rep}: Reserve+Settle (node driver)`);
    const before = storeUsage(storeFile);
    // The first Reserves after start run before the JIT has compiled their path: shown apart.
    const rsCold = await runs.oneAtATime(url(sidecar), reserveSettle(`rs${rep}-cold`));
    f["rs.node.reserve.cold.p50"] = latencySummary(rsCold.latencyUs.get(PATH.reserve) ?? []).p50;
    const metricsBeforeRs = await scrapeMetrics(sidecar);
    const bare = { url: url(ceiling), op: ceilOp, pid: ceiling.pid };
    const rsSat = await runs.saturatedBeside(
      { url: url(sidecar), op: reserveSettle(`rs${rep}-sat`), pid: sidecar.pid },
      bare,
    );
    const metricsAfterRs = await scrapeMetrics(sidecar);
    f["rs.commit.calls"] = callsPerCommit(metricsBeforeRs, metricsAfterRs);
    f["rs.node.cpu"] = rsSat.best.serverCpuUsPerCall;
    f["rs.node.sat"] = rsSat.best.callsPerSec;
    f["rs.node.pairs"] = rsSat.best.operationsPerSec;
    f["rs.node.ceiling"] = rsSat.ceiling;
    f["rs.node.ratio"] = rsSat.ratio;
    sweepAt["rs.node.sat"] = rsSat.at;
    // One at a time on a sidecar that has been serving (as CheckGoLive's, after its saturated runs).
    const beside = await runs.oneAtATimeBeside(
      { url: url(sidecar), op: reserveSettle(`rs${rep}-lat`), pid: sidecar.pid },
      bare,
      PATH.checkGoLive,
    );
    const rsLat = beside.run;
    const metricsAfterLat = await scrapeMetrics(sidecar);
    f["rs.server.reserve.mean"] = meanCallUs(metricsAfterRs, metricsAfterLat, "risk", "Reserve");
    const reserveLat = latencySummary(rsLat.latencyUs.get(PATH.reserve) ?? []);
    const settleLat = latencySummary(rsLat.latencyUs.get(PATH.settle) ?? []);
    f["rs.node.reserve.p50"] = reserveLat.p50;
    f["rs.node.reserve.p99"] = reserveLat.p99;
    f["rs.node.ceiling.p50"] = beside.ceilingP50;
    f["rs.node.reserve.ratio"] = reserveLat.p50 / beside.ceilingP50;
    f["rs.node.settle.p50"] = settleLat.p50;
    f["rs.node.settle.p99"] = settleLat.p99;
    const afterRs = storeUsage(storeFile);
    f["store.rs"] = (afterRs.bytes - before.bytes) / (afterRs.reservations - before.reservations);

    log(`rep ${rep}: RecordKpi (node driver)`);
    const metricsBeforeKpi = await scrapeMetrics(sidecar);
    const kpiSat = await runs.saturatedBeside(
      { url: url(sidecar), op: recordKpi(`k${rep}-sat`), pid: sidecar.pid },
      bare,
    );
    f["kpi.commit.calls"] = callsPerCommit(metricsBeforeKpi, await scrapeMetrics(sidecar));
    f["kpi.node.cpu"] = kpiSat.best.serverCpuUsPerCall;
    f["kpi.node.sat"] = kpiSat.best.callsPerSec;
    f["kpi.node.ceiling"] = kpiSat.ceiling;
    f["kpi.node.ratio"] = kpiSat.ratio;
    sweepAt["kpi.node.sat"] = kpiSat.at;
    const kpiLat = latencySummary(
      (await runs.oneAtATime(url(sidecar), recordKpi(`k${rep}-lat`))).latencyUs.get(
        PATH.recordKpi,
      ) ?? [],
    );
    f["kpi.node.p50"] = kpiLat.p50;
    f["kpi.node.p99"] = kpiLat.p99;
    const afterKpi = storeUsage(storeFile);
    f["store.kpi"] = (afterKpi.bytes - afterRs.bytes) / (afterKpi.kpis - afterRs.kpis);

    f["mem.peak"] = memoryOf(sidecar.pid).hwm / MB;
  } finally {
    for (const s of servers.reverse()) await s.stop();
  }
  return f;
}

async function main() {
  const started = Date.now();
  const loadBefore = loadavg()[0] ?? 0;
  ensureH2load();
  const workDir = mkdtempSync(join(tmpdir(), "govd-bench-"));
  const reps: Figures[] = [];
  const sweepAt: Record<string, string> = {};
  let memory: MemoryRun;
  let pgInfo = { version: "unavailable", fsync: "" };
  try {
    for (let rep = 1; rep <= config.reps; rep++) {
      const f = await repetition(rep, workDir, sweepAt);
      log(`rep ${rep}: in-process Reserve`);
      for (const mode of ["handler", "pipeline"] as const) {
        const r = await inProcessReserve(mode, config.inProcessCalls, 2_000);
        f[`inproc.${mode}.p50`] = r.p50;
        f[`inproc.${mode}.p99`] = r.p99;
      }
      const pages = await walPagesPerReserve(config.inProcessCalls / 10);
      f["floor.pages"] = pages.decision;
      f["floor.fold.pages"] = pages.fold;
      log(`rep ${rep}: in-process RecordKpi`);
      const kpi = await inProcessRecordKpi(config.inProcessCalls, 2_000);
      f["inproc.kpi.p50"] = kpi.p50;
      f["inproc.kpi.p99"] = kpi.p99;
      const kpiPages = await walPagesPerRecordKpi(config.inProcessCalls / 10);
      f["floor.kpi.pages"] = kpiPages.decision;
      f["floor.kpi.fold.pages"] = kpiPages.fold;
      f["floor.commit.p50"] = await commitFloor(f["floor.pages"], config.inProcessCalls);
      f["floor.commit1.p50"] = await commitFloor(1, config.inProcessCalls);
      log(`rep ${rep}: PostgreSQL baseline`);
      try {
        pgInfo = await pgSettings();
        for (const sc of ["on", "off"] as const) {
          const r = await pgBaseline({
            synchronousCommit: sc,
            count: config.pgCalls,
            warmup: 200,
            saturatedMs: config.pgSaturatedMs,
            connections: 16,
          });
          f[`pg.${sc}.p50`] = r.p50;
          f[`pg.${sc}.p99`] = r.p99;
          f[`pg.${sc}.sat`] = r.saturatedPerSec;
        }
      } catch (err) {
        log(`PostgreSQL baseline skipped: ${(err as Error).message}`);
      }
      reps.push(f);
    }
    memory = await memoryRun(workDir, config.memory, TOKEN, log);
  } finally {
    rmSync(workDir, { recursive: true, force: true });
  }

  const figures: Record<string, FigureSpread> = {};
  for (const row of ROWS) {
    figures[row.key] = {
      ...spread(reps.map((r) => r[row.key] ?? Number.NaN)),
      unit: row.unit,
      tool: row.tool,
      label: row.label,
      ...(sweepAt[row.key] ? { at: sweepAt[row.key] } : {}),
    };
  }
  const peakRss = Math.max(memory.peakMb, ...reps.map((r) => r["mem.peak"] ?? 0));
  const targets = issueTargets(figures, peakRss, memory);

  const environment = {
    date: new Date().toISOString(),
    quick,
    repetitions: config.reps,
    commit:
      execFileSync("git", ["rev-parse", "--short", "HEAD"]).toString().trim() +
      (execFileSync("git", ["status", "--porcelain"]).toString().trim() === ""
        ? ""
        : " (with uncommitted changes)"),
    node: process.version,
    cpu: `${cpus().length} x ${cpus()[0]?.model ?? "?"}`,
    h2load: h2loadVersion(),
    postgresql: `${pgInfo.version} (fsync ${pgInfo.fsync})`,
    seconds: { latency: config.latencyS, saturation: config.saturationS, warmup: config.warmupS },
    sweep: config.sweep.map(({ c, m }) => `c=${c} m=${m}`),
    elapsedS: 0,
    /** 1-minute load average before and after: other work on the machine skews every figure. */
    loadAverage: { before: loadBefore, after: loadavg()[0] ?? 0 },
  };
  environment.elapsedS = Math.round((Date.now() - started) / 1000);

  const { table, targetLines, md } = renderReport({
    figures,
    memory,
    targets,
    environment,
    repetitions: config.reps,
  });

  process.stdout.write(
    `\n${table}\n\n${targetLines.join("\n")}\n\nbench finished in ${environment.elapsedS} s\n`,
  );
  const out = join("bench", "results");
  mkdirSync(out, { recursive: true });
  const name = quick ? "quick" : "latest";
  writeFileSync(
    join(out, `${name}.json`),
    `${JSON.stringify({ environment, figures, memory, targets, repetitions: reps }, null, 2)}\n`,
  );
  writeFileSync(join(out, `${name}.md`), md);
}

if (process.argv.includes("--fleet-lag")) {
  const { fleetLagBench } = await import("./fleet-lag.js");
  await fleetLagBench();
} else if (process.argv.includes("--fleet")) {
  const { fleetBench } = await import("./fleet.js");
  await fleetBench();
} else {
  await main();
}
