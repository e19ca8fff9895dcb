/**
 * How long one sweep transaction holds the deciding thread, by batch size, over a backlog of
 * expired reservations (`node dist/bench/sweep-batch.js [count] [batch...]`, defaults 300000 and
 * 64 128 256 512). Each batch runs as the sidecar runs it: releaseExpired with SWEEP_BATCH's time
 * budget, in its own transaction through group commit, the WAL checkpointed by the worker, one
 * batch per event-loop turn, and after every SWEEP_BATCH.foldEvery releases a step that folds them.
 * Prints per batch size the median, p99 and worst release step and the worst fold step (ms held
 * on the thread, commit included), the time to release the whole backlog and the peak RSS. Run
 * it with the sidecar's heap flags: node --max-semi-space-size=2 --max-old-space-size=96.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ManualClock } from "../src/clock.js";
import { createLeverContext } from "../src/levers/context.js";
import { RISK_FOLD_BATCH, releaseExpired, SWEEP_BATCH } from "../src/levers/risk/reservations.js";
import { migrateTo, openDatabase } from "../src/store/database.js";
import { GroupCommit } from "../src/store/group-commit.js";
import { WalCheckpointer } from "../src/store/wal-checkpointer.js";
import { fillExpiredBacklog } from "./expired-backlog.js";
import { percentile } from "./stats.js";

const T0 = Date.UTC(2026, 2, 2, 10, 0, 0);

async function measure(count: number, batch: number) {
  const dir = mkdtempSync(join(tmpdir(), "govd-sweep-"));
  const db = openDatabase(join(dir, "sidecar.db"));
  try {
    migrateTo(db);
    fillExpiredBacklog(db, { count, engine: "WHOLESALE", amountMicros: 1_000_000, expiredMs: T0 });
    const ctx = createLeverContext(db, new ManualClock(T0 + 3_600_000));
    const commits = new GroupCommit(db);
    const wal = new WalCheckpointer(db, db.name, 1_000, (m) => console.error(m));
    commits.afterCommit = () => wal.afterCommit();
    let released = 0;
    let sinceFold = 0;
    let behind = false;
    const ms: number[] = [];
    let foldMaxMs = 0;
    const start = performance.now();
    for (;;) {
      const t = performance.now();
      // As the sidecar's sweep: a fold step after a batch's worth of releases, again while
      // a fold finds a whole batch to fold.
      if (sinceFold >= SWEEP_BATCH.foldEvery || behind) {
        behind = commits.runNow(() => ctx.risk.fold(RISK_FOLD_BATCH)) >= RISK_FOLD_BATCH;
        foldMaxMs = Math.max(foldMaxMs, performance.now() - t);
        sinceFold = 0;
      } else {
        const n = commits.runNow(() => releaseExpired(ctx, batch, SWEEP_BATCH.budgetMs));
        ms.push(performance.now() - t);
        released += n;
        sinceFold += n;
        if (n === 0) break;
      }
      await new Promise((r) => setImmediate(r));
    }
    await wal.stop();
    const totalS = (performance.now() - start) / 1000;
    ms.sort((a, b) => a - b);
    return {
      batch,
      released,
      batches: ms.length,
      medianMs: percentile(ms, 50).toFixed(2),
      p99Ms: percentile(ms, 99).toFixed(2),
      maxMs: (ms[ms.length - 1] ?? 0).toFixed(2),
      foldMaxMs: foldMaxMs.toFixed(2),
      totalS: totalS.toFixed(1),
      peakRssMb: (process.resourceUsage().maxRSS / 1024).toFixed(0),
    };
  } finally {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

const [countArg, ...batchArgs] = process.argv.slice(2);
const count = Number(countArg ?? 300_000);
const batches = batchArgs.length ? batchArgs.map(Number) : [64, 128, 256, 512];
for (const batch of batches) console.log(JSON.stringify(await measure(count, batch)));
