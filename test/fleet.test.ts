/**
 * The fleet with real processes on loopback: one `govd central` on SQLite and connected
 * `govd serve --central` sidecars. Changes made on central reach every sidecar; a cut link (a
 * TCP proxy between a sidecar and central) keeps decisions going until the staleness bound,
 * then fails closed, and heals without a restart; a sidecar behind central catches up from its
 * applied revision, one ahead of a reset central is brought back by a snapshot; a tripwire that
 * trips on one sidecar stops the whole fleet through central.
 */
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import { DenyReason, ExecutionClass } from "../gen/governance/v1/common_pb.js";
import { GoLiveService } from "../gen/governance/v1/golive_pb.js";
import {
  RegressionService,
  TripwireAction,
  TripwireStatus,
} from "../gen/governance/v1/regression_pb.js";
import { RiskService } from "../gen/governance/v1/risk_pb.js";
import { SyncService } from "../gen/governance/v1/sync_pb.js";
import type { Caller } from "./support/callers.js";
import { centralStores, postgresReachable, tempPostgres } from "./support/central.js";
import { eventually } from "./support/eventually.js";
import {
  FLEET_TOKEN,
  type FleetProcess,
  startCentral,
  startFollower,
  stopAll,
} from "./support/fleet-processes.js";
import { startTcpProxy, type TcpProxy } from "./support/tcp-proxy.js";

const auth = { token: FLEET_TOKEN };
const proxies: TcpProxy[] = [];

afterEach(async () => {
  await stopAll();
  for (const p of proxies.splice(0)) await p.close();
});

const op = (reason: string) => ({
  actor: "ops",
  reason,
  correlationId: `${reason}-${Math.random()}`,
});

async function decide(caller: Caller, cls = ExecutionClass.PROD_EXEC) {
  return caller.call(GoLiveService, "checkGoLive", { executionClass: cls });
}

async function fleetView(central: FleetProcess) {
  return central.grpc.call(SyncService, "listSidecars", {});
}

/** Waits until every listed sidecar decides `reason` (0 = allowed) under central's revision. */
async function everyDecides(sidecars: FleetProcess[], reason: DenyReason, timeoutMs = 10_000) {
  for (const s of sidecars) {
    await eventually(
      `${s.grpcAddress} to decide ${DenyReason[reason]}`,
      async () => (await decide(s.grpc)).reason === reason,
      timeoutMs,
    );
  }
}

/** The snapshots and changes a sidecar's audit trail says it applied. */
function applied(sidecar: FleetProcess): { snapshots: number; changes: number } {
  const db = new Database(join(sidecar.dataDir, "sidecar.db"), { readonly: true });
  try {
    const count = (action: string) =>
      (
        db
          .prepare("SELECT count(*) AS n FROM audit_event WHERE lever = 'sync' AND action = ?")
          .get(action) as { n: number }
      ).n;
    return { snapshots: count("APPLY_SNAPSHOT"), changes: count("APPLY_CHANGE") };
  } finally {
    db.close();
  }
}

async function openFleet(central: FleetProcess) {
  await central.grpc.call(GoLiveService, "enable", op("open"), auth);
}

const pgUp = await postgresReachable();
const drops: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const d of drops.splice(0)) await d();
});

const stores = centralStores(pgUp, drops);

