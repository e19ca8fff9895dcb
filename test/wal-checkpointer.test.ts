import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runInNewContext } from "node:vm";
import { afterEach, describe, expect, it } from "vitest";
import { RiskService } from "../gen/governance/v1/risk_pb.js";
import { openDatabase } from "../src/store/database.js";
import { RESTART_FRAMES, WalCheckpointer, walTick } from "../src/store/wal-checkpointer.js";
import { enableGoLive, type RunningSidecar, startSidecar } from "./support/sidecar.js";

let s: RunningSidecar | undefined;
afterEach(async () => {
  await s?.stop();
  s = undefined;
});

async function until(check: () => boolean, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
}

describe("WAL checkpoints off the deciding thread", () => {
  it("leaves the serving connection without autocheckpoints and keeps the WAL bounded", async () => {
    s = await startSidecar({ checkpointIntervalMs: 50 });
    const running = s;
    expect(running.db.pragma("wal_autocheckpoint", { simple: true })).toBe(0);
    await enableGoLive(running.grpc);
    const walSizes: number[] = [];
    const frames: number[] = [];
    for (let round = 0; round < 4; round++) {
      await Promise.all(
        Array.from({ length: 150 }, (_, i) =>
          running.grpc.call(RiskService, "reserve", {
            engine: "NOTIFY",
            amount: "0",
            correlationId: `wal-${round}-${i}`,
          }),
        ),
      );
      // Two looks of the worker after the round: the second began after every commit of it.
      const before = running.sidecar.checkpoints().looks;
      await until(() => running.sidecar.checkpoints().looks > before + 1, 5_000);
      walSizes.push(statSync(`${running.dir}/sidecar.db-wal`).size);
      frames.push(running.sidecar.checkpoints().last?.log ?? 0);
    }
    const { runs, last } = running.sidecar.checkpoints();
    expect(runs).toBeGreaterThan(4);
    // Every frame of the WAL was copied back by the worker's PASSIVE checkpoint...
    expect(last?.checkpointed).toBe(last?.log);
    // ...so writers restart the WAL instead of growing it round after round: a round of 150
    // reservations writes about 1,300 frames (5 MB), four rounds without restarts about 5,200.
    expect(Math.min(...frames)).toBeGreaterThan(0);
    expect(Math.max(...frames)).toBeLessThan(3_000);
    expect(Math.max(...walSizes)).toBeLessThan(12 * 1024 * 1024);
    const ledger = await running.grpc.call(RiskService, "getLedgerToday", { engine: "NOTIFY" });
    expect(ledger.entries[0]?.actions).toBe(600);
  });

  it("starts the WAL over itself: a decision after a quiet moment writes no WAL header", async () => {
    s = await startSidecar({ checkpointIntervalMs: 30 });
    const running = s;
    const wal = `${running.dir}/sidecar.db-wal`;
    // The WAL header, with its salts: new each time the WAL starts over.
    const header = () => readFileSync(wal).subarray(0, 32).toString("hex");
    await enableGoLive(running.grpc);
    await until(() => running.sidecar.checkpoints().startedOver > 0, 5_000);
    expect(running.sidecar.checkpoints().startedOver).toBeGreaterThan(0);
    // Quiet (once the sidecar's own timers, its folds, wrote what they had to): the worker
    // looks, but neither checkpoints nor writes again.
    let quiet = running.sidecar.checkpoints();
    for (let round = 0; round < 20; round++) {
      await until(() => running.sidecar.checkpoints().looks > quiet.looks + 3, 5_000);
      const now = running.sidecar.checkpoints();
      if (now.runs === quiet.runs) break;
      quiet = now;
    }
    expect(running.sidecar.checkpoints().runs).toBe(quiet.runs);
    const started = running.sidecar.checkpoints().startedOver;
    expect(started).toBe(quiet.startedOver);
    const before = header();
    await running.grpc.call(RiskService, "reserve", {
      engine: "NOTIFY",
      amount: "0",
      correlationId: "after-a-quiet-moment",
    });
    // The decision's commit appended to the WAL the worker started: the header (which SQLite
    // syncs when a commit starts the WAL over) is the worker's, not rewritten.
    expect(header()).toBe(before);
    // And the worker checkpoints that commit, then starts the WAL over again.
    await until(() => running.sidecar.checkpoints().startedOver > started, 5_000);
    expect(running.sidecar.checkpoints().startedOver).toBeGreaterThan(started);
  });

  it("can be left to SQLite", async () => {
    s = await startSidecar({ checkpointIntervalMs: 0 });
    expect(s.db.pragma("wal_autocheckpoint", { simple: true })).toBe(1000);
    expect(s.sidecar.checkpoints().runs).toBe(0);
  });
});

