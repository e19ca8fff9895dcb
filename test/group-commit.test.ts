/** Group commit: concurrent calls share one commit, and nobody is answered before it. */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { pino } from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ExecutionClass } from "../gen/governance/v1/common_pb.js";
import { CheckGoLiveRequestSchema, GoLiveService } from "../gen/governance/v1/golive_pb.js";
import { ReserveRequestSchema, RiskService } from "../gen/governance/v1/risk_pb.js";
import { ManualClock } from "../src/clock.js";
import { createLeverContext, type LeverContext } from "../src/levers/context.js";
import { goLiveService } from "../src/levers/golive/service.js";
import { riskService } from "../src/levers/risk/service.js";
import { CallPipeline } from "../src/server/call-pipeline.js";
import { OperatorToken } from "../src/server/operator-token.js";
import { type Db, migrateTo, openDatabase } from "../src/store/database.js";
import { GroupCommit } from "../src/store/group-commit.js";

let dir: string;
let file: string;
let db: Db;
/** A second connection: sees only what is committed. */
let reader: Db;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "govd-group-"));
  file = join(dir, "sidecar.db");
  db = openDatabase(file);
  db.exec(`CREATE TABLE parent (id INTEGER PRIMARY KEY);
    CREATE TABLE child (id INTEGER PRIMARY KEY,
      parent INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED)`);
  reader = openDatabase(file, { readonly: true });
});
afterEach(() => {
  reader.close();
  db.close();
  rmSync(dir, { recursive: true, force: true });
});

const committedRows = () =>
  reader.prepare("SELECT id FROM parent ORDER BY id").pluck().all() as number[];

describe("GroupCommit", () => {
  it("settled() resolves at once with no batch open, else once the open batch committed, without splitting it", async () => {
    const group = new GroupCommit(db);
    const insert = db.prepare("INSERT INTO parent (id) VALUES (?)");
    await group.settled();
    const first = group.run(() => insert.run(1).changes);
    let seen: number[] | undefined;
    const waited = group.settled().then(() => {
      seen = committedRows();
    });
    // Calls of the same turn still join the batch the waiter waits for.
    const second = group.run(() => insert.run(2).changes);
    await Promise.resolve();
    expect(seen).toBeUndefined();
    await waited;
    expect(seen).toEqual([1, 2]);
    expect(group.open).toBe(false);
    expect(await Promise.all([first, second])).toEqual([1, 1]);
    expect(group.stats).toEqual({ batches: 1, calls: 2 });
  });

  it("commits the calls of one event-loop turn together and answers none before the commit", async () => {
    const group = new GroupCommit(db);
    const insert = db.prepare("INSERT INTO parent (id) VALUES (?)");
    const answers = [1, 2, 3].map((id) => group.run(() => insert.run(id).changes));
    expect(group.open).toBe(true);
    let answered = false;
    void answers[0]?.then(() => {
      answered = true;
    });
    await Promise.resolve();
    expect(answered).toBe(false);
    expect(committedRows()).toEqual([]);
    expect(await Promise.all(answers)).toEqual([1, 1, 1]);
    expect(committedRows()).toEqual([1, 2, 3]);
    expect(group.stats).toEqual({ batches: 1, calls: 3 });
    expect(group.open).toBe(false);
  });

  it("undoes only the writes of a call that fails; the others commit", async () => {
    const group = new GroupCommit(db);
    const insert = db.prepare("INSERT INTO parent (id) VALUES (?)");
    const ok = group.run(() => insert.run(1));
    const failed = group.run(() => {
      insert.run(2);
      throw new Error("refused after writing");
    });
    const after = group.run(() => insert.run(3));
    await expect(failed).rejects.toThrow("refused after writing");
    await Promise.all([ok, after]);
    expect(committedRows()).toEqual([1, 3]);
  });

  it("fails every call of a batch whose commit fails and keeps nothing", async () => {
    const group = new GroupCommit(db);
    const first = group.run(() => db.prepare("INSERT INTO parent (id) VALUES (1)").run());
    // A deferred foreign key is checked at COMMIT: the whole batch's commit fails.
    const second = group.run(() => db.prepare("INSERT INTO child VALUES (1, 99)").run());
    await expect(first).rejects.toThrow(/FOREIGN KEY/);
    await expect(second).rejects.toThrow(/FOREIGN KEY/);
    expect(db.inTransaction).toBe(false);
    expect(group.stats).toEqual({ batches: 0, calls: 0 });
    expect(committedRows()).toEqual([]);
    // The next batch starts clean.
    await group.run(() => db.prepare("INSERT INTO parent (id) VALUES (2)").run());
    expect(committedRows()).toEqual([2]);
  });

  it("runs work inside a transaction someone else holds as part of it (runNow)", () => {
    const group = new GroupCommit(db);
    const insert = db.prepare("INSERT INTO parent (id) VALUES (?)");
    expect(() =>
      db.transaction(() => {
        group.runNow(() => insert.run(1));
        throw new Error("the outer transaction rolls back");
      })(),
    ).toThrow("rolls back");
    expect(committedRows()).toEqual([]);
    group.runNow(() => insert.run(2));
    expect(committedRows()).toEqual([2]);
  });

  it("runs afterCommit after a runNow that wrote and after a batch, not after a runNow that changed no row", async () => {
    const group = new GroupCommit(db);
    let told = 0;
    group.afterCommit = () => told++;
    const insert = db.prepare("INSERT INTO parent (id) VALUES (?)");
    // A timer that finds nothing to do (a fold, a sweep): the writer stays quiet.
    group.runNow(() => db.prepare("SELECT count(*) FROM parent").get());
    group.runNow(() => db.prepare("DELETE FROM parent WHERE id = 99").run());
    expect(told).toBe(0);
    group.runNow(() => insert.run(1));
    expect(told).toBe(1);
    // A batch counts as a write (its calls write their audit events) without the extra read.
    await group.run(() => insert.run(2));
    expect(told).toBe(2);
    // Work that failed was rolled back: no commit, nothing told; the next write is told.
    expect(() =>
      group.runNow(() => {
        insert.run(3);
        throw new Error("undone");
      }),
    ).toThrow("undone");
    expect(told).toBe(2);
    group.runNow(() => insert.run(4));
    expect(told).toBe(3);
    expect(committedRows()).toEqual([1, 2, 4]);
    // A decision in-process is told without the check (it always writes its audit event).
    group.runDecision(() => insert.run(5));
    expect(told).toBe(4);
    group.runDecision(() => db.prepare("SELECT 1").get());
    expect(told).toBe(5);
  });

  it("commits at once when a batch reaches maxCalls", async () => {
    const group = new GroupCommit(db, { maxCalls: 2 });
    const insert = db.prepare("INSERT INTO parent (id) VALUES (?)");
    const a = group.run(() => insert.run(1));
    const b = group.run(() => insert.run(2));
    expect(group.open).toBe(false);
    expect(committedRows()).toEqual([1, 2]);
    const c = group.run(() => insert.run(3));
    expect(group.open).toBe(true);
    await Promise.all([a, b, c]);
    expect(group.stats).toEqual({ batches: 2, calls: 3 });
  });
});

