import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { launcherNodeFlags } from "../bench/processes.js";
import { DenyReason, ExecutionClass } from "../gen/governance/v1/common_pb.js";
import { GoLiveService } from "../gen/governance/v1/golive_pb.js";
import { HeimdallService } from "../gen/governance/v1/heimdall_pb.js";
import {
  RegressionService,
  TripwireAction,
  TripwireStatus,
} from "../gen/governance/v1/regression_pb.js";
import { RiskService } from "../gen/governance/v1/risk_pb.js";
import { type Caller, connectJsonCaller, grpcCaller } from "./support/callers.js";
import { freePort, type Program, startProgram, waitForOk } from "./support/program.js";

const dir = mkdtempSync(join(tmpdir(), "govd-program-"));
let program: Program;
let grpc: Caller;
let connect: Caller;
let token: string;
let n = 0;
const cid = () => `wf-${++n}`;

beforeAll(async () => {
  const [grpcPort, httpPort] = [await freePort(), await freePort()];
  program = startProgram("npm", ["start"], {
    GOVD_DATA_DIR: dir,
    GOVD_GRPC_PORT: String(grpcPort),
    GOVD_HTTP_PORT: String(httpPort),
  });
  // npm start compiles first: two tsc runs, slow when the suite's other files load both cores.
  // The wait ends before the hook's own timeout, so a failure shows the program's output.
  await waitForOk(`http://127.0.0.1:${httpPort}/readyz`, 170_000, program);
  grpc = grpcCaller(`127.0.0.1:${grpcPort}`);
  connect = connectJsonCaller(`http://127.0.0.1:${httpPort}`);
  token = readFileSync(join(dir, "admin.token"), "utf8").trim();
}, 180_000);

afterAll(async () => {
  grpc?.close();
  program?.signal("SIGKILL");
  rmSync(dir, { recursive: true, force: true });
});