describe.each(stores)("a fleet of sidecars following central ($name)", ({ up, store }) => {
  if (!up) return void it.skip("PostgreSQL at 127.0.0.1:5432 is unreachable", () => undefined);
  it("applies every change made on central on every sidecar: go-live, kill switch, policies", async () => {
    const central = await startCentral({ store: await store(), heartbeatMs: 200 });
    const sidecars = await Promise.all(
      ["s1", "s2", "s3"].map((id) =>
        startFollower({ central: central.grpcAddress, sidecarId: id, engines: ["WHOLESALE"] }),
      ),
    );
    const view = await eventually("three connected sidecars", async () => {
      const v = await fleetView(central);
      return v.sidecars.filter((s) => s.connected).length === 3 ? v : undefined;
    });
    expect(view.sidecars.map((s) => s.sidecarId).sort()).toEqual(["s1", "s2", "s3"]);
    expect(view.sidecars[0]?.engines).toEqual(["WHOLESALE"]);
    await everyDecides(sidecars, DenyReason.GO_LIVE_DISABLED);

    await openFleet(central);
    await everyDecides(sidecars, DenyReason.UNSPECIFIED);
    const engaged = await central.grpc.call(GoLiveService, "engageKillSwitch", op("stop"), auth);
    await everyDecides(sidecars, DenyReason.KILL_SWITCH_ENGAGED);
    for (const s of sidecars) {
      expect((await decide(s.grpc)).policyRevision).toBeGreaterThanOrEqual(
        engaged.state?.revision ?? 1n,
      );
    }
    await central.grpc.call(
      RiskService,
      "upsertPolicy",
      {
        engine: "WHOLESALE",
        maxDailyLoss: "10",
        maxDailyExposure: "20",
        maxOpenRisk: "5",
        maxActionsPerDay: 7,
        enabled: true,
        ...op("tighten"),
      },
      auth,
    );
    for (const s of sidecars) {
      await eventually("the new WHOLESALE caps", async () => {
        const list = await s.grpc.call(RiskService, "listPolicies", {});
        return list.policies.find((p) => p.engine === "WHOLESALE")?.maxDailyExposure === "20.00";
      });
    }
    // The acks reach central after the sidecars applied the change.
    const after = await eventually("every ack in the fleet view", async () => {
      const v = await fleetView(central);
      return v.sidecars.every((x) => x.lag === 0n) ? v : undefined;
    });
    for (const x of after.sidecars) {
      expect(x).toMatchObject({ appliedRevision: after.revision, lag: 0n, connected: true });
    }
  });

  it("keeps deciding through a cut link until the bound, fails closed past it, and heals", async () => {
    const central = await startCentral({ store: await store(), heartbeatMs: 200 });
    await openFleet(central);
    const proxy = await startTcpProxy(central.grpcAddress);
    proxies.push(proxy);
    const s = await startFollower({ central: proxy.address, sidecarId: "cut", staleAfter: "2s" });
    await everyDecides([s], DenyReason.UNSPECIFIED);
    proxy.cut();
    const cutAt = Date.now();
    // Inside the bound: decisions go on from the applied revision.
    expect((await decide(s.grpc)).allowed).toBe(true);
    await central.grpc.call(GoLiveService, "engageKillSwitch", op("during the cut"), auth);
    await eventually("the bound to pass", async () => {
      const d = await decide(s.grpc);
      return d.reason === DenyReason.POLICY_STALE ? d : undefined;
    });
    expect(Date.now() - cutAt).toBeGreaterThanOrEqual(1_500);
    expect((await fetch(`${s.httpUrl}/readyz`)).status).toBe(503);
    expect((await decide(s.grpc, ExecutionClass.EXEMPT)).allowed).toBe(true);
    const view = await fleetView(central);
    expect(view.sidecars.find((x) => x.sidecarId === "cut")?.lag).toBeGreaterThan(0n);

    proxy.restore();
    // The kill switch engaged during the cut arrives, and decisions resume without a restart.
    await everyDecides([s], DenyReason.KILL_SWITCH_ENGAGED);
    expect((await fetch(`${s.httpUrl}/readyz`)).status).toBe(200);
  });

  it("brings back a sidecar behind central and one ahead of a reset central", async () => {
    const central = await startCentral({ store: await store(), heartbeatMs: 200 });
    const s = await startFollower({ central: central.grpcAddress, sidecarId: "back" });
    const dataDir = s.dataDir;
    await s.stop();
    for (let i = 0; i < 30; i++) {
      await central.grpc.call(
        RiskService,
        "upsertPolicy",
        {
          engine: "CAPITAL",
          maxDailyLoss: "150",
          maxDailyExposure: String(700 + i),
          maxOpenRisk: "300",
          maxActionsPerDay: 2000,
          enabled: true,
          ...op(`change-${i}`),
        },
        auth,
      );
    }
    const behind = await startFollower({
      central: central.grpcAddress,
      sidecarId: "back",
      dataDir,
    });
    await eventually("caught up", async () => {
      const v = await fleetView(central);
      return v.sidecars.find((x) => x.sidecarId === "back" && x.lag === 0n && x.connected);
    });
    const caps = await behind.grpc.call(RiskService, "listPolicies", {});
    expect(caps.policies.find((p) => p.engine === "CAPITAL")?.maxDailyExposure).toBe("729.00");
    // It resumed from its applied revision: the 30 changes, no second snapshot.
    expect(applied(behind)).toEqual({ snapshots: 1, changes: 30 });

    // Central reset: a new store on the same ports. The sidecar holds revisions it never issued.
    const ports = { grpcPort: central.grpcPort, httpPort: central.httpPort };
    await central.kill();
    const fresh = await startCentral({ ...ports, store: await store(), heartbeatMs: 200 });
    const resynced = await eventually(
      "the sidecar resynced",
      async () => {
        const v = await fleetView(fresh);
        return v.sidecars.find(
          (x) => x.sidecarId === "back" && x.lag === 0n && x.lastResync !== "",
        );
      },
      15_000,
    );
    expect(resynced.appliedRevision).toBe((await fleetView(fresh)).revision);
    const reset = await behind.grpc.call(RiskService, "listPolicies", {});
    expect(reset.policies.find((p) => p.engine === "CAPITAL")?.maxDailyExposure).toBe("750.00");
    expect(applied(behind).snapshots).toBe(2);
  });

  it("stops the whole fleet when a KILL_SWITCH tripwire trips on one sidecar, until central re-arms it", async () => {
    const central = await startCentral({ store: await store(), heartbeatMs: 200 });
    await central.grpc.call(
      RegressionService,
      "upsertPolicy",
      {
        domain: "CAPITAL",
        metric: "roi_event",
        windowEvents: 10,
        baselineEvents: 10,
        minEventsToEnforce: 20,
        maxDropFraction: 0.3,
        action: TripwireAction.KILL_SWITCH,
        enabled: true,
        ...op("arm"),
      },
      auth,
    );
    await openFleet(central);
    const [a, b] = await Promise.all(
      ["trips", "bystander"].map((id) =>
        startFollower({ central: central.grpcAddress, sidecarId: id }),
      ),
    );
    await everyDecides([a as FleetProcess, b as FleetProcess], DenyReason.UNSPECIFIED);
    for (let i = 0; i < 30; i++) {
      await a?.grpc.call(RegressionService, "recordKpi", {
        domain: "CAPITAL",
        metric: "roi_event",
        success: i < 10,
        value: 1,
      });
    }
    await everyDecides([a as FleetProcess, b as FleetProcess], DenyReason.KILL_SWITCH_ENGAGED);
    const state = await central.grpc.call(GoLiveService, "getState", {});
    expect(state.state?.killSwitchEngaged).toBe(true);
    expect(state.state?.reason).toMatch(/CAPITAL\/roi_event.*trips|trips.*CAPITAL\/roi_event/);
    const wires = await (b as FleetProcess).grpc.call(RegressionService, "getState", {
      domain: "CAPITAL",
    });
    expect(wires.states[0]?.status).toBe(TripwireStatus.TRIPPED);

    // Re-arm once central's fleet stream holds all 30 outcomes: outcomes shipped after a
    // re-arm count as new ones, and these would trip the re-armed fleet wire again.
    await eventually("central's fleet stream to hold the 30 outcomes", async () => {
      const fleet = await central.grpc.call(RegressionService, "getState", { domain: "CAPITAL" });
      return (fleet.states[0]?.eventsSeen ?? 0n) >= 30n;
    });
    await central.grpc.call(
      RegressionService,
      "resetTripwire",
      { domain: "CAPITAL", metric: "roi_event", ...op("re-arm") },
      auth,
    );
    await central.grpc.call(GoLiveService, "releaseKillSwitch", op("resume"), auth);
    await everyDecides([a as FleetProcess, b as FleetProcess], DenyReason.UNSPECIFIED);
  });
});