describe("CallPipeline over a group commit", () => {
  let ctx: LeverContext;
  let pipeline: CallPipeline;

  beforeEach(() => {
    migrateTo(db);
    ctx = createLeverContext(db, new ManualClock(Date.UTC(2026, 2, 2, 12)));
    ctx.goLive.set({ goLiveEnabled: true, killSwitchEngaged: false }, "ops", "test", 1);
    pipeline = new CallPipeline({
      db,
      clock: ctx.clock,
      token: new OperatorToken("group-commit-test-token"),
      logger: pino({ level: "silent" }),
      storeFile: file,
    });
  });

  const reserve = (i: number) =>
    create(ReserveRequestSchema, {
      engine: "WHOLESALE",
      amount: "1.00",
      actor: "engine",
      correlationId: `group-${i}`,
    });
  /** Reserves of WHOLESALE another connection sees committed (one audit row each). */
  const ledgerActions = () =>
    reader
      .prepare(
        "SELECT count(*) FROM audit_event WHERE action = 'RESERVE' AND subject = 'WHOLESALE'",
      )
      .pluck()
      .get() as number;

  it("books concurrent Reserves in one commit, each with its own answer and encoding", async () => {
    const risk = riskService(ctx);
    const method = RiskService.method.reserve;
    const answers = await Promise.all(
      [1, 2, 3, 4].map((i) => pipeline.submit(risk, method, reserve(i), undefined)),
    );
    expect(pipeline.groupCommit.stats).toEqual({ batches: 1, calls: 4 });
    const ids = answers.map(
      (a) => (a.message as unknown as { reservationId: string }).reservationId,
    );
    expect(new Set(ids).size).toBe(4);
    for (const a of answers) expect(a.binary?.length).toBeGreaterThan(0);
    expect(ledgerActions()).toBe(4);
    // A retry of a committed call is answered from the idempotency row, bytes and all.
    const retry = await pipeline.submit(risk, method, reserve(2), undefined);
    expect(Buffer.from(retry.binary ?? [])).toEqual(Buffer.from(answers[1]?.binary ?? []));
  });

  it("answers a read at once when no batch is open, and after the commit when one is", async () => {
    const golive = goLiveService(ctx);
    const check = create(CheckGoLiveRequestSchema, { executionClass: ExecutionClass.PROD_EXEC });
    const method = GoLiveService.method.checkGoLive;
    await pipeline.submit(golive, method, check, undefined);
    expect(pipeline.groupCommit.stats.batches).toBe(0);
    const write = pipeline.submit(
      riskService(ctx),
      RiskService.method.reserve,
      reserve(9),
      undefined,
    );
    const read = pipeline.submit(golive, method, check, undefined);
    await Promise.all([write, read]);
    expect(pipeline.groupCommit.stats).toEqual({ batches: 1, calls: 2 });
  });

  it("answers UNAVAILABLE, naming the store, when the shared transaction cannot begin", async () => {
    db.pragma("busy_timeout = 0");
    const other = openDatabase(file);
    other.exec("BEGIN IMMEDIATE");
    try {
      let error: unknown;
      try {
        // Thrown at once or rejected later: submit's contract allows either.
        await pipeline.submit(riskService(ctx), RiskService.method.reserve, reserve(1), undefined);
      } catch (e) {
        error = e;
      }
      expect(error).toMatchObject({ code: Code.Unavailable });
      expect((error as Error).message).toMatch(/sidecar\.db: database is locked/);
      expect(pipeline.groupCommit.open).toBe(false);
    } finally {
      other.exec("ROLLBACK");
      other.close();
    }
  });

  it("commits waiting calls before it answers a call in-process (invoke)", async () => {
    const risk = riskService(ctx);
    const pending = pipeline.submit(risk, RiskService.method.reserve, reserve(1), undefined);
    expect(ledgerActions()).toBe(0);
    pipeline.invoke(risk, RiskService.method.reserve, reserve(2), undefined);
    expect(ledgerActions()).toBe(2);
    await pending;
  });
});
