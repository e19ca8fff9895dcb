/** /metrics on the HTTP port and the debug call log. */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { Code } from "@connectrpc/connect";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { metricSample } from "../bench/stats.js";
import { GoLiveService } from "../gen/governance/v1/golive_pb.js";
import { RegressionService } from "../gen/governance/v1/regression_pb.js";
import { RiskService } from "../gen/governance/v1/risk_pb.js";
import { ManualClock } from "../src/clock.js";
import { createSidecar } from "../src/server/sidecar.js";
import { migrateTo, openDatabase } from "../src/store/database.js";
import { grpcCaller } from "./support/callers.js";
import { rejects } from "./support/expect-error.js";
import { enableGoLive, type RunningSidecar, startSidecar, T0, TOKEN } from "./support/sidecar.js";

async function scrape(url: string): Promise<string> {
  const res = await fetch(`${url}/metrics`);
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toMatch(/^text\/plain/);
  return res.text();
}

const sample = metricSample;

describe("/metrics", () => {
  let s: RunningSidecar;
  beforeAll(async () => {
    s = await startSidecar();
  });
  afterAll(() => s.stop());

  it("counts decisions by lever, RPC, outcome and reason, and times them", async () => {
    await s.grpc.call(RiskService, "reserve", {
      engine: "WHOLESALE",
      amount: "5.00",
      correlationId: "m-1",
    });
    await enableGoLive(s.grpc);
    await s.grpc.call(RiskService, "reserve", {
      engine: "WHOLESALE",
      amount: "5.00",
      correlationId: "m-2",
    });
    await s.connect.call(RiskService, "reserve", {
      engine: "WHOLESALE",
      amount: "7.50",
      correlationId: "m-3",
    });
    await expect(
      s.grpc.call(RiskService, "reserve", {
        engine: "WHOLESALE",
        amount: "-1",
        correlationId: "m-4",
      }),
    ).rejects.toThrow();
    const text = await scrape(s.httpUrl);
    const reserve = { lever: "risk", rpc: "Reserve" };
    expect(
      sample(text, "govd_decisions_total", {
        ...reserve,
        outcome: "denied",
        reason: "GO_LIVE_DISABLED",
      }),
    ).toBe(1);
    expect(
      sample(text, "govd_decisions_total", { ...reserve, outcome: "allowed", reason: "NONE" }),
    ).toBe(2);
    expect(sample(text, "govd_rpc_calls_total", { ...reserve, code: "OK" })).toBe(3);
    expect(sample(text, "govd_rpc_calls_total", { ...reserve, code: "InvalidArgument" })).toBe(1);
    expect(sample(text, "govd_call_duration_seconds_count", reserve)).toBe(4);
    expect(
      sample(text, "govd_call_duration_seconds_bucket", { ...reserve, le: "0.00001" }),
    ).toBeDefined();
    expect(
      sample(text, "govd_call_duration_seconds_bucket", { ...reserve, le: "0.01" }),
    ).toBeGreaterThan(0);
  });

  it("reads ledger, go-live, tripwire and revision gauges from the store on scrape", async () => {
    const text = await scrape(s.httpUrl);
    expect(
      sample(text, "govd_risk_ledger_used", { engine: "WHOLESALE", dimension: "exposure" }),
    ).toBe(12.5);
    expect(
      sample(text, "govd_risk_ledger_used", { engine: "WHOLESALE", dimension: "open_risk" }),
    ).toBe(12.5);
    expect(sample(text, "govd_risk_ledger_used", { engine: "GLOBAL", dimension: "actions" })).toBe(
      2,
    );
    expect(
      sample(text, "govd_risk_ledger_remaining", { engine: "WHOLESALE", dimension: "exposure" }),
    ).toBe(987.5);
    expect(sample(text, "govd_golive_enabled")).toBe(1);
    expect(sample(text, "govd_kill_switch_engaged")).toBe(0);
    expect(
      sample(text, "govd_tripwire_tripped", { domain: "WHOLESALE", metric: "contract_rate" }),
    ).toBe(0);
    expect(
      sample(text, "govd_tripwire_drop_ratio", { domain: "CAPITAL", metric: "roi_event" }),
    ).toBe(0);
    expect(
      sample(text, "govd_tripwire_status", {
        domain: "CAPITAL",
        metric: "roi_event",
        status: "DISABLED",
      }),
    ).toBe(1);
    expect(
      sample(text, "govd_tripwire_status", {
        domain: "CAPITAL",
        metric: "roi_event",
        status: "OK",
      }),
    ).toBeUndefined();
    const revision = sample(text, "govd_policy_revision") ?? 0;
    await s.grpc.call(
      GoLiveService,
      "engageKillSwitch",
      { actor: "ops", correlationId: "k-1" },
      { token: TOKEN },
    );
    const after = await scrape(s.httpUrl);
    expect(sample(after, "govd_kill_switch_engaged")).toBe(1);
    expect(sample(after, "govd_policy_revision")).toBeGreaterThan(revision);
  });

  it("uses a registry per sidecar: no default process metrics, no counts from another sidecar", async () => {
    const other = await startSidecar();
    try {
      const text = await scrape(other.httpUrl);
      expect(text).not.toMatch(/^process_cpu/m);
      expect(
        sample(text, "govd_decisions_total", { lever: "risk", rpc: "Reserve", outcome: "allowed" }),
      ).toBeUndefined();
    } finally {
      await other.stop();
    }
  });

  it("counts shared commits and the calls they carried", async () => {
    const before = await scrape(s.httpUrl);
    const commits = sample(before, "govd_store_commits_total", {}) ?? 0;
    const calls = sample(before, "govd_store_committed_calls_total", {}) ?? 0;
    // Eight Reserves sent together share commits; a denial is answered after one too.
    await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        s.grpc.call(RiskService, "reserve", {
          engine: "NOTIFY",
          amount: "0.01",
          correlationId: `m-commit-${i}`,
        }),
      ),
    );
    const after = await scrape(s.httpUrl);
    const newCommits = (sample(after, "govd_store_commits_total", {}) ?? 0) - commits;
    const newCalls = (sample(after, "govd_store_committed_calls_total", {}) ?? 0) - calls;
    expect(newCalls).toBe(8);
    expect(newCommits).toBeGreaterThanOrEqual(1);
    expect(newCommits).toBeLessThanOrEqual(8);
  });
});

