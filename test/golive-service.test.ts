import { Code } from "@connectrpc/connect";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { DenyReason, ExecutionClass } from "../gen/governance/v1/common_pb.js";
import { GoLiveService } from "../gen/governance/v1/golive_pb.js";
import { RiskService } from "../gen/governance/v1/risk_pb.js";
import { rejects } from "./support/expect-error.js";
import { type RunningSidecar, startSidecar, TOKEN } from "./support/sidecar.js";

let s: RunningSidecar;
beforeEach(async () => {
  s = await startSidecar();
});
afterEach(async () => {
  await s.stop();
});

let n = 0;
const cid = () => `g-${++n}`;
const who = () => ({ actor: "alice", reason: "weekly review", correlationId: cid() });

describe.each(["grpc", "connect-json"])("GoLiveService over %s", (port) => {
  const caller = () => (port === "grpc" ? s.grpc : s.connect);
  const check = async (executionClass: ExecutionClass) =>
    caller().call(GoLiveService, "checkGoLive", { executionClass, engine: "WHOLESALE" });

  it("starts with the safest defaults and classifies actions", async () => {
    const { state } = await caller().call(GoLiveService, "getState", {});
    expect(state).toMatchObject({ goLiveEnabled: false, killSwitchEngaged: false, revision: 0n });
    expect((await check(ExecutionClass.EXEMPT)).allowed).toBe(true);
    expect((await check(ExecutionClass.PROD)).reason).toBe(DenyReason.GO_LIVE_DISABLED);
    expect((await check(ExecutionClass.PROD_EXEC)).reason).toBe(DenyReason.GO_LIVE_DISABLED);
  });

  it("needs the token, records the actor and reason, and bumps the revision", async () => {
    await rejects(caller().call(GoLiveService, "enable", who()), Code.Unauthenticated, /Bearer/);
    expect((await caller().call(GoLiveService, "getState", {})).state?.goLiveEnabled).toBe(false);
    const { state } = await caller().call(GoLiveService, "enable", who(), { token: TOKEN });
    expect(state).toMatchObject({
      goLiveEnabled: true,
      changedBy: "alice",
      reason: "weekly review",
      revision: 1n,
    });
    expect((await check(ExecutionClass.PROD_EXEC)).allowed).toBe(true);
    await caller().call(
      GoLiveService,
      "engageKillSwitch",
      { actor: "bob", correlationId: cid() },
      { token: TOKEN },
    );
    expect((await check(ExecutionClass.PROD)).allowed).toBe(true);
    const blocked = await check(ExecutionClass.PROD_EXEC);
    expect(blocked).toMatchObject({
      allowed: false,
      reason: DenyReason.KILL_SWITCH_ENGAGED,
      killSwitchEngaged: true,
    });
    expect((await check(ExecutionClass.EXEMPT)).allowed).toBe(true);
    await rejects(
      caller().call(
        GoLiveService,
        "releaseKillSwitch",
        { actor: "bob", correlationId: cid() },
        { token: TOKEN },
      ),
      Code.InvalidArgument,
      /reason/,
    );
    await caller().call(GoLiveService, "releaseKillSwitch", who(), { token: TOKEN });
    expect((await check(ExecutionClass.PROD_EXEC)).allowed).toBe(true);
    await caller().call(
      GoLiveService,
      "disable",
      { actor: "carol", correlationId: cid() },
      { token: TOKEN },
    );
    expect((await check(ExecutionClass.PROD)).reason).toBe(DenyReason.GO_LIVE_DISABLED);
  });

  it("refuses Enable naming the failing checks", async () => {
    await caller().call(
      RiskService,
      "upsertPolicy",
      {
        engine: "GLOBAL",
        maxDailyLoss: "250",
        maxDailyExposure: "1500",
        maxOpenRisk: "800",
        maxActionsPerDay: 10000,
        enabled: false,
        ...who(),
      },
      { token: TOKEN },
    );
    await caller().call(
      GoLiveService,
      "engageKillSwitch",
      { actor: "bob", correlationId: cid() },
      { token: TOKEN },
    );
    const checklist = await caller().call(GoLiveService, "getChecklist", {});
    expect(checklist.ready).toBe(false);
    expect(checklist.checks.filter((c) => !c.ok).map((c) => c.name)).toEqual([
      "global_risk_policy",
      "kill_switch_released",
    ]);
    await rejects(
      caller().call(GoLiveService, "enable", who(), { token: TOKEN }),
      Code.FailedPrecondition,
      /global_risk_policy.*kill_switch_released/,
    );
    expect((await caller().call(GoLiveService, "getState", {})).state?.goLiveEnabled).toBe(false);
  });

  it("rejects an unspecified execution class", async () => {
    await rejects(check(ExecutionClass.UNSPECIFIED), Code.InvalidArgument, /execution_class/);
  });
});
