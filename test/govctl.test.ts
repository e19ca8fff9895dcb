/** govctl as a process against a real sidecar on port 0: every command, JSON, exit codes. */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RiskService } from "../gen/governance/v1/risk_pb.js";
import { govctl, govctlFor } from "./support/govctl.js";
import { freePort } from "./support/program.js";
import { type RunningSidecar, startSidecar, TOKEN } from "./support/sidecar.js";

let s: RunningSidecar;
let run: ReturnType<typeof govctlFor>;

beforeAll(async () => {
  s = await startSidecar();
  run = govctlFor(s);
});
afterAll(() => s.stop());

function expectOneLineError(r: { stdout: string; stderr: string }, text: RegExp) {
  expect(r.stderr.trim().split("\n")).toHaveLength(1);
  expect(r.stderr).toMatch(text);
  expect(r.stderr).not.toMatch(/^\s+at /m); // no stack trace
  expect(r.stdout + r.stderr).not.toContain(TOKEN);
}

describe("govctl golive and killswitch", () => {
  it("shows state and checklist as a table and as JSON", async () => {
    const table = await run("golive", "state");
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/go-live:\s+disabled/);
    const json = await run("--json", "golive", "checklist");
    expect(json.code).toBe(0);
    const body = JSON.parse(json.stdout) as { ready: boolean; checks: { name: string }[] };
    expect(body.ready).toBe(true);
    expect(body.checks.length).toBeGreaterThan(3);
  });

  it("enables, engages and releases the kill switch, disables, with the token from the data dir", async () => {
    expect((await run("golive", "enable", "--reason", "launch")).stdout).toMatch(
      /go-live:\s+ENABLED/,
    );
    const engaged = await run("killswitch", "engage", "--reason", "drill");
    expect(engaged.code).toBe(0);
    expect(engaged.stdout).toMatch(/kill switch:\s+ENGAGED/);
    const state = JSON.parse((await run("golive", "state", "--json")).stdout) as {
      state: { killSwitchEngaged: boolean; changedBy: string };
    };
    expect(state.state).toMatchObject({ killSwitchEngaged: true, changedBy: "test-ops" });
    expect((await run("killswitch", "release", "--reason", "drill over")).stdout).toMatch(
      /kill switch:\s+released/,
    );
    expect((await run("golive", "disable")).stdout).toMatch(/go-live:\s+disabled/);
  });

  it("refuses release without --reason as a usage error (exit 2)", async () => {
    const r = await run("killswitch", "release");
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--reason/);
  });
});

