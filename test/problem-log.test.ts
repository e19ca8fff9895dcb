import { Writable } from "node:stream";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { ManualClock } from "../src/clock.js";
import { FD_ADVICE, isFdShortage, ProblemLog } from "../src/server/problem-log.js";

function capture() {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk, _enc, done) {
      lines.push(JSON.parse(chunk.toString()));
      done();
    },
  });
  return { logger: pino({ level: "info" }, stream), lines };
}

describe("ProblemLog", () => {
  it("logs a repeated problem once a minute with the count, and at once after it was resolved", () => {
    const { logger, lines } = capture();
    const clock = new ManualClock(0);
    const log = new ProblemLog(logger, clock);
    for (let s = 0; s < 120; s++) {
      log.report("checkpoint", new Error("disk I/O error"), "WAL checkpoint failed");
      clock.advance(1_000);
    }
    expect(lines.map((l) => l.msg)).toEqual(["WAL checkpoint failed", "WAL checkpoint failed"]);
    expect(lines[1]?.repeatedSinceLastLog).toBe(59);
    log.resolved("checkpoint");
    log.report("checkpoint", new Error("again"), "WAL checkpoint failed");
    expect(lines).toHaveLength(3);
    // Another kind of problem is not held back by the first.
    log.report("sweep", new Error("busy"), "sweep failed");
    expect(lines).toHaveLength(4);
  });

  it("names a file-descriptor shortage with what to do", () => {
    const { logger, lines } = capture();
    const log = new ProblemLog(logger, new ManualClock(0));
    const err = Object.assign(new Error("accept EMFILE"), { code: "EMFILE" });
    log.report("http", err, "HTTP port error");
    expect(lines[0]?.advice).toBe(FD_ADVICE);
    expect(isFdShortage("SQLITE_CANTOPEN: too many open files")).toBe(true);
    expect(isFdShortage("ENFILE")).toBe(true);
    expect(isFdShortage("database is locked")).toBe(false);
  });
});
