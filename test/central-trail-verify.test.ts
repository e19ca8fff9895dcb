/**
 * `govd audit verify --central-store` (SQLite and PostgreSQL): every sidecar's shipped trail
 * is walked from genesis in pages and must end at central's anchor; an edited event, a removed
 * middle event and removed newest events (the anchor no longer met) are each caught and named
 * by seq, and the other sidecars' trails still report OK.
 */
import { afterEach, describe, expect, it } from "vitest";
import { SyncService } from "../gen/governance/v1/sync_pb.js";
import { verifyCentralTrails } from "../src/cli/central-audit.js";
import { centralEventRowOf } from "../src/sync/central/event-rows.js";
import {
  anchorProblem,
  verifyFleetTrails,
  verifySidecarTrail,
} from "../src/sync/central/trail-verify.js";
import {
  inProcessCentralStores,
  postgresReachable,
  type RunningCentral,
  startCentral,
} from "./support/central.js";
import { linkedEvents } from "./support/shipped-chain.js";

const pgUp = await postgresReachable();
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe("anchorProblem", () => {
  const anchor = { shippedSeq: 5, shippedHash: "a".repeat(64) };
  it("holds when the trail ends at the anchor", () => {
    expect(anchorProblem(5, "a".repeat(64), anchor)).toBeUndefined();
    expect(anchorProblem(0, "", { shippedSeq: 0, shippedHash: "" })).toBeUndefined();
  });
  it("names the first missing seq when the newest events are gone", () => {
    expect(anchorProblem(3, "b".repeat(64), anchor)?.seq).toBe(4);
  });
  it("names events past the anchor and a rewritten newest event", () => {
    expect(anchorProblem(7, "b".repeat(64), anchor)?.seq).toBe(6);
    expect(anchorProblem(5, "b".repeat(64), anchor)?.problem).toMatch(/rewritten/);
  });
});

const stores = inProcessCentralStores(pgUp);