describe("govctl risk, heimdall, regression", () => {
  it("lists, upserts (keeping what is not given), shows the ledger and events", async () => {
    const policies = await run("risk", "policies");
    expect(policies.stdout).toMatch(/WHOLESALE\s+200(\.00)?\s+1000(\.00)?/);
    const up = await run(
      "risk",
      "upsert",
      "WHOLESALE",
      "--max-daily-exposure",
      "1200.00",
      "--reason",
      "volume",
    );
    expect(up.code).toBe(0);
    const after = JSON.parse((await run("--json", "risk", "policies")).stdout) as {
      policies: { engine: string; maxDailyExposure: string; maxDailyLoss: string }[];
    };
    const w = after.policies.find((p) => p.engine === "WHOLESALE");
    expect(Number(w?.maxDailyExposure)).toBe(1200);
    expect(Number(w?.maxDailyLoss)).toBe(200);

    await s.grpc.call(RiskService, "reserve", {
      engine: "NOBODY",
      amount: "1.00",
      correlationId: "g-1",
    });
    const events = await run("risk", "events", "--engine", "NOBODY");
    expect(events.stdout).toMatch(/DENY.*GO_LIVE_DISABLED|DENY.*UNKNOWN_ENGINE/);
    const ledger = await run("risk", "ledger");
    expect(ledger.stdout).toMatch(/^day 2026-03-02/);
    expect(ledger.stdout).toMatch(/GLOBAL/);
  });

  it("asks for every cap of a new engine (exit 2) and names an invalid field (exit 1)", async () => {
    const missing = await run("risk", "upsert", "NEWBIE", "--max-daily-loss", "1", "--reason", "x");
    expect(missing.code).toBe(2);
    expectOneLineError(missing, /--max-daily-exposure/);
    const bad = await run("risk", "upsert", "WHOLESALE", "--max-daily-loss", "-3", "--reason", "x");
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--max-daily-loss must be a decimal/);
    const server = await run(
      "risk",
      "upsert",
      "lower_case",
      "--reason",
      "x",
      "--max-daily-loss",
      "1",
      "--max-daily-exposure",
      "1",
      "--max-open-risk",
      "1",
      "--max-actions-per-day",
      "1",
    );
    expect(server.code).toBe(1);
    expectOneLineError(server, /invalid value.*engine/);
  });

  it("runs the heimdall commands", async () => {
    expect((await run("heimdall", "policies")).stdout).toMatch(/BUYER_MATCH\s+0\.9/);
    const up = await run(
      "heimdall",
      "upsert",
      "BUYER_MATCH",
      "--min-sandbox-trials",
      "40",
      "--reason",
      "faster",
    );
    expect(up.code).toBe(0);
    expect(up.stdout).toMatch(/min trials 40/);
    const card = await run("--json", "heimdall", "scorecard");
    expect(JSON.parse(card.stdout)).toHaveProperty("day", "2026-03-02");
  });

  it("runs the regression commands; reset of a wire that is not tripped is refused (exit 1)", async () => {
    expect((await run("regression", "policies")).stdout).toMatch(/WHOLESALE\/contract_rate/);
    const up = await run(
      "regression",
      "upsert",
      "WHOLESALE",
      "contract_rate",
      "--enabled",
      "--reason",
      "arm",
    );
    expect(up.code).toBe(0);
    expect(up.stdout).toMatch(/ENABLED/);
    expect((await run("regression", "state")).stdout).toMatch(
      /WHOLESALE\/contract_rate\s+INSUFFICIENT_DATA/,
    );
    expect((await run("regression", "evaluate")).stdout).toMatch(/tripped now: none/);
    const reset = await run("regression", "reset", "WHOLESALE", "contract_rate", "--reason", "x");
    expect(reset.code).toBe(1);
    expectOneLineError(reset, /not tripped/);
  });

  it("sets a sequential dry-run wire and a Wilson-bound gate, keeping the other fields, and lists tripwire events", async () => {
    const seq = await run(
      "regression",
      "upsert",
      "BUYER_MATCH",
      "match_success",
      "--method",
      "sequential",
      "--dry-run",
      "--baseline-rate",
      "0.9",
      "--enabled",
      "--reason",
      "try CUSUM",
    );
    expect(seq.code, seq.stderr).toBe(0);
    expect(seq.stdout).toMatch(/SEQUENTIAL \(dry run\), window 50, baseline 200/);
    const state = await run("regression", "state", "--domain", "BUYER_MATCH");
    expect(state.stdout).toMatch(/BUYER_MATCH\/match_success\s+\S+\s+SEQUENTIAL \(dry run\)/);
    expect(
      (
        await run(
          "regression",
          "upsert",
          "BUYER_MATCH",
          "match_success",
          "--method",
          "cusum",
          "--reason",
          "x",
        )
      ).stderr,
    ).toMatch(/--method must be one of relative_drop, sequential/);
    const events = await run("--json", "regression", "events", "--domain", "BUYER_MATCH");
    const body = JSON.parse(events.stdout) as { events: { metric: string; actor: string }[] };
    expect(body.events.some((e) => e.metric === "match_success" && e.actor === "test-ops")).toBe(
      true,
    );
    const gate = await run(
      "heimdall",
      "upsert",
      "CAPITAL_ROUTE",
      "--success-rate-bound",
      "wilson_lower",
      "--reason",
      "stricter",
    );
    expect(gate.code, gate.stderr).toBe(0);
    expect(gate.stdout).toMatch(/min trials 100, min success 0\.85 \(WILSON_LOWER\)/);
  });
});

describe("govctl exit codes", () => {
  it("exits 3 when nothing listens at --addr", async () => {
    const port = await freePort();
    const r = await govctl(["--addr", `127.0.0.1:${port}`, "--timeout", "1", "golive", "state"]);
    expect(r.code).toBe(3);
    expectOneLineError(r, /server unreachable/);
  });

  it("exits 4 without a token or with a wrong one, and never prints the token", async () => {
    const empty = mkdtempSync(join(tmpdir(), "govctl-"));
    const none = await govctl(["--addr", s.grpcAddress, "--data-dir", empty, "golive", "disable"]);
    expect(none.code).toBe(4);
    expectOneLineError(none, /no operator token/);
    const wrong = join(empty, "wrong.token");
    writeFileSync(wrong, "not-the-token\n");
    const rejected = await govctl([
      "--addr",
      s.grpcAddress,
      "--token-file",
      wrong,
      "golive",
      "disable",
    ]);
    expect(rejected.code).toBe(4);
    expectOneLineError(rejected, /not authenticated/);
    const viaEnv = await govctl(
      ["--addr", s.grpcAddress, "--data-dir", empty, "golive", "disable"],
      {
        GOVD_ADMIN_TOKEN: TOKEN,
      },
    );
    expect(viaEnv.code).toBe(0);
    expect(viaEnv.stdout).not.toContain(TOKEN);
  });

  it("exits 2 on an unknown command and 0 on --help of every command, each with an example", async () => {
    expect((await run("nope")).code).toBe(2);
    const commands = [
      [],
      ["golive"],
      ["golive", "state"],
      ["golive", "checklist"],
      ["golive", "enable"],
      ["golive", "disable"],
      ["killswitch", "engage"],
      ["killswitch", "release"],
      ["risk", "policies"],
      ["risk", "upsert"],
      ["risk", "ledger"],
      ["risk", "events"],
      ["heimdall", "policies"],
      ["heimdall", "upsert"],
      ["heimdall", "scorecard"],
      ["regression", "policies"],
      ["regression", "upsert"],
      ["regression", "state"],
      ["regression", "evaluate"],
      ["regression", "events"],
      ["regression", "reset"],
      ["review"],
    ];
    const helps = await Promise.all(commands.map((c) => govctl([...c, "--help"])));
    helps.forEach((h, i) => {
      expect(h.code, commands[i]?.join(" ")).toBe(0);
      expect(h.stdout, commands[i]?.join(" ")).toMatch(/Example/);
    });
  });
});
