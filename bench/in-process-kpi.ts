/**
 * In-process RecordKpi: the regression lever called through CallPipeline.invoke (the path both
 * ports run: validation, idempotency key, one transaction) on a temporary SQLite store, with an
 * enabled RELATIVE_DROP wire on the series evaluated on every call, as the bench's sidecar has.
 * Measured: p50/p99 per call with the WAL checkpointer in its worker; the WAL pages one call
 * commits; and the pages the fold then writes per outcome (off the decision path: the sidecar
 * folds every second). Run alone: `npm run bench:kpi [-- calls]`.
 */
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create, type DescMethodUnary } from "@bufbuild/protobuf";
import { pino } from "pino";
import { RecordKpiRequestSchema, RegressionService } from "../gen/governance/v1/regression_pb.js";
import { systemClock } from "../src/clock.js";
import { createLeverContext } from "../src/levers/context.js";
import { regressionService } from "../src/levers/regression/service.js";
import { CallPipeline } from "../src/server/call-pipeline.js";
import { OperatorToken } from "../src/server/operator-token.js";
import { type Db, migrateTo, openDatabase } from "../src/store/database.js";
import { WalCheckpointer } from "../src/store/wal-checkpointer.js";
import { KPI } from "./scenarios.js";
import { latencySummary } from "./stats.js";

/** A temporary store with the bench's wire, and the calls the bench makes on it. */
interface KpiStore {
  db: Db;
  record(seq: number): void;
  /** Folds every outcome into the tables, when this build folds (returns false when not). */
  fold(): boolean;
  close(): Promise<void>;
}

function openKpiStore(checkpoints: boolean): KpiStore {
  const dir = mkdtempSync(join(tmpdir(), "govd-bench-kpi-"));
  const file = join(dir, "sidecar.db");
  const db = openDatabase(file);
  migrateTo(db);
  const checkpointer = checkpoints
    ? new WalCheckpointer(db, file, 1_000, (message) => {
        console.error(`in-process RecordKpi bench: WAL checkpoint failed: ${message}`);
      })
    : undefined;
  if (!checkpointer) db.pragma("wal_autocheckpoint = 0");
  const ctx = createLeverContext(db, systemClock);
  ctx.tripwires.savePolicy({
    domain: KPI.domain,
    metric: KPI.metric,
    method: "RELATIVE_DROP",
    windowEvents: 50,
    baselineEvents: 200,
    minEventsToEnforce: 250,
    maxDropFraction: 0.2,
    falseAlarmEvents: 1_000_000,
    baselineRate: 0,
    action: "THROTTLE",
    throttleTargets: ["BENCH_KPI_TARGET"],
    enabled: true,
    dryRun: false,
    updatedBy: "bench",
    updatedMs: systemClock.now(),
  });
  const binding = regressionService(ctx);
  const pipeline = new CallPipeline({
    db,
    clock: systemClock,
    token: new OperatorToken("bench-in-process-token"),
    logger: pino({ level: "silent" }),
    storeFile: file,
  });
  if (checkpointer) pipeline.groupCommit.afterCommit = () => checkpointer.afterCommit();
  const method = RegressionService.method.recordKpi as DescMethodUnary;
  const wires = ctx.tripwires as { fold?: (maxEvents: number) => number };
  return {
    db,
    record(seq) {
      const request = create(RecordKpiRequestSchema, {
        domain: KPI.domain,
        metric: KPI.metric,
        success: seq % 20 !== 0,
        value: 1,
        actor: "bench",
        correlationId: `inproc-kpi-${seq}`,
      });
      const answer = pipeline.invoke(binding, method, request, undefined).message as {
        trippedNow?: boolean;
      };
      if (answer.trippedNow) throw new Error("the benchmark tripwire tripped");
    },
    fold() {
      const fold = wires.fold?.bind(ctx.tripwires);
      if (!fold) return false;
      // As the sidecar's fold: the outcomes and the answer keys.
      pipeline.groupCommit.runNow(() => {
        fold(Number.MAX_SAFE_INTEGER);
        pipeline.keys.fold(Number.MAX_SAFE_INTEGER);
      });
      return true;
    },
    async close() {
      await checkpointer?.stop();
      db.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** p50/p99 in microseconds of `count` in-process RecordKpi calls, folded every 1,000 (untimed). */
export async function inProcessRecordKpi(
  count: number,
  warmup: number,
): Promise<{ p50: number; p99: number; n: number }> {
  const store = openKpiStore(true);
  try {
    for (let i = 0; i < warmup; i++) store.record(-i - 1);
    const us = new Float64Array(count);
    for (let i = 0; i < count; i++) {
      const t0 = process.hrtime.bigint();
      store.record(i);
      us[i] = Number(process.hrtime.bigint() - t0) / 1000;
      // As the sidecar's fold every second does, off the timed calls.
      if (i % 1_000 === 999) store.fold();
    }
    return latencySummary(us);
  } finally {
    await store.close();
  }
}

/**
 * WAL pages one in-process RecordKpi commits, averaged over `count` (no checkpoints meanwhile),
 * and the pages a fold of those `count` outcomes writes, per outcome (0 where nothing folds).
 */
export async function walPagesPerRecordKpi(
  count: number,
): Promise<{ decision: number; fold: number }> {
  const store = openKpiStore(false);
  try {
    const wal = `${store.db.name}-wal`;
    const frame = 24 + (store.db.pragma("page_size", { simple: true }) as number);
    for (let i = 0; i < 300; i++) store.record(-i - 1);
    store.fold();
    let frames = 0;
    for (let i = 0; i < count; i++) {
      const before = statSync(wal).size;
      store.record(i);
      frames += (statSync(wal).size - before) / frame;
    }
    const before = statSync(wal).size;
    store.fold();
    return { decision: frames / count, fold: (statSync(wal).size - before) / frame / count };
  } finally {
    await store.close();
  }
}

async function main() {
  const count = Number(process.argv[2] ?? 20_000);
  const pages = await walPagesPerRecordKpi(Math.max(100, count / 10));
  const latency = await inProcessRecordKpi(count, 2_000);
  console.log(
    JSON.stringify({
      "inproc.kpi.p50": latency.p50,
      "inproc.kpi.p99": latency.p99,
      "floor.kpi.pages": pages.decision,
      "floor.kpi.fold.pages": pages.fold,
    }),
  );
}

if (process.argv[1]?.endsWith("in-process-kpi.js")) await main();
