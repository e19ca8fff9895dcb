/** Pure helpers of the benchmark: gRPC framing, percentiles, spreads, h2load output. */
import { describe, expect, it } from "vitest";
import { issueTargets, type MemoryRun } from "../bench/report.js";
import {
  callsPerCommit,
  grpcFrame,
  grpcMessages,
  latencySummary,
  meanCallUs,
  parseH2loadLog,
  parseH2loadOutput,
  percentile,
  spread,
} from "../bench/stats.js";

describe("gRPC framing", () => {
  it("prefixes a message with flag 0 and its big-endian length, and reads it back", () => {
    const frame = grpcFrame(new Uint8Array([8, 1]));
    expect([...frame]).toEqual([0, 0, 0, 0, 2, 8, 1]);
    const two = Buffer.concat([frame, grpcFrame(new Uint8Array(300).fill(7))]);
    const messages = grpcMessages(two);
    expect(messages.map((m) => m.length)).toEqual([2, 300]);
    expect(grpcMessages(grpcFrame(new Uint8Array(0)))).toEqual([Buffer.alloc(0)]);
  });

  it("refuses truncated and compressed frames", () => {
    expect(() => grpcMessages(Buffer.from([0, 0, 0]))).toThrow(/truncated/);
    expect(() => grpcMessages(Buffer.from([0, 0, 0, 0, 5, 1]))).toThrow(/truncated/);
    expect(() => grpcMessages(Buffer.from([1, 0, 0, 0, 0]))).toThrow(/compressed/);
  });
});

describe("percentiles and spreads", () => {
  it("takes the nearest rank", () => {
    const sorted = Array.from({ length: 100 }, (_, i) => i + 1);
    expect(percentile(sorted, 50)).toBe(50);
    expect(percentile(sorted, 99)).toBe(99);
    expect(percentile(sorted, 100)).toBe(100);
    expect(percentile([7], 99)).toBe(7);
    expect(percentile([], 50)).toBeNaN();
    expect(latencySummary([5, 1, 3])).toEqual({ p50: 3, p99: 5, n: 3 });
  });

  it("gives median, min and max of repetitions, ignoring runs that measured nothing", () => {
    expect(spread([3, 1, 2])).toEqual({ median: 2, min: 1, max: 3 });
    expect(spread([4, 1, 2, 3])).toEqual({ median: 2.5, min: 1, max: 4 });
    expect(spread([Number.NaN, 5])).toEqual({ median: 5, min: 5, max: 5 });
    expect(spread([]).median).toBeNaN();
  });
});

describe("h2load output", () => {
  it("reads the rate and the request counts", () => {
    const out = `finished in 3.00s, 18234.40 req/s, 1.20MB/s
requests: 54703 total, 54703 started, 54703 done, 54703 succeeded, 0 failed, 0 errored, 0 timeout`;
    expect(parseH2loadOutput(out)).toEqual({
      reqPerSec: 18234.4,
      total: 54703,
      succeeded: 54703,
      failed: 0,
      errored: 0,
    });
    expect(() => parseH2loadOutput("nonsense")).toThrow(/cannot read/);
  });

  it("reads response times of successful requests from a log file", () => {
    expect(parseH2loadLog("1700000000000000\t200\t95\n1700000000000100\t503\t40\n\n")).toEqual([
      95,
    ]);
  });
});

describe("figures read from the sidecar's /metrics", () => {
  const scrape = (sum: number, count: number, commits: number, calls: number) =>
    [
      `govd_call_duration_seconds_sum{lever="risk",rpc="Reserve"} ${sum}`,
      `govd_call_duration_seconds_count{lever="risk",rpc="Reserve"} ${count}`,
      `govd_call_duration_seconds_sum{lever="risk",rpc="Settle"} 99`,
      `govd_store_commits_total ${commits}`,
      `govd_store_committed_calls_total ${calls}`,
    ].join("\n");

  it("takes the mean call time and the calls per commit between two scrapes", () => {
    const before = scrape(0.5, 1000, 40, 900);
    const after = scrape(0.75, 2000, 50, 1140);
    expect(meanCallUs(before, after, "risk", "Reserve")).toBeCloseTo(250, 6);
    expect(callsPerCommit(before, after)).toBe(24);
  });
});

describe("the issue's targets", () => {
  const memory: MemoryRun = {
    decisions: { first: 100_000, total: 1_000_000 },
    startRssMb: 80,
    afterFirstMb: 90,
    afterTotalMb: 99.1,
    growth: 99.1 / 90 - 1,
    peakMb: 100,
  };
  const median = (m: number) => ({ median: m, min: m, max: m, unit: "", tool: "", label: "" });

  it("judges each on the medians, a ratio or latency at its bound counting as met", () => {
    const figures = {
      "cgl.h2load.ratio": median(0.5),
      "rs.node.ratio": median(0.349),
      "rs.node.reserve.p50": median(300),
      // The one-at-a-time bound is the median of each repetition's ratio to the ceiling run
      // just before it, not the ratio of the medians (300 / 100 = 3 here).
      "ceiling.node.p50": median(100),
      "rs.node.reserve.ratio": median(1.6),
      "pg.off.p50": median(600),
      "pg.on.p50": median(599),
    };
    const byName = new Map(issueTargets(figures, 121, memory).map((t) => [t.name, t]));
    const target = (prefix: string) => [...byName.values()].find((t) => t.name.startsWith(prefix));
    expect(target("CheckGoLive saturated")?.met).toBe(true);
    expect(target("Reserve+Settle saturated")?.met).toBe(false);
    expect(target("Reserve one at a time p50")?.met).toBe(true);
    expect(target("sidecar Reserve p50 <= 1/2 PostgreSQL p50 (synchronous_commit=off")?.met).toBe(
      true,
    );
    expect(target("sidecar Reserve p50 <= 1/2 PostgreSQL p50 (synchronous_commit=on")?.met).toBe(
      false,
    );
    expect(target("peak RSS")?.met).toBe(false);
    // 10.1% growth is over the 10% bound; a figure not measured is never met.
    expect(target("RSS after 1,000,000 decisions")?.met).toBe(false);
    expect(target("RecordKpi saturated")?.met).toBe(false);
  });
});
