/**
 * Event shipping with real processes on loopback, central on SQLite and on PostgreSQL:
 * sidecars under Reserve/Settle/Release load ship their audit trails; kill -9 of a sidecar and
 * of central in the middle of it, repeated, loses no event and counts none twice (central's
 * fleet ledger equals the sum of the sidecars' own ledgers, for every engine and GLOBAL); a
 * partition keeps the sidecar deciding and the backlog drains when the link returns; a sidecar
 * restored from an old copy of its store is refused, named in the fleet view, and central
 * keeps what it held; `govd audit verify --central` catches the newest events deleted from a
 * sidecar's store, which the local chain walk cannot see.
 */
import { spawnSync } from "node:child_process";
import { cpSync, rmSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import pg from "pg";
import { afterEach, describe, expect, it } from "vitest";
import { GoLiveService } from "../gen/governance/v1/golive_pb.js";
import { RiskService } from "../gen/governance/v1/risk_pb.js";
import { SyncService } from "../gen/governance/v1/sync_pb.js";
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
import { startTcpProxy, type TcpProxy } from "./support/tcp-proxy.js";

const pgUp = await postgresReachable();
const proxies: TcpProxy[] = [];
const drops: (() => Promise<void>)[] = [];
afterEach(async () => {
  await stopAll();
  for (const p of proxies.splice(0)) await p.close();
  for (const d of drops.splice(0)) await d();
});

const stores = centralStores(pgUp, drops);

const ENGINES = ["WHOLESALE", "CAPITAL"];

/** Reserves, then settles or releases, `n` times; calls to a killed process just fail. */
async function load(s: FleetProcess, tag: string, n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    try {
      const engine = ENGINES[i % ENGINES.length] as string;
      const r = await s.grpc.call(RiskService, "reserve", {
        engine,
        amount: `${1 + (i % 3)}.25`,
        actor: "engine",
        reason: "load",
        correlationId: `${tag}-r-${i}`,
      });
      if (!r.allowed) continue;
      if (i % 3 === 0) {
        await s.grpc.call(RiskService, "release", {
          reservationId: r.reservationId,
          correlationId: `${tag}-x-${i}`,
        });
      } else {
        await s.grpc.call(RiskService, "settle", {
          reservationId: r.reservationId,
          realizedLoss: "0.5",
          correlationId: `${tag}-s-${i}`,
        });
      }
    } catch {
      // the process was killed under it; its store says what was decided
    }
  }
}

/** The newest audit seq in a sidecar's store (read-only, beside the running process). */
function headSeq(s: FleetProcess): number {
  const db = new Database(join(s.dataDir, "sidecar.db"), { readonly: true });
  try {
    return (db.prepare("SELECT coalesce(max(seq), 0) AS n FROM audit_event").get() as { n: number })
      .n;
  } finally {
    db.close();
  }
}