describe("npm start, driven like an engine and an operator would", () => {
  it("creates the store and a private operator token on first start", () => {
    expect(statSync(join(dir, "sidecar.db")).isFile()).toBe(true);
    expect(statSync(join(dir, "admin.token")).mode & 0o777).toBe(0o600);
    // The store and its WAL are the owner's alone, like the token.
    for (const f of ["sidecar.db", "sidecar.db-wal", "sidecar.db-shm"]) {
      expect(statSync(join(dir, f)).mode & 0o777, f).toBe(0o600);
    }
    expect(token.length).toBeGreaterThanOrEqual(32);
  });

  it("runs with the launcher's bounded V8 heap, the same flags as the installed govd bin", async () => {
    const pkg = JSON.parse(readFileSync("package.json", "utf8")) as { scripts: { start: string } };
    const startFlags = /&& node ((?:--\S+ )*)dist\/src\/cli\/govd\.js serve$/.exec(
      pkg.scripts.start,
    );
    expect(startFlags?.[1]?.trim().split(" ")).toEqual(launcherNodeFlags("serve"));
    expect(launcherNodeFlags("serve")).toContain("--max-old-space-size=96");
    // /readyz answers as soon as the ports listen; the serving line may reach the pipe later.
    const deadline = Date.now() + 10_000;
    while (!program.output().includes("heapLimitMb") && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
    }
    const serving = /"heapLimitMb":(\d+)/.exec(program.output());
    // 96 MB of old space and three 2 MB semi-spaces; Node's default here is over 2,000 MB.
    expect(Number(serving?.[1])).toBeGreaterThanOrEqual(96);
    expect(Number(serving?.[1])).toBeLessThanOrEqual(110);
  });

  it("runs a full engine workflow until a tripwire trips", async () => {
    const admin = { token };
    const check = await grpc.call(GoLiveService, "checkGoLive", {
      executionClass: ExecutionClass.PROD_EXEC,
    });
    expect(check.reason).toBe(DenyReason.GO_LIVE_DISABLED);
    await connect.call(
      GoLiveService,
      "enable",
      { actor: "ops", reason: "launch", correlationId: cid() },
      admin,
    );
    expect(
      (await grpc.call(GoLiveService, "checkGoLive", { executionClass: ExecutionClass.PROD_EXEC }))
        .allowed,
    ).toBe(true);

    const r = await grpc.call(RiskService, "reserve", {
      engine: "WHOLESALE",
      amount: "250.00",
      correlationId: cid(),
    });
    expect(r.allowed).toBe(true);
    await grpc.call(RiskService, "settle", {
      reservationId: r.reservationId,
      realizedLoss: "10.00",
      correlationId: cid(),
    });

    await connect.call(
      HeimdallService,
      "upsertPolicy",
      {
        domain: "WHOLESALE_OFFER",
        minConfidenceProd: 0.9,
        minSandboxTrials: 3,
        minSandboxSuccessRate: 0.6,
        prodUseEnabled: true,
        actor: "ops",
        reason: "promote",
        correlationId: cid(),
      },
      admin,
    );
    for (const success of [true, true, false, true]) {
      await grpc.call(HeimdallService, "recordSandboxTrial", {
        domain: "WHOLESALE_OFFER",
        success,
        confidence: 0.93,
        correlationId: cid(),
      });
    }
    const rec = await grpc.call(HeimdallService, "recommend", {
      domain: "WHOLESALE_OFFER",
      confidence: 0.95,
      recommendationJson: '{"offer":"o-1","price":"1200.00"}',
      correlationId: cid(),
    });
    expect(rec.prodEligible).toBe(true);
    const req = await grpc.call(HeimdallService, "requireProdEligible", {
      recommendationId: rec.recommendationId,
      correlationId: cid(),
    });
    expect(req.allowed).toBe(true);

    await connect.call(
      RegressionService,
      "upsertPolicy",
      {
        domain: "WHOLESALE",
        metric: "contract_rate",
        windowEvents: 50,
        baselineEvents: 200,
        maxDropFraction: 0.2,
        action: TripwireAction.THROTTLE,
        throttleTargets: ["WHOLESALE", "WHOLESALE_OFFER"],
        enabled: true,
        actor: "ops",
        reason: "arm",
        correlationId: cid(),
      },
      admin,
    );
    let tripped = false;
    let events = 0;
    // 250 events at a 90% success rate, then failures until the wire trips.
    while (!tripped && events < 400) {
      const success = events < 250 ? events % 10 !== 0 : false;
      const res = await grpc.call(RegressionService, "recordKpi", {
        domain: "WHOLESALE",
        metric: "contract_rate",
        success,
        value: success ? 1 : 0,
        correlationId: cid(),
      });
      tripped = res.trippedNow;
      events++;
    }
    expect(tripped).toBe(true);
    expect(events).toBeGreaterThan(250);
    const state = await connect.call(RegressionService, "getState", { domain: "WHOLESALE" });
    expect(state.states.find((x) => x.metric === "contract_rate")?.status).toBe(
      TripwireStatus.TRIPPED,
    );
    const denied = await grpc.call(RiskService, "reserve", {
      engine: "WHOLESALE",
      amount: "1",
      correlationId: cid(),
    });
    expect(denied.reason).toBe(DenyReason.TRIPWIRE_THROTTLED);
    const again = await grpc.call(HeimdallService, "requireProdEligible", {
      recommendationId: rec.recommendationId,
      correlationId: cid(),
    });
    expect(again.reason).toBe(DenyReason.TRIPWIRE_THROTTLED);
  });

  it("answers curl-style Connect JSON with every field, defaults included", async () => {
    const res = await fetch(connectUrl("/governance.v1.GoLiveService/CheckGoLive"), {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ executionClass: "EXECUTION_CLASS_EXEMPT" }),
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({
      allowed: true,
      reason: "DENY_REASON_UNSPECIFIED",
      stalenessMs: "0",
    });
  });

  it("shuts down cleanly on SIGTERM and leaves a verifiable audit trail", async () => {
    grpc.close();
    // npm passes SIGTERM on to the sidecar; the sidecar logs each step of its shutdown.
    program.signal("SIGTERM");
    const deadline = Date.now() + 10_000;
    while (!/store closed/.test(program.output()) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(program.output()).toMatch(/shutting down: finishing in-flight calls[\s\S]*store closed/);
    await program.exited;
    const verify = execFileSync("node", [
      "dist/src/cli/govd.js",
      "audit",
      "verify",
      "--data-dir",
      dir,
    ]).toString();
    expect(verify).toMatch(/audit chain intact: \d+ events/);
  });
});

function connectUrl(path: string): string {
  const m = /"http":"127\.0\.0\.1:(\d+)"/.exec(program.output());
  return `http://127.0.0.1:${m?.[1]}${path}`;
}
