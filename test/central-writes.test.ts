/**
 * Writes to central over real gRPC, on SQLite and on PostgreSQL: Ack/NACK and what they refuse
 * (changing nothing), malformed Watch and ReportTrip requests refused, ReportTrip (a KILL_SWITCH
 * wire engages the fleet's kill switch, once), and central's admin writes (revisions,
 * idempotency, the levers' rules, decisions not served).
 */

import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { sql } from "kysely";
import { describe, expect, it } from "vitest";
import { GoLiveService } from "../gen/governance/v1/golive_pb.js";
import { HeimdallService } from "../gen/governance/v1/heimdall_pb.js";
import {
  RegressionService,
  TripwireAction,
  TripwireMethod,
} from "../gen/governance/v1/regression_pb.js";
import { RiskService } from "../gen/governance/v1/risk_pb.js";
import { SyncService } from "../gen/governance/v1/sync_pb.js";
import { centralFixture, SEED_REVISIONS, storeEngines } from "./support/central-fixture.js";
import { rejects } from "./support/expect-error.js";
import { TOKEN } from "./support/sidecar.js";

const engines = await storeEngines();

describe.each(engines)("central on $name", (engine) => {
  const { skip } = engine;
  const { start, open, engage } = centralFixture(engine);

  it.skipIf(skip)(
    "records acks and NACKs; refuses unknown, mismatched, older and malformed acks without changing anything",
    async () => {
      const c = await start();
      const w = open(c, { sidecarId: "sc-1", engines: ["CAPITAL"] });
      const snap = await w.next();
      if (snap.message.case !== "snapshot") throw new Error("expected a snapshot");
      const head = snap.message.value;
      await c.caller.call(SyncService, "ack", {
        sidecarId: "sc-1",
        revision: head.revision,
        digest: head.digest,
      });
      const view = async () => {
        const s = (await c.caller.call(SyncService, "listSidecars", {})).sidecars[0];
        // Heartbeats move when it was last heard; the rest must not move on a refused ack.
        return { ...s, lastHeard: undefined, stalenessMs: 0n };
      };
      expect((await view())?.appliedRevision).toBe(head.revision);
      expect((await view())?.lag).toBe(0n);
      if (c.store.engine === "sqlite") {
        // Acks commit without an fsync; the connection is back to FULL for changes after.
        const { rows } = await sql<{ synchronous: number }>`PRAGMA synchronous`.execute(c.store.db);
        expect(rows[0]?.synchronous).toBe(2);
      }
      const before = await view();

      await rejects(
        c.caller.call(SyncService, "ack", {
          sidecarId: "sc-1",
          revision: 999n,
          digest: "c".repeat(64),
        }),
        Code.FailedPrecondition,
        /revision 999 was never issued by central/,
      );
      await rejects(
        c.caller.call(SyncService, "ack", {
          sidecarId: "sc-1",
          revision: head.revision,
          digest: "d".repeat(64),
        }),
        Code.InvalidArgument,
        /digest of revision 13 does not match central's/,
      );
      await rejects(
        c.caller.call(SyncService, "ack", { sidecarId: "sc-1", revision: 0n, digest: "" }),
        Code.InvalidArgument,
        /revision/,
      );
      await rejects(
        c.caller.call(SyncService, "ack", { sidecarId: "bad id!", revision: 1n, digest: "" }),
        Code.InvalidArgument,
        /sidecar_id/,
      );
      await rejects(
        c.caller.call(SyncService, "ack", { sidecarId: "sc-never", revision: 1n, digest: "" }),
        Code.FailedPrecondition,
        /has no Watch stream/,
      );
      const r12 = (await c.store.changesAfter(11, 1))[0];
      await rejects(
        c.caller.call(SyncService, "ack", {
          sidecarId: "sc-1",
          revision: 12n,
          digest: r12?.digest ?? "",
        }),
        Code.FailedPrecondition,
        /older than revision 13/,
      );
      // Malformed Watch requests are refused before anything is recorded.
      for (const bad of [
        { sidecarId: "bad id!", engines: ["CAPITAL"] },
        { sidecarId: "sc-2", appliedRevision: 3n, appliedDigest: "not-a-digest" },
        { sidecarId: "sc-2", appliedRevision: -1n },
        { sidecarId: "sc-2", engines: ["capital"] },
      ]) {
        const refused = await open(c, bad)
          .next()
          .then(
            () => undefined,
            (err: { code?: number; details?: string }) => err,
          );
        expect(
          refused?.code,
          JSON.stringify(bad, (_k, v) => String(v)),
        ).toBe(grpc.status.INVALID_ARGUMENT);
        expect(refused?.details).toMatch(/invalid request/);
      }
      expect((await c.caller.call(SyncService, "listSidecars", {})).sidecars).toHaveLength(1);
      // A replayed ACK of the same revision is answered and changes nothing either.
      await c.caller.call(SyncService, "ack", {
        sidecarId: "sc-1",
        revision: head.revision,
        digest: head.digest,
      });
      expect(await view()).toEqual(before);
      expect((await c.caller.call(SyncService, "listSidecars", {})).sidecars).toHaveLength(1);

      const engaged = await engage(c, "x");
      const rev = engaged.state?.revision ?? 0n;
      await c.caller.call(SyncService, "ack", {
        sidecarId: "sc-1",
        revision: rev,
        digest: "",
        error: "cannot apply: disk full",
      });
      const nacked = await view();
      expect(nacked?.lastNackRevision).toBe(rev);
      expect(nacked?.lastNackError).toBe("cannot apply: disk full");
      expect(nacked?.appliedRevision).toBe(head.revision);
      expect(nacked?.lag).toBe(1n);
    },
  );

  it.skipIf(skip)(
    "ReportTrip of a KILL_SWITCH wire engages the fleet's kill switch once, even when retried",
    async () => {
      const c = await start();
      const report = {
        sidecarId: "sc-7",
        domain: "CAPITAL",
        metric: "roi_event",
        action: TripwireAction.KILL_SWITCH,
        reason: "roi dropped 40%",
        trippedAt: timestampFromMs(Date.now()),
        correlationId: "trip-1",
      };
      await rejects(
        c.caller.call(SyncService, "reportTrip", report),
        Code.Unauthenticated,
        /operator action/,
      );
      // Malformed reports are refused and take no revision (the first good one below is the
      // next revision after the kill switch's own).
      await rejects(
        c.caller.call(
          SyncService,
          "reportTrip",
          { ...report, domain: "capital" },
          { token: TOKEN },
        ),
        Code.InvalidArgument,
        /domain/,
      );
      await rejects(
        c.caller.call(
          SyncService,
          "reportTrip",
          { ...report, trippedAt: undefined },
          { token: TOKEN },
        ),
        Code.InvalidArgument,
        /tripped_at/,
      );
      expect((await c.store.head()).revision).toBe(SEED_REVISIONS);
      const first = await c.caller.call(SyncService, "reportTrip", report, { token: TOKEN });
      const again = await c.caller.call(SyncService, "reportTrip", report, { token: TOKEN });
      expect(first.revision).toBe(BigInt(SEED_REVISIONS + 2));
      expect(again.revision).toBe(first.revision);
      expect((await c.store.head()).revision).toBe(SEED_REVISIONS + 2);
      const state = await c.caller.call(GoLiveService, "getState", {});
      expect(state.state?.killSwitchEngaged).toBe(true);
      expect(state.state?.reason).toMatch(
        /tripwire CAPITAL\/roi_event \(KILL_SWITCH\) tripped on sidecar sc-7: roi dropped 40%/,
      );
      const wires = await c.caller.call(RegressionService, "getState", { domain: "CAPITAL" });
      expect(wires.states[0]?.lastTripReason).toBe("roi dropped 40%");
      await rejects(
        c.caller.call(SyncService, "reportTrip", { ...report, reason: "other" }, { token: TOKEN }),
        Code.AlreadyExists,
        /correlation_id trip-1 was already used/,
      );
      // Re-armed on central.
      const reset = await c.caller.call(
        RegressionService,
        "resetTripwire",
        { domain: "CAPITAL", metric: "roi_event", actor: "ops", reason: "fixed" },
        { token: TOKEN },
      );
      expect(reset.correlationId).toMatch(/^auto-/);
      const after = await c.caller.call(RegressionService, "getState", { domain: "CAPITAL" });
      expect(after.states[0]?.status).not.toBe(4);
    },
  );

  it.skipIf(skip)(
    "admin writes are idempotent by correlation_id; decisions and fleet figures are not served",
    async () => {
      const c = await start();
      const a = await engage(c, "same", "k-1");
      const b = await engage(c, "same", "k-1");
      expect(b.state?.revision).toBe(a.state?.revision);
      expect((await c.store.head()).revision).toBe(SEED_REVISIONS + 1);
      await rejects(engage(c, "different", "k-1"), Code.AlreadyExists, /already used/);
      await rejects(
        c.caller.call(GoLiveService, "enable", { actor: "ops", reason: "go" }, { token: TOKEN }),
        Code.FailedPrecondition,
        /kill_switch_released/,
      );
      await rejects(
        engage(c, "no token").then(() => c.caller.call(GoLiveService, "disable", { actor: "x" })),
        Code.Unauthenticated,
        /operator/,
      );
      await rejects(
        c.caller.call(GoLiveService, "checkGoLive", {}),
        Code.Unimplemented,
        /CheckGoLive is a decision, served by the sidecars/,
      );
      // The fleet scorecard: every domain with a policy, nothing shipped yet, nobody behind.
      const fleetCard = await c.caller.call(HeimdallService, "getScorecardToday", {});
      expect(fleetCard.scorecards.map((s) => s.domain)).toContain("BUYER_MATCH");
      expect(fleetCard.scorecards.every((s) => s.trials === 0)).toBe(true);
      expect(fleetCard.behind).toEqual([]);
      // The fleet ledger: nothing shipped yet, so nothing booked and no sidecar behind.
      const fleetLedger = await c.caller.call(RiskService, "getLedgerToday", {});
      expect(fleetLedger.entries.every((e) => e.actions === 0 && e.exposureUsed === "0.00")).toBe(
        true,
      );
      expect(fleetLedger.behind).toEqual([]);
      const list = await c.caller.call(RiskService, "listPolicies", {});
      expect(list.policyRevision).toBe(BigInt(SEED_REVISIONS + 2));
      // The sidecar's rules for tripwire and Heimdall policies, defaults included.
      const wire = {
        domain: "WHOLESALE",
        metric: "contract_rate",
        windowEvents: 50,
        baselineEvents: 200,
        maxDropFraction: 0.2,
        action: TripwireAction.THROTTLE,
        actor: "ops",
        reason: "tune",
      };
      const upserted = await c.caller.call(RegressionService, "upsertPolicy", wire, {
        token: TOKEN,
      });
      expect(upserted.policy?.method).toBe(TripwireMethod.RELATIVE_DROP);
      expect(upserted.policy?.minEventsToEnforce).toBe(250);
      expect(upserted.policyRevision).toBe(BigInt(SEED_REVISIONS + 3));
      await rejects(
        c.caller.call(
          RegressionService,
          "upsertPolicy",
          { ...wire, method: TripwireMethod.SEQUENTIAL, expectedEventsBetweenFalseAlarms: 5 },
          { token: TOKEN },
        ),
        Code.InvalidArgument,
        /at least 10 for a SEQUENTIAL wire/,
      );
      const gate = await c.caller.call(
        HeimdallService,
        "upsertPolicy",
        {
          domain: "NEW_DOMAIN",
          minConfidenceProd: 0.9,
          minSandboxTrials: 10,
          minSandboxSuccessRate: 0.8,
          actor: "ops",
          reason: "new",
        },
        { token: TOKEN },
      );
      expect([gate.policy?.lookbackDays, gate.policy?.boundConfidence]).toEqual([30, 0.95]);
      expect((await c.store.head()).revision).toBe(SEED_REVISIONS + 4);
    },
  );
});
