/**
 * In-process Reserve: the risk lever called as a library, no RPC, on a temporary SQLite store
 * (the floor for a TypeScript engine that embeds govd). Two ways, both measured per call:
 * - "handler": RiskService's reserve handler inside one IMMEDIATE transaction (GroupCommit.runNow,
 *   what the pipeline wraps around it), no validation, no idempotency key;
 * - "pipeline": CallPipeline.invoke, the exact path both ports run (operator-token check,
 *   protovalidate, idempotency key, one transaction).
 * Both with the sidecar's WAL checkpointer running in its worker thread.
 */
import { mkdtempSync, rmSync } from "node:fs";
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
import { migrateTo, openDatabase } from "../src/store/database.js";
import { WalCheckpointer } from "../src/store/wal-checkpointer.js";
import { latencySummary } from "./stats.js";

const HUGE = 999_999_999_000_000;

/** p50/p99 in microseconds of `count` in-process Reserve calls (each followed by an untimed Settle). */
export async function inProcessReserve(
  mode: "handler" | "pipeline",
  count: number,
  warmup: number,
): Promise<{ p50: number; p99: number; n: number; callsPerSec: number }> {
  const dir = mkdtempSync(join(tmpdir(), "govd-bench-inproc-"));
  const file = join(dir, "sidecar.db");
  const db = openDatabase(file);
  let checkpointer: WalCheckpointer | undefined;
  try {
    migrateTo(db);
    // As the sidecar runs it: WAL checkpoints in a worker thread, not inside the timed commits.
    checkpointer = new WalCheckpointer(db, file, 1_000, (message) => {
      console.error(`in-process bench: WAL checkpoint failed: ${message}`);
    });
    const ctx = createLeverContext(db, systemClock);
    const now = systemClock.now();
    for (const engine of ["GLOBAL", "BENCH"]) {
      ctx.risk.savePolicy({
        engine,
        maxDailyLoss: HUGE,
        maxDailyExposure: HUGE,
        maxOpenRisk: HUGE,
        maxActionsPerDay: 2_000_000_000,
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
    const wal = checkpointer;
    pipeline.groupCommit.afterCommit = () => wal.restartIfOvergrown();
    const commitNow = <T>(work: () => T): T => pipeline.groupCommit.runNow(work);
    const handlers = binding.handlers as unknown as Record<
      "reserve" | "settle",
      (request: Message) => { allowed?: boolean; reservationId?: string }
    >;
    const reserveMethod = RiskService.method.reserve as DescMethodUnary;
    const settleMethod = RiskService.method.settle as DescMethodUnary;
    const reserve = (seq: number): string => {
      const request = create(ReserveRequestSchema, {
        engine: "BENCH",
        amount: "0.01",
        actor: "bench",
        correlationId: `inproc-${mode}-r-${seq}`,
      });
      const answer =
        mode === "pipeline"
          ? (pipeline.invoke(binding, reserveMethod, request, undefined).message as Message & {
              allowed: boolean;
              reservationId: string;
            })
          : (commitNow(() => handlers.reserve(request)) as {
              allowed: boolean;
              reservationId: string;
            });
      if (!answer.allowed) throw new Error("in-process Reserve denied");
      return answer.reservationId;
    };
    const settle = (seq: number, reservationId: string) => {
      const request = create(SettleRequestSchema, {
        reservationId,
        realizedLoss: "0",
        actor: "bench",
        correlationId: `inproc-${mode}-s-${seq}`,
      });
      if (mode === "pipeline") pipeline.invoke(binding, settleMethod, request, undefined);
      else commitNow(() => handlers.settle(request));
    };
    for (let i = 0; i < warmup; i++) settle(-i - 1, reserve(-i - 1));
    const us = new Float64Array(count);
    let total = 0n;
    for (let i = 0; i < count; i++) {
      const t0 = process.hrtime.bigint();
      const id = reserve(i);
      const elapsed = process.hrtime.bigint() - t0;
      total += elapsed;
      us[i] = Number(elapsed) / 1000;
      settle(i, id);
    }
    const s = latencySummary(us);
    return { ...s, callsPerSec: count / (Number(total) / 1e9) };
  } finally {
    await checkpointer?.stop();
    db.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
