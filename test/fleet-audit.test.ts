/**
 * The fleet trail on central with real processes (central on SQLite and on PostgreSQL, one
 * sidecar doing Reserve, Settle, Release and letting one reservation's TTL release it): once
 * shipped, central's open risk per engine and GLOBAL equals the sidecar's own; ListEvents on
 * central lists the sidecar's risk events with their seqs and hashes; and
 * `govd audit verify --central-store` passes the intact trail, then names a removed event.
 */
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { Code } from "@connectrpc/connect";
import Database from "better-sqlite3";
import pg from "pg";
import { afterEach, describe, expect, it } from "vitest";
import { GoLiveService } from "../gen/governance/v1/golive_pb.js";
import { RiskService } from "../gen/governance/v1/risk_pb.js";
import { SyncService } from "../gen/governance/v1/sync_pb.js";
import { centralStores, postgresReachable } from "./support/central.js";
import { eventually } from "./support/eventually.js";
import { rejects } from "./support/expect-error.js";
import {
  FLEET_TOKEN,
  type FleetProcess,
  startCentral,
  startFollower,
  stopAll,
} from "./support/fleet-processes.js";
import { govctl } from "./support/govctl.js";

const pgUp = await postgresReachable();
const drops: (() => Promise<void>)[] = [];
afterEach(async () => {
  await stopAll();
  for (const d of drops.splice(0)) await d();
});

/** Open risk per engine as GetLedgerToday answers it, engines with none left out. */
async function openRiskOf(p: FleetProcess): Promise<Record<string, string>> {
  const res = await p.grpc.call(RiskService, "getLedgerToday", {});
  return Object.fromEntries(
    res.entries.filter((e) => e.openRisk !== "0.00").map((e) => [e.engine, e.openRisk]),
  );
}

/** Runs SQL on central's store: its SQLite file, or its PostgreSQL database. */
async function onCentralStore(central: FleetProcess, location: string | undefined, text: string) {
  if (location === undefined) {
    const db = new Database(join(central.dataDir, "central.db"));
    try {
      db.exec(text);
    } finally {
      db.close();
    }
    return;
  }
  const client = new pg.Client({ connectionString: location });
  await client.connect();
  try {
    await client.query(text);
  } finally {
    await client.end();
  }
}

