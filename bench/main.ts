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
import { memoryRun } from "./footprint.js";
import { ensureH2load, h2loadVersion } from "./h2load.js";
import { commitFloor, inProcessReserve, walPagesPerReserve } from "./in-process.js";
import { inProcessRecordKpi, walPagesPerRecordKpi } from "./in-process-kpi.js";
import { pgBaseline, pgSettings } from "./pg-baseline.js";
import { type FigureSpread, issueTargets, type MemoryRun, renderReport } from "./report.js";
import { rpcRepetition } from "./rpc-repetition.js";
import { benchConfig, benchRuns } from "./runs.js";
import { spread } from "./stats.js";

const quick = process.argv.includes("--quick");
const profile = process.argv.includes("--profile");
const TOKEN = "bench-operator-token";

const config = benchConfig(quick);
const runs = benchRuns(config);

function log(line: string): void {
  process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${line}\n`);
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
      const f = await rpcRepetition(rep, workDir, sweepAt, { runs, profile, token: TOKEN, log });
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