describe.each(stores)("audit verify on central ($name)", ({ up, location }) => {
  if (!up) return void it.skip("PostgreSQL at 127.0.0.1:5432 is unreachable", () => undefined);

  /** A central holding 3 sidecars' trails of 12 events each, shipped in 2 batches. */
  async function fleet(): Promise<{ c: RunningCentral; url: string }> {
    const db = await location();
    cleanups.push(db.drop);
    const c = await startCentral(db.url);
    cleanups.push(c.close);
    for (const sidecarId of ["sc-a", "sc-b", "sc-c"]) {
      const rows = Array.from({ length: 12 }, (_, i) => ({
        action: i % 2 === 0 ? "RESERVE" : "RELEASE",
        subject: "WHOLESALE",
        amount: 1_000_000n * BigInt(i + 1),
        reservation_id: `${sidecarId}-r${i >> 1}`,
        reason: `${sidecarId} event ${i + 1}`,
      }));
      const { events } = linkedEvents(rows);
      for (const [from, to] of [
        [0, 7],
        [7, 12],
      ] as const) {
        const batch = events.slice(from, to);
        await c.caller.call(SyncService, "shipEvents", {
          sidecarId,
          events: batch,
          prevHash: from === 0 ? "" : (events[from - 1]?.hash ?? ""),
          headSeq: 12n,
          headHash: events[11]?.hash ?? "",
        });
      }
    }
    return { c, url: db.url };
  }

  async function reports(c: RunningCentral) {
    const out: Record<string, { ok: boolean; seq?: number; problem?: string; events: number }> = {};
    // Pages of 5: each trail is read in three pages.
    for await (const r of verifyFleetTrails(c.store.db, 5)) {
      out[r.sidecarId] = {
        ok: r.ok,
        seq: r.firstBroken?.seq,
        problem: r.firstBroken?.problem,
        events: r.events,
      };
    }
    return out;
  }

  it("reports every intact trail OK, and the command exits clean", async () => {
    const { c, url } = await fleet();
    const r = await reports(c);
    expect(Object.keys(r)).toEqual(["sc-a", "sc-b", "sc-c"]);
    for (const id of ["sc-a", "sc-b", "sc-c"])
      expect(r[id]).toMatchObject({ ok: true, events: 12 });
    const lines: string[] = [];
    expect(await verifyCentralTrails(url, (l) => lines.push(l))).toBe(true);
    expect(lines).toContain("sidecar sc-b: OK, 12 events, ends at central's anchor 12");
    expect(lines.at(-1)).toMatch(/3 sidecar trails intact \(36 events\)/);
  });

  it("catches an edited event, a removed middle event and removed newest events", async () => {
    const { c, url } = await fleet();
    const db = c.store.db;
    await db
      .updateTable("central_event")
      .set({ amount: 9_000_000 })
      .where("sidecar_id", "=", "sc-a")
      .where("seq", "=", 8)
      .execute();
    await db
      .deleteFrom("central_event")
      .where("sidecar_id", "=", "sc-b")
      .where("seq", "=", 6)
      .execute();
    await db
      .deleteFrom("central_event")
      .where("sidecar_id", "=", "sc-c")
      .where("seq", ">", 10)
      .execute();
    const r = await reports(c);
    expect(r["sc-a"]).toMatchObject({ ok: false, seq: 8 });
    expect(r["sc-a"]?.problem).toMatch(/edited/);
    expect(r["sc-b"]).toMatchObject({ ok: false, seq: 6 });
    expect(r["sc-b"]?.problem).toMatch(/expected event 6 here: events were removed/);
    expect(r["sc-c"]).toMatchObject({ ok: false, seq: 11 });
    expect(r["sc-c"]?.problem).toMatch(/ends at event 10 but central acked events up to 12/);
    const lines: string[] = [];
    expect(await verifyCentralTrails(url, (l) => lines.push(l))).toBe(false);
    expect(lines.filter((l) => l.includes("BROKEN at event"))).toHaveLength(3);
    expect(lines.at(-1)).toMatch(/3 of 3 sidecar trails BROKEN/);
  });

  it("catches a rewritten trail that still links but no longer meets the anchor", async () => {
    const { c } = await fleet();
    // sc-a's events 11 and 12 replaced by a linked pair with other contents.
    const held = await c.store.db
      .selectFrom("central_event")
      .select("hash")
      .where("sidecar_id", "=", "sc-a")
      .where("seq", "=", 10)
      .executeTakeFirstOrThrow();
    const { events } = linkedEvents(
      [
        { action: "RESERVE", subject: "WHOLESALE", amount: 1n },
        { action: "RELEASE", subject: "WHOLESALE", amount: 1n },
      ],
      11,
      held.hash,
    );
    await c.store.db
      .deleteFrom("central_event")
      .where("sidecar_id", "=", "sc-a")
      .where("seq", ">", 10)
      .execute();
    for (const e of events) {
      // Behind ShipEvents: rows as ingest stores them, but never checked against the chain.
      await c.store.db.insertInto("central_event").values(centralEventRowOf("sc-a", e)).execute();
    }
    const r = await reports(c);
    expect(r["sc-a"]).toMatchObject({ ok: false, seq: 12 });
    expect(r["sc-a"]?.problem).toMatch(/rewritten/);
    expect(r["sc-b"]?.ok).toBe(true);
  });

  it("reports a trail that grows while it is walked OK (central keeps serving)", async () => {
    const { c } = await fleet();
    const rows = Array.from({ length: 120 }, (_, i) => ({
      action: "RESERVE",
      subject: "WHOLESALE",
      amount: 1_000_000n,
      reservation_id: `grow-${i}`,
    }));
    const { events } = linkedEvents(rows);
    // sc-d ships 2 events at a time while its trail is walked 3 events a page, again and again.
    const shipping = (async () => {
      for (let i = 0; i < events.length; i += 2) {
        await c.caller.call(SyncService, "shipEvents", {
          sidecarId: "sc-d",
          events: events.slice(i, i + 2),
          prevHash: i === 0 ? "" : (events[i - 1]?.hash ?? ""),
          headSeq: BigInt(i + 2),
          headHash: events[i + 1]?.hash ?? "",
        });
      }
    })();
    let walks = 0;
    let done = false;
    void shipping.finally(() => {
      done = true;
    });
    const breaks: unknown[] = [];
    while (!done) {
      const r = await verifySidecarTrail(c.store.db, "sc-d", 3);
      if (r.firstBroken) breaks.push(r.firstBroken);
      walks++;
      // On SQLite every query settles without the event loop: let the shipments' calls run.
      await new Promise((resolve) => setImmediate(resolve));
    }
    await shipping;
    // Asserted after the shipments ended, so a failure leaves no call running into cleanup.
    expect(breaks).toEqual([]);
    expect(walks).toBeGreaterThan(1);
    expect(await verifySidecarTrail(c.store.db, "sc-d", 3)).toMatchObject({
      ok: true,
      events: 120,
    });
  });
});