describe.each(centralStores(pgUp, drops))("the fleet trail on central ($name)", ({ up, store }) => {
  if (!up) return void it.skip("PostgreSQL at 127.0.0.1:5432 is unreachable", () => undefined);

  it("open risk equals the sidecar's, ListEvents lists its events, audit verify walks them", async () => {
    const location = await store();
    const central = await startCentral({ store: location });
    await central.grpc.call(
      GoLiveService,
      "enable",
      { actor: "ops", reason: "open", correlationId: "open" },
      { token: FLEET_TOKEN },
    );
    const s = await startFollower({
      central: central.grpcAddress,
      sidecarId: "sc-t",
      staleAfter: "1h",
    });
    await eventually("go-live to reach the sidecar", async () => {
      const state = await s.grpc.call(GoLiveService, "getState", {});
      return state.state?.goLiveEnabled === true;
    });
    const reserve = async (engine: string, amount: string, tag: string, ttlSeconds = 0) => {
      const r = await s.grpc.call(RiskService, "reserve", {
        engine,
        amount,
        actor: "engine",
        reason: "test",
        correlationId: tag,
        ttlSeconds,
      });
      expect(r.allowed).toBe(true);
      return r.reservationId;
    };
    const settled = await reserve("WHOLESALE", "10.00", "a");
    const released = await reserve("CAPITAL", "4.50", "b");
    await reserve("WHOLESALE", "7.25", "c");
    await reserve("CAPITAL", "3.10", "d");
    await reserve("WHOLESALE", "2.00", "e", 1);
    await s.grpc.call(RiskService, "settle", {
      reservationId: settled,
      realizedLoss: "1.5",
      correlationId: "a-s",
    });
    await s.grpc.call(RiskService, "release", { reservationId: released, correlationId: "b-x" });
    // The 1 s reservation is released by the sidecar's TTL sweep.
    await eventually(
      "the TTL sweep to release e",
      async () => (await openRiskOf(s)).WHOLESALE === "7.25",
      10_000,
    );
    const own = await openRiskOf(s);
    expect(own).toEqual({ WHOLESALE: "7.25", CAPITAL: "3.10", GLOBAL: "10.35" });

    const mine = await s.grpc.call(RiskService, "listEvents", { limit: 1000 });
    const head = mine.events.at(-1)?.seq ?? 0n;
    await eventually("central to hold the sidecar's events", async () => {
      const view = await central.grpc.call(SyncService, "listSidecars", {});
      return (view.sidecars.find((r) => r.sidecarId === "sc-t")?.shippedSeq ?? 0n) >= head;
    });
    expect(await openRiskOf(central)).toEqual(own);

    const fleet = await central.grpc.call(RiskService, "listEvents", {
      sidecarId: "sc-t",
      limit: 1000,
    });
    const listed = (events: typeof mine.events) =>
      events.map(
        (e) => `${e.seq} ${e.action} ${e.engine} ${e.amount} ${e.reservationId} ${e.hash}`,
      );
    expect(listed(fleet.events)).toEqual(listed(mine.events));
    expect(fleet.events.every((e) => e.sidecarId === "sc-t")).toBe(true);
    expect(mine.events.every((e) => e.sidecarId === "")).toBe(true);
    // The sidecar answers for its own id, and refuses another's and central's page_token.
    const named = await s.grpc.call(RiskService, "listEvents", { sidecarId: "sc-t", limit: 1000 });
    expect(listed(named.events)).toEqual(listed(mine.events));
    await rejects(
      s.grpc.call(RiskService, "listEvents", { sidecarId: "sc-u" }),
      Code.InvalidArgument,
      /this sidecar is sc-t .*ask central for sidecar sc-u's events/,
    );
    await rejects(
      s.grpc.call(RiskService, "listEvents", { pageToken: fleet.nextPageToken || "x" }),
      Code.InvalidArgument,
      /page_token pages central's listing.*after_seq/,
    );
    // govctl pointed at central: a sidecar column and how to read on.
    const one = await govctl([
      "--addr",
      central.grpcAddress,
      "risk",
      "events",
      "--sidecar",
      "sc-t",
      "--limit",
      "2",
    ]);
    expect(one.stdout).toMatch(/^sidecar\s+seq/);
    const second = mine.events[1]?.seq;
    expect(one.stdout).toMatch(new RegExp(`more events: add --after ${second}\\b`));
    const all = await govctl(["--addr", central.grpcAddress, "risk", "events", "--limit", "2"]);
    expect(all.stdout).toMatch(new RegExp(`more events: add --page-token ${second}:sc-t`));

    const centralStore = location ?? `sqlite:${join(central.dataDir, "central.db")}`;
    const verify = () =>
      spawnSync(
        "node",
        ["dist/src/cli/govd.js", "audit", "verify", "--central-store", centralStore],
        { encoding: "utf8" },
      );
    const intact = verify();
    expect(intact.stdout).toMatch(/sidecar sc-t: OK, \d+ events, ends at central's anchor/);
    expect(intact.status).toBe(0);
    // The sidecar stops shipping, then event 3 of its trail disappears from central.
    await s.stop();
    await onCentralStore(
      central,
      location,
      "DELETE FROM central_event WHERE sidecar_id = 'sc-t' AND seq = 3",
    );
    const cut = verify();
    expect(cut.stdout).toMatch(/sidecar sc-t: BROKEN at event 3: expected event 3 here/);
    expect(cut.status).toBe(1);
  });
});