describe.skipIf(!pgUp)("a fleet following two central replicas on one PostgreSQL", () => {
  it("reaches a sidecar watching B with a change made through A, and moves A's sidecars to B when A dies", async () => {
    const db = await tempPostgres();
    try {
      const [a, b] = await Promise.all([
        startCentral({ store: db.url, replicaId: "central-a", heartbeatMs: 200 }),
        startCentral({ store: db.url, replicaId: "central-b", heartbeatMs: 200 }),
      ]);
      // Each sidecar lists both replicas and starts on the first it is given.
      const onA = await startFollower({
        central: `${a.grpcAddress},${b.grpcAddress}`,
        sidecarId: "on-a",
      });
      const onB = await startFollower({
        central: `${b.grpcAddress},${a.grpcAddress}`,
        sidecarId: "on-b",
      });
      await openFleet(a);
      await everyDecides([onA, onB], DenyReason.UNSPECIFIED);
      const view = await fleetView(b);
      const replicaOf = new Map(view.sidecars.map((x) => [x.sidecarId, x.replica]));
      expect(replicaOf.get("on-a")).toBe("central-a");
      expect(replicaOf.get("on-b")).toBe("central-b");

      await a.grpc.call(GoLiveService, "engageKillSwitch", op("through A"), auth);
      await everyDecides([onB], DenyReason.KILL_SWITCH_ENGAGED);

      await a.kill();
      await b.grpc.call(GoLiveService, "releaseKillSwitch", op("through B"), auth);
      await everyDecides([onA, onB], DenyReason.UNSPECIFIED, 15_000);
      const after = await eventually("on-a on replica B", async () => {
        const v = await fleetView(b);
        const x = v.sidecars.find((y) => y.sidecarId === "on-a");
        return x?.replica === "central-b" && x.connected && x.lag === 0n ? x : undefined;
      });
      expect(after.appliedRevision).toBe((await fleetView(b)).revision);
    } finally {
      await stopAll();
      await db.drop();
    }
  });
});