describe("the worker's second look", () => {
  it("starts the WAL over once the writer has been quiet, without waiting for the next tick", async () => {
    const dir = mkdtempSync(join(tmpdir(), "govd-wal-"));
    const file = join(dir, "sidecar.db");
    const db = openDatabase(file);
    db.exec("CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)");
    db.exec("CREATE TABLE filler (id INTEGER PRIMARY KEY, body BLOB NOT NULL)");
    const intervalMs = 2_000;
    const checkpointer = new WalCheckpointer(db, file, intervalMs, (message) => {
      throw new Error(message);
    });
    try {
      const insert = db.prepare("INSERT INTO filler (body) VALUES (?)");
      const write = db.transaction(() => insert.run(Buffer.alloc(100, 7)));
      // A writer that commits every 20 ms until a tick finds it busy (a tick that finds it
      // quiet, after a pause of this process, starts the WAL over itself: then it goes on).
      const deadline = Date.now() + 5 * intervalMs;
      let foundBusy = false;
      while (!foundBusy && Date.now() < deadline) {
        const { runs, startedOver } = checkpointer;
        write.immediate();
        checkpointer.afterCommit();
        await new Promise((r) => setTimeout(r, 20));
        foundBusy = checkpointer.runs > runs && checkpointer.startedOver === startedOver;
      }
      expect(foundBusy).toBe(true);
      const stopped = Date.now();
      const started = checkpointer.startedOver;
      // Quiet from now on: the second look comes about 150 ms after the last commit, long
      // before the next tick (2 s after the one that found the writer busy).
      await until(() => checkpointer.startedOver > started, intervalMs);
      expect(checkpointer.startedOver).toBe(started + 1);
      expect(Date.now() - stopped).toBeLessThan(intervalMs / 2);
    } finally {
      await checkpointer.stop();
      db.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("WAL bounded under writes that never pause", () => {
  it("restarts an overgrown WAL although no PASSIVE checkpoint ever completes", async () => {
    const dir = mkdtempSync(join(tmpdir(), "govd-wal-"));
    const file = join(dir, "sidecar.db");
    const db = openDatabase(file);
    const checkpointer = new WalCheckpointer(db, file, 20, (message) => {
      throw new Error(message);
    });
    try {
      db.exec("CREATE TABLE filler (id INTEGER PRIMARY KEY, body BLOB NOT NULL)");
      const insert = db.prepare("INSERT INTO filler (body) VALUES (?)");
      const write = db.transaction(() => insert.run(Buffer.alloc(3000, 7)));
      // One long synchronous run of commits, as a saturated sidecar makes: no idle moment in
      // which a PASSIVE checkpoint could catch up with the writer. Between two commits the
      // writer does what the sidecar's group commit does after each.
      let largest = 0;
      const until = Date.now() + 3_000;
      for (let i = 1; Date.now() < until; i++) {
        write.immediate();
        checkpointer.restartIfOvergrown();
        if (i % 500 === 0) largest = Math.max(largest, statSync(`${file}-wal`).size);
      }
      await new Promise((r) => setTimeout(r, 100));
      const commits = db.prepare("SELECT count(*) FROM filler").pluck().get() as number;
      // Each commit appends two frames (table page and its parent) or more: without restarts
      // the WAL holds all of them (measured: 1 GB after 3 s); with them, a slice (30 MB).
      const written = commits * 2 * 4096;
      expect(written).toBeGreaterThan(4 * RESTART_FRAMES * 4096);
      expect(checkpointer.restarts).toBeGreaterThan(0);
      expect(largest).toBeLessThan(0.25 * written);
    } finally {
      await checkpointer.stop();
      db.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("one look of the checkpointer's worker (walTick)", () => {
  /** A WAL as the worker sees it; `during` runs inside the next checkpoint, after it counted. */
  function wal() {
    const w = {
      version: 0,
      frames: 0,
      copied: 0,
      quiet: true,
      during: undefined as (() => void) | undefined,
      /** Another connection commits one frame. */
      commit() {
        w.version++;
        w.frames++;
      },
      store: {
        dataVersion: () => w.version,
        checkpoint: () => {
          const log = w.frames;
          w.copied = log;
          w.during?.();
          w.during = undefined;
          return { log, checkpointed: log };
        },
        quiet: () => w.quiet,
        // The worker's own write (data_version stays): the WAL starts over with its one frame
        // when every frame was copied, else (a commit came since) the frame is appended.
        startOver: () => {
          if (w.copied === w.frames) [w.frames, w.copied] = [1, 0];
          else w.frames++;
          return true;
        },
      },
    };
    return w;
  }

  it("runs from its source text alone, as the worker runs it", () => {
    // The worker embeds walTick.toString(): it must need nothing from this module's scope.
    const w = wal();
    const state = { restartedAt: -1 };
    const tick = runInNewContext(`(${walTick.toString()})`) as typeof walTick;
    w.commit();
    expect(tick(w.store, state, false)).toMatchObject({ kind: "checkpoint", restarted: true });
    expect(tick(w.store, state, false)).toEqual({ kind: "idle" });
  });

  it("checkpoints, starts over, then rests until another connection commits", () => {
    const w = wal();
    const state = { restartedAt: -1 };
    w.commit();
    expect(walTick(w.store, state, false)).toEqual({
      kind: "checkpoint",
      log: 1,
      checkpointed: 1,
      restarted: true,
      retry: false,
    });
    expect(walTick(w.store, state, false)).toEqual({ kind: "idle" });
    w.commit();
    expect(walTick(w.store, state, false)).toMatchObject({ kind: "checkpoint", log: 2 });
  });

  it("copies a commit that raced its checkpoint at the next look", () => {
    const w = wal();
    const state = { restartedAt: -1 };
    w.commit();
    // Committed after the checkpoint counted the frames, before the restart write.
    w.during = () => w.commit();
    expect(walTick(w.store, state, false)).toMatchObject({ kind: "checkpoint", restarted: true });
    expect(w.frames).toBeGreaterThan(w.copied);
    const frames = w.frames;
    // Not idle: that commit's frame must reach the database (and the disk) at this look.
    expect(walTick(w.store, state, false)).toMatchObject({
      kind: "checkpoint",
      log: frames,
      checkpointed: frames,
    });
  });

  it("does not start over while the deciding thread is busy, nor at the last look", () => {
    const w = wal();
    const state = { restartedAt: -1 };
    w.commit();
    w.quiet = false;
    // Every frame copied, the writer too busy: the worker is told to look again soon.
    expect(walTick(w.store, state, false)).toMatchObject({ restarted: false, retry: true });
    // Nothing new, but the WAL was not started over: it looks again rather than resting.
    w.quiet = true;
    expect(walTick(w.store, state, false)).toMatchObject({
      kind: "checkpoint",
      restarted: true,
      retry: false,
    });
    w.commit();
    expect(walTick(w.store, state, true)).toMatchObject({
      kind: "checkpoint",
      restarted: false,
      retry: false,
    });
  });

  it("asks for no second look when frames are left to copy (a reader holds them) or the WAL is empty", () => {
    const w = wal();
    const state = { restartedAt: -1 };
    w.commit();
    w.quiet = false;
    const partial = { ...w.store, checkpoint: () => ({ log: 3, checkpointed: 2 }) };
    expect(walTick(partial, state, false)).toMatchObject({ restarted: false, retry: false });
    const empty = { ...w.store, checkpoint: () => ({ log: 0, checkpointed: 0 }) };
    expect(walTick(empty, state, false)).toMatchObject({ restarted: false, retry: false });
  });
});