describe("call log", () => {
  it("logs correlation_id, actor and decision of each call at debug level, never the token", async () => {
    const lines: Record<string, unknown>[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const l of chunk.toString().split("\n").filter(Boolean)) lines.push(JSON.parse(l));
        done();
      },
    });
    const dir = mkdtempSync(join(tmpdir(), "govd-log-"));
    const db = openDatabase(join(dir, "sidecar.db"));
    migrateTo(db);
    const sidecar = createSidecar({
      db,
      clock: new ManualClock(T0),
      token: TOKEN,
      storeFile: join(dir, "sidecar.db"),
      logger: pino({ level: "debug" }, sink),
    });
    const bound = await sidecar.listen();
    const grpc = grpcCaller(`127.0.0.1:${bound.grpcPort}`);
    try {
      await grpc.call(RiskService, "reserve", {
        engine: "WHOLESALE",
        amount: "1.00",
        actor: "engine-7",
        correlationId: "log-1",
      });
      await grpc.call(
        RegressionService,
        "upsertPolicy",
        {
          domain: "X",
          metric: "y",
          windowEvents: 1,
          baselineEvents: 1,
          maxDropFraction: 0.5,
          action: 1,
          actor: "alice",
          reason: "r",
          correlationId: "log-2",
        },
        { token: TOKEN },
      );
      await new Promise((r) => setTimeout(r, 50));
      const calls = lines.filter((l) => l.msg === "call");
      expect(calls[0]).toMatchObject({
        level: 20,
        rpc: "governance.v1.RiskService/Reserve",
        correlation_id: "log-1",
        actor: "engine-7",
        decision: "denied:GO_LIVE_DISABLED",
      });
      expect(calls[1]).toMatchObject({ correlation_id: "log-2", actor: "alice", decision: "ok" });
      expect(JSON.stringify(lines)).not.toContain(TOKEN);
    } finally {
      grpc.close();
      await sidecar.close();
      db.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("warm-up", () => {
  /** Request types whose rules a fresh sidecar first compiled during a call: one bad Reserve. */
  async function compiledOnCall(warmUp: boolean): Promise<number> {
    const s = await startSidecar({ warmUp });
    try {
      // A request that breaks a rule goes to protovalidate, which compiles a type on first use.
      await rejects(
        s.grpc.call(RiskService, "reserve", {
          engine: "WHOLESALE",
          amount: "-1",
          correlationId: "w-1",
        }),
        Code.InvalidArgument,
        /amount/,
      );
      return s.sidecar.rulesCompiledOnCall();
    } finally {
      await s.stop();
    }
  }

  it("compiles the validation rules before ready, so no call pays for it", async () => {
    expect(await compiledOnCall(true)).toBe(0);
    expect(await compiledOnCall(false)).toBe(1);
  });
});
