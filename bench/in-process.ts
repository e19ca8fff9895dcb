/**
 * In-process Reserve: the risk lever called as a library, no RPC, on a temporary SQLite store
 * (the floor for a TypeScript engine that embeds govd). Two ways, both measured per call:
 * - "handler": RiskService's reserve handler inside one IMMEDIATE transaction (GroupCommit.runDecision,
 *   what the pipeline wraps around it), no validation, no idempotency key;
 * - "pipeline": CallPipeline.invoke, the exact path both ports run (operator-token check,
 *   protovalidate, idempotency key, one transaction).
 * Both with the sidecar's WAL checkpointer running in its worker thread. Beside them, what bounds
 * them from below: the WAL pages one Reserve commits, and SQLite's commit of that many pages
 * with nothing else around it.
 */
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create, type DescMethodUnary, type Message } from "@bufbuild/protobuf";
import { pino } from "pino";
import {
  ReserveRequestSchema,
  RiskService,
  SettleRequestSchema,
} from "../gen/governance/v1/risk_pb.js";
import { systemClock } from "../src/clock.js";
import { createLeverContext } from "../src/levers/context.js";
import { riskService } from "../src/levers/risk/service.js";
import { CallPipeline } from "../src/server/call-pipeline.js";
import { OperatorToken } from "../src/server/operator-token.js";
import { type Db, migrateTo, openDatabase } from "../src/store/database.js";
import { GroupCommit } from "../src/store/group-commit.js";
import { WalCheckpointer } from "../src/store/wal-checkpointer.js";
import { BENCH_CAPS, ENGINE } from "./scenarios.js";
import { latencySummary } from "./stats.js";

/** A temporary store set up for Reserves of BENCH, with the calls the bench makes on it. */
interface BenchStore {
  db: Db;
  reserve(seq: number): string;
  settle(seq: number, reservationId: string): void;
  /** What the sidecar's fold every second does: the risk decisions and the answer keys. */
  fold(): void;
  close(): Promise<void>;
}

