/** Central's ack batches: acks that arrive together are judged and written together, on both engines. */
import { describe, expect, it } from "vitest";
import {
  ACK_GATHER_MS,
  type AckOutcome,
  ackGatherMs,
  CATCHING_UP_MS,
  Fleet,
} from "../src/sync/central/fleet.js";
import { centralFixture, storeEngines } from "./support/central-fixture.js";

const engines = await storeEngines();

it("gathers acks for a moment, except a sidecar's acks one after another (catching up)", () => {
  const last = { sidecarIds: new Set(["s1"]), atMs: 1_000 };
  expect(ackGatherMs("s2", last, 1_010)).toBe(ACK_GATHER_MS);
  expect(ackGatherMs("s1", last, 1_010)).toBe(0);
  expect(ackGatherMs("s1", last, 1_100)).toBe(0);
  // The same sidecar acking a later change, not a run of them.
  expect(ackGatherMs("s1", last, 1_101)).toBe(ACK_GATHER_MS);
  expect(ackGatherMs("s1", { sidecarIds: new Set(), atMs: 0 }, 10)).toBe(ACK_GATHER_MS);
});

describe.each(engines)("ack batches on $name", (engine) => {
  const { start } = centralFixture(engine);

  it.skipIf(engine.skip)(
    "takes every ack that is news against the row before the batch, keeps the newest, and refuses the rest",
    async () => {
      const c = await start();
      const fleet = new Fleet(c.store.db, c.store.engine);
      for (const id of ["s1", "s2", "s3"]) {
        await fleet.opened(
          id,
          ["CAPITAL"],
          { revision: 2, digest: `d2-${id}` },
          "r",
          1_000,
          undefined,
        );
      }
      // The first ack is written alone (its batch gathers no other); the rest form one batch,
      // gathered because s1's next ack comes after the catching-up moment.
      expect(await fleet.acked("s1", 5, "d5", 2_000)).toEqual({ kind: "recorded" });
      await new Promise((r) => setTimeout(r, CATCHING_UP_MS + 20));
      const rest: Promise<AckOutcome>[] = [
        fleet.acked("s1", 7, "d7", 2_001),
        fleet.acked("s1", 6, "d6", 2_002), // older than 7, but news against 5: taken, 7 stays
        fleet.acked("s2", 2, "d2-s2", 2_003), // what s2 already applied
        fleet.acked("s2", 4, "d4", 2_004),
        fleet.acked("nobody", 4, "d4", 2_005),
        fleet.acked("s1", 3, "d3", 2_006), // older than the 5 before the batch
      ];
      expect(await Promise.all(rest)).toEqual([
        { kind: "recorded" },
        { kind: "recorded" },
        { kind: "already", applied: 2 },
        { kind: "recorded" },
        { kind: "unknown" },
        { kind: "already", applied: 5 },
      ]);
      const rows = new Map((await fleet.list()).map((r) => [r.sidecarId, r]));
      expect(rows.get("s1")).toMatchObject({
        appliedRevision: 7,
        appliedDigest: "d7",
        lastHeardMs: 2_001,
      });
      expect(rows.get("s2")).toMatchObject({
        appliedRevision: 4,
        appliedDigest: "d4",
        lastHeardMs: 2_004,
      });
      // An untouched row keeps what it had.
      expect(rows.get("s3")).toMatchObject({ appliedRevision: 2, appliedDigest: "d2-s3" });
      expect(await fleet.appliedRevisions(["s1", "s2", "s3", "nobody"])).toEqual(
        new Map([
          ["s1", 7],
          ["s2", 4],
          ["s3", 2],
        ]),
      );
      // Each recorded ack has its row, and WaitForAcks reads when each first reached a revision.
      expect(await fleet.ackTimes(6, ["s1", "s2"])).toEqual(new Map([["s1", 2_001]]));
      expect(await fleet.ackTimes(4, ["s1", "s2", "s3"])).toEqual(
        new Map([
          ["s1", 2_000],
          ["s2", 2_004],
        ]),
      );
      // A row another replica moved further: an older ack of it changes nothing.
      await c.store.db
        .updateTable("central_sidecar")
        .set({ applied_revision: 20, applied_digest: "d20" })
        .where("sidecar_id", "=", "s3")
        .execute();
      expect(await fleet.acked("s3", 9, "d9", 3_000)).toEqual({ kind: "already", applied: 20 });
      expect(await fleet.get("s3")).toMatchObject({ appliedRevision: 20, appliedDigest: "d20" });
    },
  );

  it.skipIf(engine.skip)(
    "writes acks of several sidecars that arrive a moment apart in one batch",
    async () => {
      const c = await start();
      const fleet = new Fleet(c.store.db, c.store.engine);
      const ids = ["s1", "s2", "s3"];
      for (const id of ids) {
        await fleet.opened(id, [], { revision: 1, digest: "d1" }, "r", 1_000, undefined);
      }
      const written = fleet.nextAcks(5_000);
      let settled = 0;
      const ack = (id: string, at: number) => {
        const outcome = fleet.acked(id, 2, "d2", at);
        void outcome.then(() => settled++);
        return outcome;
      };
      const acks = [ack("s1", 2_000)];
      // The others arrive after the first, within the gathering moment.
      await new Promise((r) => setImmediate(r));
      acks.push(ack("s2", 2_001), ack("s3", 2_002));
      await written;
      // The first batch written held all three: each was answered with it.
      expect(settled).toBe(3);
      expect(await fleet.appliedRevisions(ids)).toEqual(
        new Map([
          ["s1", 2],
          ["s2", 2],
          ["s3", 2],
        ]),
      );
      expect(await Promise.all(acks)).toEqual(Array(3).fill({ kind: "recorded" }));
    },
  );

  it.skipIf(engine.skip)(
    "writes the acks still gathering when drained (at shutdown, before the store closes)",
    async () => {
      const c = await start();
      const fleet = new Fleet(c.store.db, c.store.engine);
      await fleet.opened("s1", [], { revision: 1, digest: "d1" }, "r", 1_000, undefined);
      let outcome: AckOutcome | undefined;
      void fleet.acked("s1", 2, "d2", 2_000).then((o) => {
        outcome = o;
      });
      await fleet.drain();
      expect(outcome).toEqual({ kind: "recorded" });
      expect(await fleet.appliedRevisions(["s1"])).toEqual(new Map([["s1", 2]]));
      // Nothing pending: at once.
      await fleet.drain();
    },
  );

  it.skipIf(engine.skip)(
    "moves a batch larger than one statement's share forward whole",
    async () => {
      const c = await start();
      const fleet = new Fleet(c.store.db, c.store.engine);
      const ids = Array.from({ length: 600 }, (_, i) => `s${String(i).padStart(3, "0")}`);
      for (const id of ids) {
        await fleet.opened(id, [], { revision: 1, digest: "d1" }, "r", 1_000, undefined);
      }
      // Acks arriving together form one batch of three statements' worth.
      const outcomes = await Promise.all(
        ids.map((id, i) => fleet.acked(id, 2 + (i % 3), `d${i}`, 2_000 + i)),
      );
      expect(outcomes.every((o) => o.kind === "recorded")).toBe(true);
      const applied = await fleet.appliedRevisions(ids);
      expect(ids.filter((id, i) => applied.get(id) !== 2 + (i % 3))).toEqual([]);
      expect((await fleet.get("s599"))?.appliedDigest).toBe("d599");
    },
    30_000,
  );
});
