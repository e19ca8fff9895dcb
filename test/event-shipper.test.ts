/**
 * The event shipper against a real central (in-process, SQLite, real gRPC): it does not poll
 * for events (a commit wakes it), a batch that is not full waits for the linger before it ships,
 * a full one ships at once, and what central acks is what the store holds.
 */
import pino from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { SyncService } from "../gen/governance/v1/sync_pb.js";
import { systemClock } from "../src/clock.js";
import { AuditLog } from "../src/store/audit-log.js";
import { GroupCommit } from "../src/store/group-commit.js";
import { EventShipper } from "../src/sync/follower/event-shipper.js";
import { SyncClient } from "../src/sync/follower/sync-client.js";
import { clientCredentials } from "../src/sync/tls/client-credentials.js";
import { startCentral, tempSqlite } from "./support/central.js";
import { eventually } from "./support/eventually.js";
import { openTempStore } from "./support/temp-store.js";

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A central, a sidecar store, and a shipper of that store to central (not started). */
async function setUp(options: { lingerMs: number; batchEvents?: number }) {
  const db = tempSqlite();
  cleanups.push(() => db.drop());
  const c = await startCentral(db.url);
  cleanups.push(() => c.close());
  const store = openTempStore();
  cleanups.push(() => store.remove());
  const commits = new GroupCommit(store.db);
  const audit = new AuditLog(store.db);
  const connection = clientCredentials({ central: c.grpcAddress, allowRemote: false });
  const client = new SyncClient(connection);
  cleanups.push(() => {
    client.close();
    connection.close();
  });
  const shipper = new EventShipper(
    {
      db: store.db,
      clock: systemClock,
      logger: pino({ level: "silent" }),
      sidecarId: "ship-1",
      // Polling would find events within this: a shipment sooner proves a commit woke it.
      idleMs: 60_000,
      ...options,
    },
    () => client,
    (work) => commits.runNow(work),
    () => commits.settled(),
  );
  commits.afterCommit = () => shipper.committed();
  cleanups.push(() => shipper.stop());
  /** Appends `n` events in one committed transaction; returns when it committed. */
  const append = (n: number) =>
    commits.runNow(() => {
      for (let i = 0; i < n; i++) {
        audit.append(
          {
            lever: "golive",
            action: "ENABLE",
            subject: "",
            ok: true,
            reason: `e${i}`,
            actor: "t",
            correlationId: `c${i}`,
          },
          systemClock.now(),
        );
      }
    });
  const shipped = async () => {
    const view = await c.caller.call(SyncService, "listSidecars", {});
    return Number(view.sidecars.find((s) => s.sidecarId === "ship-1")?.shippedSeq ?? 0n);
  };
  return { shipper, append, shipped };
}

describe("the event shipper", () => {
  it("is woken by a commit, not by polling, and ships a small batch after the linger", async () => {
    const { shipper, append, shipped } = await setUp({ lingerMs: 400 });
    shipper.start();
    // The first shipment asks central what it holds (nothing); then the shipper waits.
    await eventually(
      "the shipper's first word with central",
      () => shipper.status().shippedSeq === 0,
    );
    await new Promise((r) => setTimeout(r, 200));
    const committedAt = performance.now();
    append(3);
    await new Promise((r) => setTimeout(r, 150));
    // Lingering: three events are not a full batch, and the oldest is younger than 400 ms.
    expect(await shipped()).toBe(0);
    await eventually("the batch shipped", async () => (await shipped()) === 3, 5_000);
    const after = performance.now() - committedAt;
    // After the linger, and long before a poll (60 s) would have found the events.
    expect(after).toBeGreaterThanOrEqual(350);
    expect(after).toBeLessThan(5_000);
    expect(shipper.status()).toMatchObject({ shippedSeq: 3, headSeq: 3, events: 0 });
  });

  it("ships a full batch at once, and the rest after the linger", async () => {
    const { shipper, append, shipped } = await setUp({ lingerMs: 60_000, batchEvents: 5 });
    shipper.start();
    await eventually(
      "the shipper's first word with central",
      () => shipper.status().shippedSeq === 0,
    );
    append(12);
    // Two full batches go without waiting; the last two events wait for the (long) linger.
    await eventually("the full batches shipped", async () => (await shipped()) === 10, 5_000);
    await new Promise((r) => setTimeout(r, 300));
    expect(await shipped()).toBe(10);
    expect(shipper.status()).toMatchObject({ shippedSeq: 10, headSeq: 12, events: 2 });
  });
});
