/**
 * A sidecar following central, against a scripted SyncService on a real grpc-js server: the
 * snapshot and each change applied with the revision, decisions stamped with it, fail closed
 * before the first snapshot and past the staleness bound (readiness and health with them),
 * out-of-order, replayed and foreign-history changes refused without changing anything, local
 * operator writes refused, a change it cannot apply NACKed with a snapshot asked for at once,
 * a snapshot it can never apply asked for again with a growing backoff, a local trip reported
 * and held until central sends it back (a re-arm or release central made meanwhile taken once
 * it answers), and a silent stream dropped and watched again.
 */
import { create } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { DenyReason, ExecutionClass } from "../gen/governance/v1/common_pb.js";
import { GoLiveService } from "../gen/governance/v1/golive_pb.js";
import { RegressionService, TripwireAction } from "../gen/governance/v1/regression_pb.js";
import { RiskService } from "../gen/governance/v1/risk_pb.js";
import { type PolicySnapshot, PolicySnapshotSchema } from "../gen/governance/v1/sync_pb.js";
import { clientCredentials } from "../src/sync/tls/client-credentials.js";
import { eventually } from "./support/eventually.js";
import { rejects } from "./support/expect-error.js";
import { healthClient } from "./support/health-client.js";
import {
  chainedChange,
  type ScriptedCentral,
  startScriptedCentral,
} from "./support/scripted-central.js";
import { type RunningSidecar, startSidecar, TOKEN } from "./support/sidecar.js";

const DIGEST5 = "5".repeat(64);
const STALE_AFTER = 30_000;

function snapshot(revision = 5n, digest = DIGEST5): PolicySnapshot {
  return create(PolicySnapshotSchema, {
    revision,
    digest,
    goLive: { goLiveEnabled: true, killSwitchEngaged: false, changedBy: "ops", reason: "open" },
    riskPolicies: [
      {
        engine: "GLOBAL",
        maxDailyLoss: "250",
        maxDailyExposure: "1500",
        maxOpenRisk: "800",
        maxActionsPerDay: 10000,
        enabled: true,
      },
      {
        engine: "WHOLESALE",
        maxDailyLoss: "200",
        maxDailyExposure: "1000",
        maxOpenRisk: "500",
        maxActionsPerDay: 5000,
        enabled: true,
      },
    ],
    heimdallPolicies: [],
    regressionPolicies: [
      {
        domain: "CAPITAL",
        metric: "roi_event",
        windowEvents: 10,
        baselineEvents: 10,
        minEventsToEnforce: 20,
        maxDropFraction: 0.3,
        action: TripwireAction.KILL_SWITCH,
        enabled: true,
      },
    ],
    tripwireTrips: [],
  });
}

let central: ScriptedCentral;
let s: RunningSidecar;

async function check(cls: ExecutionClass) {
  return s.grpc.call(GoLiveService, "checkGoLive", { executionClass: cls });
}

async function ready(): Promise<number> {
  return (await fetch(`${s.httpUrl}/readyz`)).status;
}

beforeEach(async () => {
  central = await startScriptedCentral();
  s = await startSidecar({
    follow: {
      endpoints: [clientCredentials({ central: central.address, allowRemote: false })],
      sidecarId: "wholesale-1",
      engines: ["WHOLESALE"],
      staleAfterMs: STALE_AFTER,
      reconnectMs: 20,
      maxReconnectMs: 100,
    },
  });
  await eventually("the sidecar's Watch", () => central.openStreams() === 1);
});

afterEach(async () => {
  await s.stop();
  await central.close();
});

/** Records outcomes that trip the snapshot's KILL_SWITCH wire on this sidecar. */
async function tripLocally() {
  for (let i = 0; i < 30; i++) {
    await s.grpc.call(RegressionService, "recordKpi", {
      domain: "CAPITAL",
      metric: "roi_event",
      success: i < 10,
      value: 1,
    });
  }
}

/**
 * Trips the wire here while central holds back its answer to the report; returns what releases
 * the answer, naming `revision`.
 */
async function tripWithAnswerHeld(revision: bigint): Promise<() => void> {
  let answer = () => {};
  central.reportAnswer = new Promise<void>((resolve) => {
    answer = resolve;
  });
  central.reportRevision = revision;
  await tripLocally();
  await eventually("the trip report", () => central.reports[0]);
  return answer;
}

async function applySnapshot() {
  central.send({ case: "snapshot", value: snapshot() });
  await eventually("the snapshot's ack", () => central.acks.find((a) => a.revision === 5n));
}