/** govd_outbox_events on a sidecar's /metrics. */
async function outboxOf(s: FleetProcess): Promise<number> {
  const text = await (await fetch(`${s.httpUrl}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith("govd_outbox_events "));
  return Number(line?.split(" ")[1]);
}

type Figures = Record<string, { exposure: string; loss: string; actions: number; denials: number }>;

async function ledgerOf(p: FleetProcess): Promise<Figures> {
  const res = await p.grpc.call(RiskService, "getLedgerToday", {});
  return Object.fromEntries(
    res.entries
      .filter((e) => e.actions > 0 || e.denials > 0 || e.exposureUsed !== "0.00")
      .map((e) => [
        e.engine,
        { exposure: e.exposureUsed, loss: e.realizedLoss, actions: e.actions, denials: e.denials },
      ]),
  );
}

/** The sum of the sidecars' own ledgers, per engine and GLOBAL. */
async function sumOf(sidecars: FleetProcess[]): Promise<Figures> {
  const cents = (m: string) => BigInt(m.replace(".", ""));
  const money = (c: bigint) => `${c / 100n}.${(c % 100n).toString().padStart(2, "0")}`;
  const sums = new Map<
    string,
    { exposure: bigint; loss: bigint; actions: number; denials: number }
  >();
  for (const s of sidecars) {
    for (const [engine, f] of Object.entries(await ledgerOf(s))) {
      const t = sums.get(engine) ?? { exposure: 0n, loss: 0n, actions: 0, denials: 0 };
      t.exposure += cents(f.exposure);
      t.loss += cents(f.loss);
      t.actions += f.actions;
      t.denials += f.denials;
      sums.set(engine, t);
    }
  }
  return Object.fromEntries(
    [...sums].map(([engine, t]) => [
      engine,
      { exposure: money(t.exposure), loss: money(t.loss), actions: t.actions, denials: t.denials },
    ]),
  );
}

/** Waits until central holds every event of every sidecar, then compares the ledgers. */
async function drainedAndEqual(central: FleetProcess, sidecars: FleetProcess[]) {
  for (const s of sidecars) {
    const id = sidecarIdOf.get(s);
    await eventually(
      `central to hold every event of ${id}`,
      async () => {
        const view = await central.grpc.call(SyncService, "listSidecars", {});
        const row = view.sidecars.find((r) => r.sidecarId === id);
        return row !== undefined && row.shippedSeq === BigInt(headSeq(s));
      },
      20_000,
    );
  }
  const fleet = await ledgerOf(central);
  expect(fleet.GLOBAL?.actions).toBeGreaterThan(0);
  expect(fleet).toEqual(await sumOf(sidecars));
}

const sidecarIdOf = new WeakMap<FleetProcess, string>();

/** The newest event central holds of one sidecar. */
async function shippedOf(central: FleetProcess, id: string): Promise<bigint> {
  const view = await central.grpc.call(SyncService, "listSidecars", {});
  return view.sidecars.find((r) => r.sidecarId === id)?.shippedSeq ?? 0n;
}

/** Rows of central_event, read from central's store (its SQLite file, or PostgreSQL). */
async function centralEvents(central: FleetProcess, location: string | undefined) {
  const query = "SELECT count(*) AS n FROM central_event";
  if (location === undefined) {
    const db = new Database(join(central.dataDir, "central.db"), { readonly: true });
    try {
      return Number((db.prepare(query).get() as { n: number }).n);
    } finally {
      db.close();
    }
  }
  const client = new pg.Client({ connectionString: location });
  await client.connect();
  try {
    return Number((await client.query<{ n: string }>(query)).rows[0]?.n);
  } finally {
    await client.end();
  }
}

async function sidecar(central: string, id: string, dataDir?: string): Promise<FleetProcess> {
  const s = await startFollower({ central, sidecarId: id, dataDir, staleAfter: "1h" });
  sidecarIdOf.set(s, id);
  return s;
}

describe.each(stores)("event shipping to central ($name)", ({ up, store }) => {
  if (!up) return void it.skip("PostgreSQL at 127.0.0.1:5432 is unreachable", () => undefined);

  it("loses no event and counts none twice through kill -9 of sidecars and of central under load", async () => {
    const location = await store();
    const centralDir = fleetDir("central");
    let central = await startCentral({ store: location, dataDir: centralDir });
    const ports = { grpcPort: central.grpcPort, httpPort: central.httpPort };
    await central.grpc.call(
      GoLiveService,
      "enable",
      { actor: "ops", reason: "open", correlationId: "open" },
      { token: FLEET_TOKEN },
    );
    const sidecars = [
      await sidecar(central.grpcAddress, "sc-a"),
      await sidecar(central.grpcAddress, "sc-b"),
    ];
    for (let round = 0; round < 3; round++) {
      const b = sidecars[1] as FleetProcess;
      const base = headSeq(b);
      const shippedA = await shippedOf(central, "sc-a");
      const running = sidecars.map((s, i) => load(s, `round${round}-${i}`, 120));
      // Mid-shipping: sidecar b dies once it wrote events this round, and comes back on its store.
      await eventually("sidecar b to write events", () => headSeq(b) > base + 20, 15_000);
      await b.kill();
      sidecars[1] = await sidecar(central.grpcAddress, "sc-b", b.dataDir);
      // Mid-ingesting: central dies once it took events of this round, and comes back on its
      // store, on the same ports.
      await eventually(
        "central to take events of this round",
        async () => (await shippedOf(central, "sc-a")) > shippedA,
        15_000,
      );
      await central.kill();
      central = await startCentral({ store: location, dataDir: centralDir, ...ports });
      await Promise.all(running);
      await load(sidecars[1] as FleetProcess, `round${round}-after`, 20);
    }
    await drainedAndEqual(central, sidecars);
    // Every event of every sidecar, once.
    expect(await centralEvents(central, location)).toBe(
      sidecars.reduce((n, s) => n + headSeq(s), 0),
    );
  });

  it("keeps deciding through a partition and drains the backlog when the link returns", async () => {
    const central = await startCentral({ store: await store() });
    const proxy = await startTcpProxy(central.grpcAddress);
    proxies.push(proxy);
    await central.grpc.call(
      GoLiveService,
      "enable",
      { actor: "ops", reason: "open", correlationId: "open" },
      { token: FLEET_TOKEN },
    );
    const s = await sidecar(proxy.address, "sc-p");
    await load(s, "before", 20);
    await drainedAndEqual(central, [s]);
    const shippedBefore = headSeq(s);
    proxy.cut();
    await load(s, "during", 60);
    expect(headSeq(s)).toBeGreaterThan(shippedBefore + 60);
    const view = await central.grpc.call(SyncService, "listSidecars", {});
    expect(view.sidecars[0]?.shippedSeq).toBe(BigInt(shippedBefore));
    // The sidecar's own view of its backlog: at least what central lacks (an answer lost to the
    // cut leaves the last batch counted until the sidecar asks central what it holds).
    const backlog = await outboxOf(s);
    expect(backlog).toBeGreaterThanOrEqual(headSeq(s) - shippedBefore);
    expect(backlog).toBeLessThanOrEqual(headSeq(s));
    proxy.restore();
    await drainedAndEqual(central, [s]);
    // The sidecar sees it once central's answer is back.
    await eventually(
      "the sidecar's outbox to drain",
      async () => (await outboxOf(s)) === 0,
      15_000,
    );
  });

  it("refuses a sidecar restored from an old copy of its store and keeps what it held", async () => {
    const central = await startCentral({ store: await store() });
    await central.grpc.call(
      GoLiveService,
      "enable",
      { actor: "ops", reason: "open", correlationId: "open" },
      { token: FLEET_TOKEN },
    );
    let s = await sidecar(central.grpcAddress, "sc-r");
    await load(s, "one", 10);
    await s.stop();
    const backup = fleetDir("backup");
    cpSync(s.dataDir, backup, { recursive: true });
    s = await sidecar(central.grpcAddress, "sc-r", s.dataDir);
    await load(s, "two", 30);
    await drainedAndEqual(central, [s]);
    const held = await ledgerOf(central);
    const shipped = headSeq(s);
    await s.stop();
    rmSync(s.dataDir, { recursive: true, force: true });
    cpSync(backup, s.dataDir, { recursive: true });
    s = await sidecar(central.grpcAddress, "sc-r", s.dataDir);
    await load(s, "three", 10);
    const row = await eventually("the fleet view to name the conflict", async () => {
      const view = await central.grpc.call(SyncService, "listSidecars", {});
      const r = view.sidecars.find((x) => x.sidecarId === "sc-r");
      return r?.shipConflict ? r : undefined;
    });
    expect(row.shipConflict).toMatch(/diverged|central holds its events up to/);
    expect(row.shippedSeq).toBe(BigInt(shipped));
    expect(await ledgerOf(central)).toEqual(held);
  });

  it("audit verify against central's anchor catches the newest events deleted", async () => {
    const central = await startCentral({ store: await store() });
    const s = await sidecar(central.grpcAddress, "sc-v");
    await load(s, "v", 15);
    await eventually("central to hold every event", async () => {
      const view = await central.grpc.call(SyncService, "listSidecars", {});
      return view.sidecars.find((r) => r.sidecarId === "sc-v")?.shippedSeq === BigInt(headSeq(s));
    });
    const head = headSeq(s);
    await s.stop();
    const verify = () =>
      spawnSync(
        "node",
        [
          "dist/src/cli/govd.js",
          ...["audit", "verify", "--data-dir", s.dataDir],
          ...["--central", central.grpcAddress, "--sidecar-id", "sc-v"],
        ],
        { encoding: "utf8" },
      );
    const intact = verify();
    expect(intact.stdout).toMatch(new RegExp(`central's anchor holds: event ${head} matches`));
    expect(intact.status).toBe(0);
    // Delete the newest 3 events, as someone with the file and no scruples would.
    const db = new Database(join(s.dataDir, "sidecar.db"));
    db.exec("DROP TRIGGER audit_event_no_delete");
    db.prepare("DELETE FROM audit_event WHERE seq > ?").run(head - 3);
    db.close();
    const cut = verify();
    expect(cut.stdout).toMatch(/audit chain intact/);
    expect(cut.stdout).toMatch(
      new RegExp(`BROKEN against central's anchor: central holds shipped event ${head} .*removed`),
    );
    expect(cut.status).toBe(1);
  });
});