/** Opens a temporary store; `checkpoints` runs the sidecar's WAL checkpointer beside it. */
function openBenchStore(mode: "handler" | "pipeline", checkpoints: boolean): BenchStore {
  const dir = mkdtempSync(join(tmpdir(), "govd-bench-inproc-"));
  const file = join(dir, "sidecar.db");
  const db = openDatabase(file);
  migrateTo(db);
  // As the sidecar runs it: WAL checkpoints in a worker thread, not inside the timed commits.
  const checkpointer = checkpoints
    ? new WalCheckpointer(db, file, 1_000, (message) => {
        console.error(`in-process bench: WAL checkpoint failed: ${message}`);
      })
    : undefined;
  if (!checkpointer) db.pragma("wal_autocheckpoint = 0");
  const ctx = createLeverContext(db, systemClock);
  const now = systemClock.now();
  for (const engine of ["GLOBAL", ENGINE]) {
    ctx.risk.savePolicy({
      engine,
      maxDailyLoss: BENCH_CAPS.micros,
      maxDailyExposure: BENCH_CAPS.micros,
      maxOpenRisk: BENCH_CAPS.micros,
      maxActionsPerDay: BENCH_CAPS.actionsPerDay,
      enabled: true,
      updatedBy: "bench",
      updatedMs: now,
    });
  }
  ctx.goLive.set({ goLiveEnabled: true, killSwitchEngaged: false }, "bench", "benchmark", now);
  const binding = riskService(ctx);
  const pipeline = new CallPipeline({
    db,
    clock: systemClock,
    token: new OperatorToken("bench-in-process-token"),
    logger: pino({ level: "silent" }),
    storeFile: file,
  });
  // As the sidecar does: the writer restarts the WAL between commits when it has overgrown.
  if (checkpointer) pipeline.groupCommit.afterCommit = () => checkpointer.afterCommit();
  const commitNow = <T>(work: () => T): T => pipeline.groupCommit.runDecision(work);
  const handlers = binding.handlers as unknown as Record<
    "reserve" | "settle",
    (request: Message) => { allowed?: boolean; reservationId?: string }
  >;
  const reserveMethod = RiskService.method.reserve as DescMethodUnary;
  const settleMethod = RiskService.method.settle as DescMethodUnary;
  return {
    db,
    reserve(seq) {
      const request = create(ReserveRequestSchema, {
        engine: ENGINE,
        amount: "0.01",
        actor: "bench",
        correlationId: `inproc-${mode}-r-${seq}`,
      });
      const answer = (
        mode === "pipeline"
          ? pipeline.invoke(binding, reserveMethod, request, undefined).message
          : commitNow(() => handlers.reserve(request))
      ) as { allowed?: boolean; reservationId?: string };
      if (!answer.allowed) throw new Error("in-process Reserve denied");
      return answer.reservationId ?? "";
    },
    settle(seq, reservationId) {
      const request = create(SettleRequestSchema, {
        reservationId,
        realizedLoss: "0",
        actor: "bench",
        correlationId: `inproc-${mode}-s-${seq}`,
      });
      if (mode === "pipeline") pipeline.invoke(binding, settleMethod, request, undefined);
      else commitNow(() => handlers.settle(request));
    },
    fold() {
      pipeline.groupCommit.runNow(() => {
        ctx.risk.fold(Number.MAX_SAFE_INTEGER);
        pipeline.keys.fold(Number.MAX_SAFE_INTEGER);
      });
    },
    async close() {
      await checkpointer?.stop();
      db.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** p50/p99 in microseconds of `count` in-process Reserve calls (each followed by an untimed Settle). */
export async function inProcessReserve(
  mode: "handler" | "pipeline",
  count: number,
  warmup: number,
): Promise<{ p50: number; p99: number; n: number; callsPerSec: number }> {
  const store = openBenchStore(mode, true);
  try {
    for (let i = 0; i < warmup; i++) store.settle(-i - 1, store.reserve(-i - 1));
    const us = new Float64Array(count);
    let total = 0n;
    for (let i = 0; i < count; i++) {
      const t0 = process.hrtime.bigint();
      const id = store.reserve(i);
      const elapsed = process.hrtime.bigint() - t0;
      total += elapsed;
      us[i] = Number(elapsed) / 1000;
      store.settle(i, id);
      // As the sidecar's fold every second does, off the timed calls.
      if (i % 1_000 === 999) store.fold();
    }
    const s = latencySummary(us);
    return { ...s, callsPerSec: count / (Number(total) / 1e9) };
  } finally {
    await store.close();
  }
}

/** WAL frame: a 24-byte header and a page. */
const frameBytes = (db: Db) => 24 + (db.pragma("page_size", { simple: true }) as number);

/**
 * WAL pages one pipeline Reserve commits, averaged over `count` (no checkpoints meanwhile), and
 * the pages one fold of those `count` Reserve+Settle pairs writes, per pair.
 */
export async function walPagesPerReserve(
  count: number,
): Promise<{ decision: number; fold: number }> {
  const store = openBenchStore("pipeline", false);
  try {
    const wal = `${store.db.name}-wal`;
    for (let i = 0; i < 200; i++) store.settle(-i - 1, store.reserve(-i - 1));
    store.fold();
    let frames = 0;
    for (let i = 0; i < count; i++) {
      const before = statSync(wal).size;
      const id = store.reserve(i);
      frames += (statSync(wal).size - before) / frameBytes(store.db);
      store.settle(i, id);
    }
    const before = statSync(wal).size;
    store.fold();
    return {
      decision: frames / count,
      fold: (statSync(wal).size - before) / frameBytes(store.db) / count,
    };
  } finally {
    await store.close();
  }
}

/**
 * p50 in microseconds of a bare commit that writes `pages` pages (one small row into each of
 * `pages` tables), on a store set up as the sidecar's (WAL, synchronous=NORMAL, checkpoints in
 * the worker): the floor under any decision that writes that many pages.
 */
export async function commitFloor(pages: number, count: number): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), "govd-bench-floor-"));
  const file = join(dir, "floor.db");
  const db = openDatabase(file);
  const checkpointer = new WalCheckpointer(db, file, 1_000, (message) => {
    console.error(`commit floor: WAL checkpoint failed: ${message}`);
  });
  try {
    const commits = new GroupCommit(db);
    commits.afterCommit = () => checkpointer.afterCommit();
    const inserts = Array.from({ length: Math.max(1, Math.round(pages)) }, (_, t) => {
      db.exec(`CREATE TABLE floor_${t} (id INTEGER PRIMARY KEY, body TEXT NOT NULL)`);
      return db.prepare(`INSERT INTO floor_${t} (body) VALUES ('a decision of about this size')`);
    });
    const write = () => {
      for (const insert of inserts) insert.run();
    };
    for (let i = 0; i < 1_000; i++) commits.runDecision(write);
    const us = new Float64Array(count);
    for (let i = 0; i < count; i++) {
      const t0 = process.hrtime.bigint();
      commits.runDecision(write);
      us[i] = Number(process.hrtime.bigint() - t0) / 1000;
    }
    return latencySummary(us).p50;
  } finally {
    await checkpointer.stop();
    db.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
