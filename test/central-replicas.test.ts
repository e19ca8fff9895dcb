/**
 * Two `govd central` replicas (real processes) on one PostgreSQL database: a change through A
 * reaches a sidecar watching B; writes fired at both at once get gapless, unique revisions
 * whose digests chain; one retried write through both at once is recorded once; A waits on acks
 * recorded through B; after A is killed (SIGKILL), its sidecar follows B from what it applied;
 * and B hears of A's writes by notification, long before its own periodic re-read.
 */
import { rmSync } from "node:fs";
import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import { GoLiveService } from "../gen/governance/v1/golive_pb.js";
import { RiskService } from "../gen/governance/v1/risk_pb.js";
import { SyncService } from "../gen/governance/v1/sync_pb.js";
import { revisionDigest } from "../src/sync/revision-digest.js";
import { postgresReachable, tempPostgres } from "./support/central.js";
import {
  type CentralProcess,
  type Follower,
  follow,
  startCentralProcess,
} from "./support/fleet.js";
import { TOKEN } from "./support/sidecar.js";

const pgUp = await postgresReachable();
const processes: CentralProcess[] = [];
const followers: Follower[] = [];
const drops: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const f of followers) f.stop();
  for (const p of processes) {
    p.caller.close();
    p.program.signal("SIGKILL");
    await p.program.exited;
    rmSync(p.dataDir, { recursive: true, force: true });
  }
  for (const d of drops) await d();
});

describe.skipIf(!pgUp)("central replicas on one PostgreSQL", () => {
  it("streams a write through A to a watcher on B, never duplicates a revision, and survives A's death", async () => {
    const db = await tempPostgres();
    drops.push(db.drop);
    // Both start at once: one migrates and seeds, the other finds it done.
    const [a, b] = await Promise.all([
      startCentralProcess({ store: db.url, replica: "central-a" }),
      startCentralProcess({ store: db.url, replica: "central-b" }),
    ]);
    processes.push(a, b);
    const onB = follow(b.grpcAddress, "sc-b", { engines: ["WHOLESALE"] });
    const onA = follow(a.grpcAddress, "sc-a", { engines: ["CAPITAL"] });
    followers.push(onB, onA);
    await onB.reached(13n);
    await onA.reached(13n);

    const engaged = await a.caller.call(
      GoLiveService,
      "engageKillSwitch",
      { actor: "ops", reason: "through A" },
      { token: TOKEN },
    );
    expect(engaged.state?.revision).toBe(14n);
    await onB.reached(14n);
    const last = onB.seen[onB.seen.length - 1];
    expect(last?.message.case).toBe("change");
    if (last?.message.case === "change") expect(last.message.value.entity.case).toBe("goLive");

    // Many writes through both replicas at once.
    const writes = Array.from({ length: 60 }, (_, i) =>
      (i % 2 ? a : b).caller.call(
        RiskService,
        "upsertPolicy",
        {
          engine: `E${i % 7}`,
          maxDailyLoss: `${i + 1}`,
          maxDailyExposure: "100",
          maxOpenRisk: "50",
          maxActionsPerDay: 10,
          enabled: true,
          actor: "ops",
          reason: `write ${i}`,
          correlationId: `w-${i}`,
        },
        { token: TOKEN },
      ),
    );
    const answers = await Promise.all(writes);
    const revisions = answers.map((r) => Number(r.policyRevision)).sort((x, y) => x - y);
    expect(revisions).toEqual(Array.from({ length: 60 }, (_, i) => 15 + i));
    const client = new pg.Client({ connectionString: db.url });
    await client.connect();
    const log = await client.query<{ revision: string; entity: Buffer; digest: string }>(
      "SELECT revision, entity, digest FROM central_change ORDER BY revision",
    );
    await client.end();
    expect(log.rows.map((r) => Number(r.revision))).toEqual(
      Array.from({ length: 74 }, (_, i) => i + 1),
    );
    let previous = "";
    for (const r of log.rows) {
      expect(r.digest).toBe(revisionDigest(previous, r.entity));
      previous = r.digest;
    }
    await onB.reached(74n);
    await onA.reached(74n);
    // One retried write through both replicas at once: recorded once, the same answer twice.
    const retried = { actor: "ops", reason: "retry", correlationId: "same-key" };
    const [ra, rb] = await Promise.all(
      [a, b].map((r) =>
        r.caller.call(GoLiveService, "engageKillSwitch", retried, { token: TOKEN }),
      ),
    );
    expect(ra?.state?.revision).toBe(75n);
    expect(rb?.state?.revision).toBe(75n);
    await onB.reached(75n);
    await onA.reached(75n);

    // A waits on acks recorded by either replica (sc-b acks through B).
    const waited = await a.caller.call(SyncService, "waitForAcks", {
      revision: 75n,
      timeoutMs: 5_000n,
    });
    expect([waited.connected, waited.acked]).toEqual([2, 2]);
    expect(waited.acks.map((x) => x.sidecarId).sort()).toEqual(["sc-a", "sc-b"]);
    const fleet = await b.caller.call(SyncService, "listSidecars", {});
    const replicaOf = new Map(fleet.sidecars.map((s) => [s.sidecarId, s.replica]));
    expect(replicaOf.get("sc-a")).toBe("central-a");
    expect(replicaOf.get("sc-b")).toBe("central-b");

    // A dies; its sidecar follows B from what it applied, and only gets what is new.
    a.program.signal("SIGKILL");
    await a.program.exited;
    const seenBefore = onA.seen.length;
    onA.moveTo(b.grpcAddress);
    await b.caller.call(
      GoLiveService,
      "releaseKillSwitch",
      { actor: "ops", reason: "through B" },
      { token: TOKEN },
    );
    await onA.reached(76n);
    await onB.reached(76n);
    const after = onA.seen.slice(seenBefore).filter((m) => m.message.case !== "heartbeat");
    expect(after.map((m) => m.message.case)).toEqual(["change"]);
    const view = await b.caller.call(SyncService, "listSidecars", {});
    const scA = view.sidecars.find((s) => s.sidecarId === "sc-a");
    expect(scA?.replica).toBe("central-b");
    expect(scA?.connected).toBe(true);
    expect(onA.problems).toEqual([]);
    expect(onB.problems).toEqual([]);
  });

  it("brings a write through A to a watcher on B by PostgreSQL's notification, not B's periodic re-read", async () => {
    const db = await tempPostgres();
    drops.push(db.drop);
    // B re-reads the head only every 30 s: three writes 3 s apart can each reach B within 2 s
    // only if B is told of each (LISTEN/NOTIFY); one re-read could carry at most one of them.
    const [a, b] = await Promise.all([
      startCentralProcess({ store: db.url, replica: "central-a" }),
      startCentralProcess({ store: db.url, replica: "central-b", heartbeatMs: 30_000 }),
    ]);
    processes.push(a, b);
    const onB = follow(b.grpcAddress, "sc-notify", { engines: ["WHOLESALE"] });
    followers.push(onB);
    await onB.reached(13n);
    for (let i = 0; i < 3; i++) {
      const change = i % 2 === 0 ? "engageKillSwitch" : "releaseKillSwitch";
      const written = await a.caller.call(
        GoLiveService,
        change,
        { actor: "ops", reason: `notify ${i}` },
        { token: TOKEN },
      );
      const revision = written.state?.revision ?? 0n;
      const sent = Date.now();
      await onB.reached(revision, 2_000);
      expect(Date.now() - sent).toBeLessThan(2_000);
      if (i < 2) await new Promise((r) => setTimeout(r, 3_000));
    }
    expect(onB.problems).toEqual([]);
  });
});
