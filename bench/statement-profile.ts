/**
 * `node --max-semi-space-size=2 dist/bench/statement-profile.js [pairs]` (after `npm run
 * build`): where a decision's SQL time goes, statement by statement. It runs the in-process
 * bench's Reserve+Settle through CallPipeline.invoke (a warm-up run first, then `pairs` pairs,
 * 10,000 by default) and times every `run`, `get`, `all` and `iterate` of better-sqlite3's
 * statements in this process, BEGIN and COMMIT included. It prints, per statement, how often it
 * ran per decision, its median and its mean time per decision, most costly first. The timing
 * wraps each call (about 0.1 us each): compare statements with each other and builds with each
 * other, not with the bench's p50.
 */
import Database from "better-sqlite3";
import { inProcessReserve } from "./in-process.js";

/** Times of one statement, in nanoseconds. */
const timings = new Map<string, number[]>();
let timing = false;

/** Wraps the statement methods of better-sqlite3 (shared by every connection of this process). */
function timeStatements(): void {
  const scratch = new Database(":memory:");
  const prototype = Object.getPrototypeOf(scratch.prepare("SELECT 1")) as Record<
    string,
    (...args: unknown[]) => unknown
  >;
  scratch.close();
  for (const name of ["run", "get", "all", "iterate"]) {
    const original = prototype[name] as (...args: unknown[]) => unknown;
    prototype[name] = function (this: { source: string }, ...args: unknown[]) {
      if (!timing) return original.apply(this, args);
      const start = process.hrtime.bigint();
      const result = original.apply(this, args);
      const ns = Number(process.hrtime.bigint() - start);
      const key = this.source.replace(/\s+/g, " ").trim().slice(0, 90);
      const list = timings.get(key);
      if (list) list.push(ns);
      else timings.set(key, [ns]);
      return result;
    };
  }
}

const pairs = Number(process.argv[2] ?? 10_000);
if (!Number.isInteger(pairs) || pairs < 100) {
  console.error("usage: statement-profile.js [pairs >= 100]");
  process.exit(2);
}
timeStatements();
await inProcessReserve("pipeline", 3_000, 3_000);
timing = true;
await inProcessReserve("pipeline", pairs, 0);
timing = false;
const decisions = pairs * 2;
const rows = [...timings].map(([sql, ns]) => {
  ns.sort((a, b) => a - b);
  const total = ns.reduce((sum, t) => sum + t, 0);
  return { sql, perDecision: ns.length / decisions, median: ns[ns.length >> 1] ?? 0, total };
});
rows.sort((a, b) => b.total - a.total);
console.log(`${decisions} decisions (Reserve and Settle alternating), in-process via CallPipeline`);
console.log("runs/decision  median us  mean us/decision  statement");
for (const r of rows.slice(0, 20)) {
  console.log(
    `${r.perDecision.toFixed(2).padStart(13)}  ${(r.median / 1000).toFixed(1).padStart(9)}  ${(
      r.total /
      1000 /
      decisions
    )
      .toFixed(2)
      .padStart(16)}  ${r.sql}`,
  );
}
