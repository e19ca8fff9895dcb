/**
 * How long one sweep transaction holds the deciding thread, by batch size, over a backlog of
 * expired reservations (`node dist/bench/sweep-batch.js [count] [batch...]`, defaults 300000 and
 * 64 128 256 512). Each batch runs as the sidecar runs it: releaseExpired with SWEEP_BATCH's time
 * budget, in its own transaction through group commit, the WAL checkpointed by the worker, one
 * batch per event-loop turn. Prints per batch size the median, p99 and worst batch (ms held on
 * the thread, commit included), the time to release the whole backlog and the peak RSS. Run it
 * with the sidecar's heap flags: node --max-semi-space-size=2 --max-old-space-size=96.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ManualClock } from "../src/clock.js";
import { createLeverContext } from "../src/levers/context.js";
import { releaseExpired, SWEEP_BATCH } from "../src/levers/risk/reservations.js";
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
    commits.afterCommit = () => wal.restartIfOvergrown();
    let released = 0;
    const ms: number[] = [];
    const start = performance.now();
    for (;;) {
      const t = performance.now();
      const n = commits.runNow(() => releaseExpired(ctx, batch, SWEEP_BATCH.budgetMs));
      ms.push(performance.now() - t);
      released += n;
      if (n === 0) break;
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
