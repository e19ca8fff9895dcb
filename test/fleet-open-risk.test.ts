/**
 * The fleet's open risk on central (SQLite and PostgreSQL), booked with each shipment: RESERVE
 * opens, SETTLE, RELEASE and TTL expiry close by reservation id across batches, per sidecar
 * (the same id at two sidecars is two reservations), and GetLedgerToday shows it per engine
 * and GLOBAL. Migration 5 books the events central held before it the same way.
 */
import { afterEach, describe, expect, it } from "vitest";
import { RiskService } from "../gen/governance/v1/risk_pb.js";
import { SyncService } from "../gen/governance/v1/sync_pb.js";
import { migrateCentral } from "../src/sync/central/central-schema.js";
import { fleetOpenRiskOf } from "../src/sync/central/fleet-open-risk.js";
import {
  inProcessCentralStores,
  postgresReachable,
  type RunningCentral,
  startCentral,
} from "./support/central.js";
import { type ChainRow, linkedEvents } from "./support/shipped-chain.js";

const pgUp = await postgresReachable();
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const M = 1_000_000n;
/** One time for every event, so the same rows always link to the same hashes. */
const NOW = Date.now();

/** sc-1's trail: two batches; WHOLESALE keeps r3 (7) open, CAPITAL nothing. */
const BATCHES: ChainRow[][] = (
  [
    [
      { action: "RESERVE", subject: "WHOLESALE", amount: 10n * M, reservation_id: "r1" },
      { action: "RESERVE", subject: "CAPITAL", amount: 5n * M, reservation_id: "r2" },
      { action: "DENY", subject: "WHOLESALE", amount: 900n * M, denial_counted: 1 },
      { action: "SETTLE", subject: "WHOLESALE", amount: 2n * M, reservation_id: "r1" },
      { action: "RESERVE", subject: "WHOLESALE", amount: 7n * M, reservation_id: "r3" },
    ],
    [
      {
        action: "RELEASE",
        subject: "CAPITAL",
        amount: 5n * M,
        reservation_id: "r2",
        metadata: '{"ttl":"expired"}',
      },
      // Settled after its TTL released it: frees nothing more.
      { action: "SETTLE", subject: "CAPITAL", amount: 1n * M, reservation_id: "r2" },
    ],
  ] as ChainRow[][]
).map((b) => b.map((r) => ({ ...r, time_ms: NOW })));

const stores = inProcessCentralStores(pgUp);

describe.each(stores)("the fleet's open risk on central ($name)", ({ up, location }) => {
  if (!up) return void it.skip("PostgreSQL at 127.0.0.1:5432 is unreachable", () => undefined);

  async function central(): Promise<RunningCentral> {
    const db = await location();
    cleanups.push(db.drop);
    const c = await startCentral(db.url);
    cleanups.push(c.close);
    return c;
  }

  /** Ships `batches` as one sidecar's trail, one ShipEvents call per batch. */
  async function shipTrail(c: RunningCentral, sidecarId: string, batches: ChainRow[][]) {
    const { events } = linkedEvents(batches.flat());
    let from = 0;
    for (const b of batches) {
      const batch = events.slice(from, from + b.length);
      await c.caller.call(SyncService, "shipEvents", {
        sidecarId,
        events: batch,
        prevHash: from === 0 ? "" : (events[from - 1]?.hash ?? ""),
        headSeq: BigInt(events.length),
        headHash: events.at(-1)?.hash ?? "",
      });
      from += b.length;
    }
  }

  async function openRisk(c: RunningCentral) {
    const ledger = await c.caller.call(RiskService, "getLedgerToday", {});
    return Object.fromEntries(ledger.entries.map((e) => [e.engine, e.openRisk]));
  }

  it("opens and closes by reservation id across batches, and GetLedgerToday shows it", async () => {
    const c = await central();
    await shipTrail(c, "sc-1", BATCHES.slice(0, 1));
    expect(await openRisk(c)).toMatchObject({
      WHOLESALE: "7.00",
      CAPITAL: "5.00",
      GLOBAL: "12.00",
    });
    const { events } = linkedEvents(BATCHES.flat());
    await c.caller.call(SyncService, "shipEvents", {
      sidecarId: "sc-1",
      events: events.slice(5),
      prevHash: events[4]?.hash ?? "",
      headSeq: 7n,
      headHash: events[6]?.hash ?? "",
    });
    expect(await openRisk(c)).toMatchObject({
      WHOLESALE: "7.00",
      CAPITAL: "0.00",
      GLOBAL: "7.00",
    });
    // The same reservation ids at another sidecar are its own reservations.
    await shipTrail(c, "sc-2", [BATCHES[0] ?? []]);
    expect(await openRisk(c)).toMatchObject({
      WHOLESALE: "14.00",
      CAPITAL: "5.00",
      GLOBAL: "19.00",
    });
    const held = await c.store.db
      .selectFrom("central_open_reservation")
      .select(["sidecar_id", "reservation_id"])
      .orderBy("sidecar_id")
      .orderBy("reservation_id")
      .execute();
    expect(held.map((r) => `${r.sidecar_id}/${r.reservation_id}`)).toEqual([
      "sc-1/r3",
      "sc-2/r2",
      "sc-2/r3",
    ]);
  });

  it("migration 5 books the open risk of the events central held before it", async () => {
    const c = await central();
    await shipTrail(c, "sc-1", BATCHES);
    await shipTrail(c, "sc-2", [BATCHES[0] ?? []]);
    const booked = await fleetOpenRiskOf(c.store.db);
    // As a store that held these events before migration 5: its tables gone, then migrated.
    await c.store.db.schema.dropTable("central_open_reservation").execute();
    await c.store.db.schema.dropTable("central_open_risk").execute();
    await c.store.db.deleteFrom("central_migration").where("version", "=", 5).execute();
    expect(await migrateCentral(c.store.db, c.store.engine)).toHaveLength(1);
    expect(await fleetOpenRiskOf(c.store.db)).toEqual(booked);
    expect(Object.fromEntries(booked)).toMatchObject({
      WHOLESALE: 14n * M,
      CAPITAL: 5n * M,
      GLOBAL: 19n * M,
    });
  });

  it("books two sidecars' shipments at once, engines in opposite orders, without a deadlock", async () => {
    const c = await central();
    const trail = (first: string, second: string) =>
      linkedEvents(
        Array.from({ length: 60 }, (_, i) => ({
          action: "RESERVE",
          subject: i % 2 === 0 ? first : second,
          amount: M,
          reservation_id: `r${i}`,
          time_ms: NOW,
        })),
      ).events;
    const shipAll = async (sidecarId: string, events: ReturnType<typeof trail>) => {
      for (let i = 0; i < events.length; i += 2) {
        await c.caller.call(SyncService, "shipEvents", {
          sidecarId,
          events: events.slice(i, i + 2),
          prevHash: i === 0 ? "" : (events[i - 1]?.hash ?? ""),
          headSeq: BigInt(i + 2),
          headHash: events[i + 1]?.hash ?? "",
        });
      }
    };
    await Promise.all([
      shipAll("sc-x", trail("WHOLESALE", "CAPITAL")),
      shipAll("sc-y", trail("CAPITAL", "WHOLESALE")),
    ]);
    expect(await openRisk(c)).toMatchObject({
      WHOLESALE: "60.00",
      CAPITAL: "60.00",
      GLOBAL: "120.00",
    });
  });
});
