/**
 * Fleet Heimdall evidence with real processes on loopback, central on SQLite and PostgreSQL:
 * two sidecars of one domain (policy: 10 sandbox trials, production use enabled) record 6
 * trials each; once shipped, a Recommend on either is prod-eligible on the fleet's 12, where
 * neither's own 6 would be; central's GetScorecardToday shows the 12 and how far behind each
 * sidecar is; a sidecar restarted while central is down counts its own trials only, until
 * central's first evidence message after central is back.
 */
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import { HeimdallService } from "../gen/governance/v1/heimdall_pb.js";
import type { Caller } from "./support/callers.js";
import { centralStores, postgresReachable } from "./support/central.js";
import { eventually } from "./support/eventually.js";
import {
  FLEET_TOKEN,
  type FleetProcess,
  fleetDir,
  startCentral,
  startFollower,
  stopAll,
} from "./support/fleet-processes.js";

const pgUp = await postgresReachable();
const drops: (() => Promise<void>)[] = [];
afterEach(async () => {
  await stopAll();
  for (const d of drops.splice(0)) await d();
});

const stores = centralStores(pgUp, drops);
const DOMAIN = "BUYER_MATCH";
let n = 0;
const cid = (tag: string) => `${tag}-${++n}-${Math.random()}`;

async function trials(c: Caller, tag: string, count: number) {
  for (let i = 0; i < count; i++) {
    await c.call(HeimdallService, "recordSandboxTrial", {
      domain: DOMAIN,
      success: true,
      confidence: 0.95,
      correlationId: cid(tag),
    });
  }
}

/** The newest audit seq in a sidecar's store (read-only, beside the running process). */
function headSeq(s: FleetProcess): bigint {
  const db = new Database(join(s.dataDir, "sidecar.db"), { readonly: true });
  try {
    const row = db.prepare("SELECT coalesce(max(seq), 0) AS n FROM audit_event").get();
    return BigInt((row as { n: number }).n);
  } finally {
    db.close();
  }
}

/** The sandbox_trials gate of a Recommend now, and whether it was prod-eligible. */
async function recommend(c: Caller) {
  const r = await c.call(HeimdallService, "recommend", {
    domain: DOMAIN,
    confidence: 0.95,
    recommendationJson: '{"buyer":"b-1"}',
    correlationId: cid("rec"),
  });
  const trialsGate = r.gates.find((g) => g.name === "sandbox_trials");
  return { eligible: r.prodEligible, trials: trialsGate?.observed, detail: trialsGate?.detail };
}

describe.each(stores)("fleet Heimdall evidence (central on $name)", ({ up, store }) => {
  if (!up) return void it.skip("PostgreSQL at 127.0.0.1:5432 is unreachable", () => undefined);

  it("counts the fleet's shipped trials at every sidecar's gates, and only its own after a restart without central", async () => {
    const location = await store();
    const centralDir = fleetDir("central");
    const evidenceFlags = ["--evidence-check-ms", "100"];
    let central = await startCentral({
      dataDir: centralDir,
      store: location,
      heartbeatMs: 200,
      args: evidenceFlags,
    });
    await central.grpc.call(
      HeimdallService,
      "upsertPolicy",
      {
        domain: DOMAIN,
        minConfidenceProd: 0.9,
        minSandboxTrials: 10,
        minSandboxSuccessRate: 0.8,
        prodUseEnabled: true,
        lookbackDays: 30,
        actor: "ops",
        reason: "fleet evidence drill",
        correlationId: cid("policy"),
      },
      { token: FLEET_TOKEN },
    );
    const a = await startFollower({ central: central.grpcAddress, sidecarId: "ev-a" });
    const b = await startFollower({ central: central.grpcAddress, sidecarId: "ev-b" });
    for (const s of [a, b]) {
      await eventually(
        `${s.grpcAddress} to hold the policy`,
        async () => {
          const p = await s.grpc.call(HeimdallService, "listPolicies", {});
          return p.policies.some((x) => x.domain === DOMAIN && x.minSandboxTrials === 10);
        },
        10_000,
      );
    }

    await trials(a.grpc, "a", 6);
    // A alone: 6 of 10, not eligible, and B sees A's 6 once shipped, still not eligible.
    expect(await recommend(a.grpc)).toMatchObject({ eligible: false, trials: 6 });
    await eventually("B to count A's shipped trials", async () => {
      const r = await recommend(b.grpc);
      return r.trials === 6 && !r.eligible;
    });
    await trials(b.grpc, "b", 6);
    // B counts its own 6 at once (nothing waits for shipping) and A's 6 from central.
    expect(await recommend(b.grpc)).toMatchObject({
      eligible: true,
      trials: 12,
      detail: expect.stringContaining("(6 of them on other sidecars of the fleet)"),
    });
    await eventually("A to count B's shipped trials", async () => {
      const r = await recommend(a.grpc);
      return r.eligible && r.trials === 12;
    });

    // Central's fleet scorecard of the day, and how far behind each sidecar is.
    const card = await eventually("central to hold every event of both sidecars", async () => {
      const c = await central.grpc.call(HeimdallService, "getScorecardToday", { domain: DOMAIN });
      const shipped = new Map(c.behind.map((l) => [l.sidecarId, l.shippedSeq]));
      return shipped.get("ev-a") === headSeq(a) && shipped.get("ev-b") === headSeq(b)
        ? c
        : undefined;
    });
    expect(card.scorecards[0]).toMatchObject({ domain: DOMAIN, trials: 12, successes: 12 });
    expect(card.scorecards[0]?.avgConfidence).toBeCloseTo(0.95, 12);
    expect(card.behind.map((l) => l.sidecarId).sort()).toEqual(["ev-a", "ev-b"]);
    expect(card.behind.every((l) => l.shippedSeq >= 6n)).toBe(true);

    // Central goes down; B restarts without it: its own 6 only (the conservative direction).
    const ports = { grpcPort: central.grpcPort, httpPort: central.httpPort };
    await central.stop();
    const bDir = b.dataDir;
    await b.stop();
    const again = await startFollower({
      central: central.grpcAddress,
      sidecarId: "ev-b",
      dataDir: bDir,
      waitReady: false,
    });
    expect(await recommend(again.grpc)).toMatchObject({ eligible: false, trials: 6 });
    // Its /metrics says no evidence came since it started; A's says when it last came.
    const received = async (s: FleetProcess) => {
      const text = await (await fetch(`${s.httpUrl}/metrics`)).text();
      return Number(/^govd_fleet_evidence_received_seconds (\S+)$/m.exec(text)?.[1]);
    };
    expect(await received(again)).toBe(0);
    expect(await received(a)).toBeGreaterThan(Date.now() / 1000 - 60);
    // A, still running, keeps what central last sent it.
    expect(await recommend(a.grpc)).toMatchObject({ eligible: true, trials: 12 });
    // Central back on the same address: B counts the fleet again after its first message.
    central = await startCentral({
      ...ports,
      dataDir: centralDir,
      store: location,
      heartbeatMs: 200,
      args: evidenceFlags,
    });
    await eventually(
      "the restarted sidecar to count the fleet again",
      async () => {
        const r = await recommend(again.grpc);
        return r.eligible && r.trials === 12;
      },
      20_000,
    );
  }, 120_000);
});