describe("a sidecar following central", () => {
  it("allows nothing but EXEMPT and is not ready before the first snapshot", async () => {
    expect(central.watches[0]).toMatchObject({
      sidecarId: "wholesale-1",
      appliedRevision: 0n,
      engines: ["WHOLESALE"],
    });
    const prod = await check(ExecutionClass.PROD);
    expect(prod).toMatchObject({ allowed: false, reason: DenyReason.POLICY_STALE });
    expect(prod.message).toMatch(/has not received its policy yet/);
    expect((await check(ExecutionClass.EXEMPT)).allowed).toBe(true);
    expect(await ready()).toBe(503);
    const reserve = await s.grpc.call(RiskService, "reserve", {
      engine: "WHOLESALE",
      amount: "1.00",
      correlationId: "r-before",
    });
    expect(reserve).toMatchObject({ allowed: false, reason: DenyReason.POLICY_STALE });
  });

  it("applies the snapshot and each change with its revision, and stamps decisions with it", async () => {
    await applySnapshot();
    expect(central.acks[0]).toMatchObject({ sidecarId: "wholesale-1", digest: DIGEST5, error: "" });
    const open = await check(ExecutionClass.PROD_EXEC);
    expect(open).toMatchObject({ allowed: true, policyRevision: 5n, stalenessMs: 0n });
    expect(await ready()).toBe(200);
    const kill = chainedChange(DIGEST5, 6n, {
      case: "goLive",
      value: { goLiveEnabled: true, killSwitchEngaged: true, changedBy: "ops", reason: "stop" },
    });
    central.send({ case: "change", value: kill });
    await eventually("ack of 6", () => central.acks.find((a) => a.revision === 6n));
    expect(await check(ExecutionClass.PROD_EXEC)).toMatchObject({
      allowed: false,
      reason: DenyReason.KILL_SWITCH_ENGAGED,
      policyRevision: 6n,
    });
    s.clock.advance(1_500);
    expect((await check(ExecutionClass.PROD)).stalenessMs).toBe(1_500n);
  });

  it("refuses out-of-order, replayed and foreign-history changes, changing nothing", async () => {
    await applySnapshot();
    const six = chainedChange(DIGEST5, 6n, {
      case: "riskPolicy",
      value: {
        engine: "WHOLESALE",
        maxDailyLoss: "1",
        maxDailyExposure: "1",
        maxOpenRisk: "1",
        maxActionsPerDay: 1,
        enabled: true,
      },
    });
    // Out of order: 7 before 6.
    const seven = chainedChange(six.digest, 7n, {
      case: "goLive",
      value: { goLiveEnabled: false, killSwitchEngaged: false, changedBy: "ops", reason: "x" },
    });
    central.send({ case: "change", value: seven });
    const nack = await eventually("NACK of 7", () => central.acks.find((a) => a.revision === 7n));
    expect(nack.error).toMatch(/out of order, revision 6 comes next/);
    // The follower asks again from what it holds.
    await eventually(
      "a new Watch",
      () => central.watches.length === 2 && central.openStreams() === 1,
    );
    expect(central.watches[1]).toMatchObject({ appliedRevision: 5n, appliedDigest: DIGEST5 });
    expect(await check(ExecutionClass.PROD)).toMatchObject({ allowed: true, policyRevision: 5n });

    // In order: applied; the same change again is a replay and is ignored.
    central.send({ case: "change", value: six });
    await eventually("ack of 6", () => central.acks.find((a) => a.revision === 6n && !a.error));
    const policies = await s.grpc.call(RiskService, "listPolicies", {});
    expect(policies.policies.find((p) => p.engine === "WHOLESALE")?.maxDailyExposure).toBe("1.00");
    central.send({ case: "change", value: six });
    await new Promise((r) => setTimeout(r, 50));
    expect(central.acks.filter((a) => a.revision === 6n)).toHaveLength(1);

    // Another history: 7 that does not chain from this sidecar's 6.
    const foreign = chainedChange("f".repeat(64), 7n, seven.entity as never);
    central.send({ case: "change", value: foreign });
    const refused = await eventually("NACK of foreign 7", () =>
      central.acks.find((a) => a.revision === 7n && /digest/.test(a.error)),
    );
    expect(refused.error).toMatch(/central's history differs/);
    // It asks for a snapshot: applied revision 0.
    await eventually("a Watch asking for a snapshot", () =>
      central.watches.find((w, i) => i >= 2 && w.appliedRevision === 0n),
    );
    expect(await check(ExecutionClass.PROD)).toMatchObject({ allowed: true, policyRevision: 6n });
  });

  it("NACKs a change it cannot apply with the error, keeps deciding, and asks for a snapshot", async () => {
    await applySnapshot();
    // Well formed and chained, but this sidecar cannot apply it (an amount it cannot parse, as
    // a newer central's policy could be for an older sidecar).
    const bad = chainedChange(DIGEST5, 6n, {
      case: "riskPolicy",
      value: {
        engine: "WHOLESALE",
        maxDailyLoss: "lots",
        maxDailyExposure: "1",
        maxOpenRisk: "1",
        maxActionsPerDay: 1,
        enabled: true,
      },
    });
    // Central's next change right behind it: the stream that carried 6 is not followed any more
    // (taking 7 as a gap would ask again from revision 5, and so get 6 again, not a snapshot).
    const seven = chainedChange(bad.digest, 7n, {
      case: "goLive",
      value: { goLiveEnabled: true, killSwitchEngaged: false, changedBy: "ops", reason: "x" },
    });
    central.send({ case: "change", value: bad });
    central.send({ case: "change", value: seven });
    const nack = await eventually("NACK of 6", () => central.acks.find((a) => a.revision === 6n));
    expect(nack.error).toMatch(/could not apply revision 6 \(change\): .*max_daily_loss/);
    await eventually("a Watch asking for a snapshot", () =>
      central.watches.find((w, i) => i >= 1 && w.appliedRevision === 0n),
    );
    expect(central.watches.slice(1).map((w) => w.appliedRevision)).not.toContain(5n);
    // 7, already on its way when 6 failed, was not taken as a gap either (no NACK of it).
    expect(central.acks.filter((a) => a.revision === 7n)).toEqual([]);
    expect(await check(ExecutionClass.PROD)).toMatchObject({ allowed: true, policyRevision: 5n });
    const policies = await s.grpc.call(RiskService, "listPolicies", {});
    expect(policies.policies.find((p) => p.engine === "WHOLESALE")?.maxDailyLoss).toBe("200.00");

    await eventually("one open Watch", () => central.openStreams() === 1);
    central.send({ case: "snapshot", value: snapshot(7n, "7".repeat(64)) });
    await eventually("ack of 7", () => central.acks.find((a) => a.revision === 7n && !a.error));
    expect(await check(ExecutionClass.PROD)).toMatchObject({ allowed: true, policyRevision: 7n });
  });

  it("fails closed past the staleness bound, with readiness and health, and recovers on word from central", async () => {
    await applySnapshot();
    s.clock.advance(STALE_AFTER);
    expect((await check(ExecutionClass.PROD)).allowed).toBe(true);
    s.clock.advance(1);
    const stale = await check(ExecutionClass.PROD);
    expect(stale).toMatchObject({
      allowed: false,
      reason: DenyReason.POLICY_STALE,
      policyRevision: 5n,
    });
    expect(stale.message).toMatch(/not heard from for 30001 ms \(bound 30000 ms\)/);
    expect((await check(ExecutionClass.EXEMPT)).allowed).toBe(true);
    expect(await ready()).toBe(503);
    expect(await (await fetch(`${s.httpUrl}/readyz`)).text()).toMatch(/not heard from/);
    const health = healthClient(s.grpcAddress);
    expect(await health.check("")).toBe(2);
    central.send({ case: "heartbeat", value: { revision: 5n } });
    await eventually("fresh again", async () => (await check(ExecutionClass.PROD)).allowed);
    expect(await ready()).toBe(200);
    expect(await health.check("")).toBe(1);
    health.client.close();
  });

  it("refuses local operator writes and keeps reads", async () => {
    await applySnapshot();
    await rejects(
      s.grpc.call(
        GoLiveService,
        "engageKillSwitch",
        { actor: "ops", reason: "local" },
        { token: TOKEN },
      ),
      Code.FailedPrecondition,
      /follows central \(127\.0\.0\.1:\d+\): make .* changes there/,
    );
    await rejects(
      s.connect.call(
        RiskService,
        "upsertPolicy",
        {
          engine: "CAPITAL",
          maxDailyLoss: "1",
          maxDailyExposure: "1",
          maxOpenRisk: "1",
          maxActionsPerDay: 1,
          enabled: true,
          actor: "ops",
          reason: "local",
        },
        { token: TOKEN },
      ),
      Code.FailedPrecondition,
      /follows central/,
    );
    expect((await s.grpc.call(GoLiveService, "getState", {})).state?.killSwitchEngaged).toBe(false);
  });

  it("reports a local KILL_SWITCH trip to central and holds it until central sends it back", async () => {
    await applySnapshot();
    central.reportRevision = 9n;
    await tripLocally();
    const report = await eventually("the trip report", () => central.reports[0]);
    expect(report).toMatchObject({
      sidecarId: "wholesale-1",
      domain: "CAPITAL",
      metric: "roi_event",
      action: TripwireAction.KILL_SWITCH,
    });
    expect((await check(ExecutionClass.PROD_EXEC)).reason).toBe(DenyReason.KILL_SWITCH_ENGAGED);
    // Central's revision 6, from before it recorded the trip (at 9), says the switch is released:
    // the local trip holds.
    const six = chainedChange(DIGEST5, 6n, {
      case: "goLive",
      value: { goLiveEnabled: true, killSwitchEngaged: false, changedBy: "ops", reason: "old" },
    });
    central.send({ case: "change", value: six });
    await eventually("ack of 6", () => central.acks.find((a) => a.revision === 6n));
    expect((await check(ExecutionClass.PROD_EXEC)).reason).toBe(DenyReason.KILL_SWITCH_ENGAGED);
    // A snapshot at 9, where central re-armed nothing yet but released the switch: settled.
    central.send({
      case: "snapshot",
      value: snapshot(9n, "9".repeat(64)),
    });
    await eventually("ack of 9", () => central.acks.find((a) => a.revision === 9n));
    expect(await check(ExecutionClass.PROD_EXEC)).toMatchObject({
      allowed: true,
      policyRevision: 9n,
    });
    expect(central.reports).toHaveLength(1);
  });
});

describe("a re-arm from central that comes before central's answer to this sidecar's report", () => {
  it("is held while the report is unanswered and taken once central answers with an earlier revision", async () => {
    await applySnapshot();
    const answer = await tripWithAnswerHeld(6n);
    const trippedAt = async () =>
      (await s.grpc.call(RegressionService, "getState", { domain: "CAPITAL" })).states.find(
        (w) => w.metric === "roi_event",
      )?.trippedAt;
    expect(await trippedAt()).toBeDefined();
    // Central records the trip at 6 and an operator re-arms the wire at 7; this sidecar hears
    // both before the answer to its report.
    const six = chainedChange(DIGEST5, 6n, {
      case: "tripwireTrip",
      value: {
        domain: "CAPITAL",
        metric: "roi_event",
        tripped: true,
        action: TripwireAction.KILL_SWITCH,
        reason: "roi dropped",
        sidecarId: "wholesale-1",
      },
    });
    const seven = chainedChange(six.digest, 7n, {
      case: "tripwireTrip",
      value: { domain: "CAPITAL", metric: "roi_event", tripped: false },
    });
    central.send({ case: "change", value: six });
    central.send({ case: "change", value: seven });
    await eventually("ack of 7", () => central.acks.find((a) => a.revision === 7n && !a.error));
    expect(await trippedAt()).toBeDefined();
    // Answered at 6, before the re-arm: the re-arm is due.
    answer();
    await eventually("the wire armed again", async () => (await trippedAt()) === undefined);
  });
});

describe("a kill switch central released while this sidecar's own trip was unanswered", () => {
  it("is settled by a snapshot once central answers with an earlier revision", async () => {
    await applySnapshot();
    const answer = await tripWithAnswerHeld(6n);
    // Central: the trip (6), the fleet's kill switch (7), the wire re-armed (8) and the switch
    // released (9), all heard before the answer to the report: the local trip holds over them.
    const six = chainedChange(DIGEST5, 6n, {
      case: "tripwireTrip",
      value: { domain: "CAPITAL", metric: "roi_event", tripped: true, sidecarId: "wholesale-1" },
    });
    const seven = chainedChange(six.digest, 7n, {
      case: "goLive",
      value: { goLiveEnabled: true, killSwitchEngaged: true, changedBy: "tripwire", reason: "x" },
    });
    const eight = chainedChange(seven.digest, 8n, {
      case: "tripwireTrip",
      value: { domain: "CAPITAL", metric: "roi_event", tripped: false },
    });
    const nine = chainedChange(eight.digest, 9n, {
      case: "goLive",
      value: { goLiveEnabled: true, killSwitchEngaged: false, changedBy: "ops", reason: "fixed" },
    });
    for (const change of [six, seven, eight, nine]) central.send({ case: "change", value: change });
    await eventually("ack of 9", () => central.acks.find((a) => a.revision === 9n && !a.error));
    expect((await check(ExecutionClass.PROD_EXEC)).reason).toBe(DenyReason.KILL_SWITCH_ENGAGED);
    const watches = central.watches.length;
    // Answered at 6: what central said at 7-9 was overridden here, so the sidecar asks for a
    // snapshot, and central's released switch holds.
    answer();
    await eventually("a Watch asking for a snapshot", () =>
      central.watches.find((w, i) => i >= watches && w.appliedRevision === 0n),
    );
    await eventually("one open Watch", () => central.openStreams() === 1);
    central.send({ case: "snapshot", value: snapshot(9n, "9".repeat(64)) });
    await eventually("ack of the snapshot", () =>
      central.acks.find((a) => a.revision === 9n && a.digest === "9".repeat(64)),
    );
    expect(await check(ExecutionClass.PROD_EXEC)).toMatchObject({
      allowed: true,
      policyRevision: 9n,
    });
  });
});

describe("a snapshot the sidecar can never apply", () => {
  it("is NACKed each time and asked for again with a growing backoff, not many times a second", async () => {
    const stubborn = await startScriptedCentral();
    const follower = await startSidecar({
      follow: {
        endpoints: [clientCredentials({ central: stubborn.address, allowRemote: false })],
        sidecarId: "wholesale-3",
        engines: ["WHOLESALE"],
        staleAfterMs: STALE_AFTER,
        reconnectMs: 20,
        maxReconnectMs: 2_000,
      },
    });
    const bad = snapshot();
    bad.riskPolicies[0] = { ...(bad.riskPolicies[0] as PolicySnapshot["riskPolicies"][0]) };
    (bad.riskPolicies[0] as { maxDailyLoss: string }).maxDailyLoss = "lots";
    // Every Watch gets the same unappliable snapshot.
    let served = 0;
    const serve = setInterval(() => {
      if (stubborn.watches.length > served && stubborn.openStreams() === 1) {
        served = stubborn.watches.length;
        stubborn.send({ case: "snapshot", value: bad });
      }
    }, 5);
    try {
      await eventually("the first NACK", () => stubborn.acks.find((a) => a.error !== ""));
      await new Promise((r) => setTimeout(r, 1_500));
      // 20 ms doubled per refused snapshot: about 8 Watches in 1.5 s; without the backoff
      // (reset by each stream's first message) there were about one every 15 ms.
      expect(stubborn.watches.length).toBeLessThan(20);
      expect(
        stubborn.acks.every((a) => /could not apply revision 5 \(snapshot\)/.test(a.error)),
      ).toBe(true);
      const decision = await follower.grpc.call(GoLiveService, "checkGoLive", {
        executionClass: ExecutionClass.PROD,
      });
      expect(decision.reason).toBe(DenyReason.POLICY_STALE);
    } finally {
      clearInterval(serve);
      await follower.stop();
      await stubborn.close();
    }
  });
});

describe("a sidecar whose Watch stream goes silent", () => {
  it("drops the stream past the silence bound and watches again from its applied revision", async () => {
    // A link that stops carrying data sends no reset: only the silence tells (here 300 ms, and
    // this scripted central sends no heartbeats).
    const quiet = await startScriptedCentral();
    const follower = await startSidecar({
      follow: {
        endpoints: [clientCredentials({ central: quiet.address, allowRemote: false })],
        sidecarId: "wholesale-2",
        engines: ["WHOLESALE"],
        staleAfterMs: STALE_AFTER,
        silenceMs: 300,
        reconnectMs: 20,
        maxReconnectMs: 100,
      },
    });
    try {
      await eventually("the sidecar's Watch", () => quiet.openStreams() === 1);
      // The snapshot is the stream's last message: the silence counts from its arrival.
      const silentSince = Date.now();
      quiet.send({ case: "snapshot", value: snapshot() });
      await eventually("the snapshot's ack", () => quiet.acks.find((a) => a.revision === 5n));
      const again = await eventually("a second Watch", () => quiet.watches[1]);
      expect(Date.now() - silentSince).toBeGreaterThanOrEqual(280);
      expect(again).toMatchObject({ appliedRevision: 5n, appliedDigest: DIGEST5 });
      // Each silent stream is dropped in turn; the sidecar keeps deciding meanwhile.
      await eventually("a third Watch", () => quiet.watches[2]);
      const decision = await follower.grpc.call(GoLiveService, "checkGoLive", {
        executionClass: ExecutionClass.PROD,
      });
      expect(decision).toMatchObject({ allowed: true, policyRevision: 5n });
    } finally {
      await follower.stop();
      await quiet.close();
    }
  });
});
