/**
 * One repetition of the benchmark's RPC scenarios (`npm run bench`, bench/main.ts): the bare
 * ceiling and the grpc-js echo under h2load and the Node driver, then the sidecar's CheckGoLive,
 * Reserve+Settle and RecordKpi, saturated and one at a time, each ratio against the ceiling run
 * just before it (runs.ts).
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import type { Figures } from "./figure-rows.js";
import { storeUsage } from "./footprint.js";
import { writeBodies } from "./h2load.js";
import {
  memoryOf,
  type ServerProcess,
  scrapeMetrics,
  startCeiling,
  startSidecar,
} from "./processes.js";
import type { BenchRuns } from "./runs.js";
import {
  checkBodies,
  checkGoLive,
  checkGoLiveBodies,
  PATH,
  recordKpi,
  reserveSettle,
  setUpSidecar,
} from "./scenarios.js";
import { callsPerCommit, latencySummary, meanCallUs } from "./stats.js";

const MB = 1024 * 1024;

/**
 * One repetition of every RPC scenario on fresh servers (the bare ceiling, the grpc-js echo and a
 * sidecar): their figures by key (figure-rows.ts), and where in the sweep each best rate was.
 */
export async function rpcRepetition(
  rep: number,
  workDir: string,
  sweepAt: Record<string, string>,
  options: { runs: BenchRuns; profile: boolean; token: string; log: (line: string) => void },
): Promise<Figures> {
  const { runs, profile, log } = options;
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
      token: options.token,
      nodeArgs: profile ? ["--cpu-prof", `--cpu-prof-dir=${profileDir}`] : [],
    });
    servers.push(sidecar);
    const url = (p: ServerProcess) => `http://127.0.0.1:${p.port}`;
    await setUpSidecar(url(sidecar), options.token);
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
    f["cgl.h2load.ratio"] = cglH2.ratio;
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
    // One at a time, each call pays what saturation shares (see docs/performance.md).
    f["rs.node.cpu.one"] = rsLat.serverCpuUsPerCall;
    f["rs.node.ceiling.cpu.one"] = beside.ceilingCpu;
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
