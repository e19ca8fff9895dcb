/**
 * Central's Watch stream over real gRPC, on SQLite and on PostgreSQL: snapshot, changes in order
 * with chained digests, heartbeats, resume, resync of a sidecar ahead of central or with another
 * history; the identity check; a change no notification announced.
 */

import { Code } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { RiskService } from "../gen/governance/v1/risk_pb.js";
import { type PolicyChange, SyncService } from "../gen/governance/v1/sync_pb.js";
import { systemClock } from "../src/clock.js";
import { CentralStore } from "../src/sync/central/central-store.js";
import { changeSwitches } from "../src/sync/central/golive-admin.js";
import { changeEntityBytes, revisionDigest } from "../src/sync/revision-digest.js";
import { grpcCallsAre, nextChange, startCentral, tempSqlite, watch } from "./support/central.js";
import { centralFixture, SEED_REVISIONS, storeEngines } from "./support/central-fixture.js";
import { rejects } from "./support/expect-error.js";
import { TOKEN } from "./support/sidecar.js";

const engines = await storeEngines();

describe.each(engines)("central on $name", (engine) => {
  const { skip } = engine;
  const { start, open, engage } = centralFixture(engine);

  it.skipIf(skip)(
    "streams a snapshot, then each change in order with chained digests, then heartbeats",
    async () => {
      const c = await start();
      const w = open(c, { sidecarId: "sc-1", engines: ["WHOLESALE"] });
      const first = await w.next();
      expect(first.message.case).toBe("snapshot");
      if (first.message.case !== "snapshot") return;
      const snap = first.message.value;
      expect(snap.revision).toBe(BigInt(SEED_REVISIONS));
      expect(snap.riskPolicies.map((p) => p.engine).sort()).toEqual([
        "CAPITAL",
        "GLOBAL",
        "NOTIFY",
        "WHOLESALE",
      ]);
      expect(snap.heimdallPolicies).toHaveLength(4);
      expect(snap.regressionPolicies).toHaveLength(4);
      expect(snap.goLive?.killSwitchEngaged).toBe(false);
      expect(snap.goLive?.goLiveEnabled).toBe(false);

      const engaged = await engage(c, "bad deals");
      const upsert = await c.caller.call(
        RiskService,
        "upsertPolicy",
        {
          engine: "CAPITAL",
          maxDailyLoss: "10",
          maxDailyExposure: "20",
          maxOpenRisk: "5",
          maxActionsPerDay: 3,
          enabled: true,
          actor: "ops",
          reason: "tighten",
        },
        { token: TOKEN },
      );
      expect(engaged.state?.revision).toBe(BigInt(SEED_REVISIONS + 1));
      expect(upsert.policyRevision).toBe(BigInt(SEED_REVISIONS + 2));
      expect(upsert.policy?.maxDailyLoss).toBe("10.00");

      let previous = snap.digest;
      const changes: PolicyChange[] = [];
      for (const expected of [SEED_REVISIONS + 1, SEED_REVISIONS + 2]) {
        const m = await nextChange(w);
        expect(m.message.case).toBe("change");
        if (m.message.case !== "change") return;
        const change = m.message.value;
        expect(change.revision).toBe(BigInt(expected));
        expect(change.digest).toBe(revisionDigest(previous, changeEntityBytes(change)));
        previous = change.digest;
        changes.push(change);
      }
      expect(changes[0]?.entity.case).toBe("goLive");
      expect(changes[1]?.entity.case).toBe("riskPolicy");
      // Nothing more changes: heartbeats at central's revision.
      const beat = await w.next();
      expect(beat.message.case).toBe("heartbeat");
      if (beat.message.case === "heartbeat")
        expect(beat.message.value.revision).toBe(BigInt(SEED_REVISIONS + 2));
    },
  );

  it.skipIf(skip)("resumes from an applied revision with only the changes after it", async () => {
    const c = await start();
    const w1 = open(c, { sidecarId: "sc-1" });
    const snap = await w1.next();
    if (snap.message.case !== "snapshot") throw new Error("expected a snapshot");
    w1.cancel();
    await engage(c, "one");
    await engage(c, "two");
    const w2 = open(c, {
      sidecarId: "sc-1",
      appliedRevision: snap.message.value.revision,
      appliedDigest: snap.message.value.digest,
    });
    const a = await w2.next();
    const b = await w2.next();
    expect(a.message.case).toBe("change");
    expect(b.message.case).toBe("change");
    if (a.message.case !== "change" || b.message.case !== "change") return;
    expect([a.message.value.revision, b.message.value.revision]).toEqual([
      BigInt(SEED_REVISIONS + 1),
      BigInt(SEED_REVISIONS + 2),
    ]);
    const list = await c.caller.call(SyncService, "listSidecars", {});
    expect(list.sidecars[0]?.lastResync).toBe("");
  });

  it.skipIf(skip)(
    "sends a snapshot to a sidecar reporting a revision central never issued, or another digest, and shows it",
    async () => {
      const c = await start();
      const ahead = open(c, {
        sidecarId: "sc-ahead",
        appliedRevision: 500n,
        appliedDigest: "a".repeat(64),
      });
      const m = await ahead.next();
      expect(m.message.case).toBe("snapshot");
      const other = open(c, {
        sidecarId: "sc-other",
        appliedRevision: 5n,
        appliedDigest: "b".repeat(64),
      });
      expect((await other.next()).message.case).toBe("snapshot");
      const list = await c.caller.call(SyncService, "listSidecars", {});
      const byId = new Map(list.sidecars.map((s) => [s.sidecarId, s]));
      expect(byId.get("sc-ahead")?.lastResync).toMatch(/revision 500, which central never issued/);
      expect(byId.get("sc-other")?.lastResync).toMatch(/revision 5 with digest bbbbbbbbbbbb/);
      expect(byId.get("sc-ahead")?.connected).toBe(true);
    },
  );
});

describe("central with a sidecar identity check", () => {
  it("refuses a sidecar_id that is not the connection's identity, on Watch and Ack", async () => {
    const db = tempSqlite();
    const c = await startCentral(db.url, { identify: grpcCallsAre("sc-cert") });
    try {
      const other = watch(c.grpcAddress, { sidecarId: "sc-other" });
      const status = await other.ended;
      expect(status.code).toBe(Code.PermissionDenied);
      expect(status.details).toMatch(
        /sidecar_id sc-other does not match the connection's identity sc-cert/,
      );
      const mine = watch(c.grpcAddress, { sidecarId: "sc-cert" });
      const snap = await mine.next();
      expect(snap.message.case).toBe("snapshot");
      mine.cancel();
      await rejects(
        c.caller.call(SyncService, "ack", { sidecarId: "sc-other", revision: 1n, digest: "" }),
        Code.PermissionDenied,
        /may only speak for itself/,
      );
      expect(
        (await c.caller.call(SyncService, "listSidecars", {})).sidecars.map((s) => s.sidecarId),
      ).toEqual(["sc-cert"]);
    } finally {
      await c.close();
      await db.drop();
    }
  });
});

describe("central without a notification", () => {
  it("still streams a change committed where no notification reached it (re-read at a heartbeat)", async () => {
    const db = tempSqlite();
    const c = await startCentral(db.url, { heartbeatMs: 100 });
    // A second store on the same file commits a change: nothing tells the serving node.
    const { store: other } = await CentralStore.open(db.url, systemClock);
    try {
      const w = watch(c.grpcAddress, { sidecarId: "sc-1" });
      expect((await w.next()).message.case).toBe("snapshot");
      await other.write((x) =>
        changeSwitches(
          x,
          { killSwitchEngaged: true },
          { actor: "elsewhere", reason: "no notify", correlationId: "x" },
        ),
      );
      const m = await nextChange(w);
      expect(m.message.case).toBe("change");
      if (m.message.case === "change")
        expect(m.message.value.revision).toBe(BigInt(SEED_REVISIONS + 1));
      w.cancel();
    } finally {
      await other.close();
      await c.close();
      await db.drop();
    }
  });
});
