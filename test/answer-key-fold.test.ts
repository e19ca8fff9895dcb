/**
 * Answer keys indexed by the fold (migration 14): a decision's commit writes its audit event and
 * no index entry; memory answers a retry until the fold indexes the key, across a restart and a
 * fold whose transaction rolled back; the sweep's clearing and a forgotten key leave no entry;
 * migration 14 goes up and down with keys folded, not folded, and one key on two events; the
 * trail's readers scan a range of seq, and levers with few events read through their index.
 */

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create, type DescMethodUnary } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { pino } from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { ReserveRequestSchema, RiskService } from "../gen/governance/v1/risk_pb.js";
import { ManualClock } from "../src/clock.js";
import { createLeverContext } from "../src/levers/context.js";
import { riskService } from "../src/levers/risk/service.js";
import { CallPipeline } from "../src/server/call-pipeline.js";
import { OperatorToken } from "../src/server/operator-token.js";
import { auditReadPlan, verifyChain } from "../src/store/audit-trail.js";
import { type Db, migrateTo, openDatabase } from "../src/store/database.js";

const DAY = 86_400_000;
const T0 = Date.UTC(2026, 2, 2, 12);
const RESERVE = RiskService.method.reserve as DescMethodUnary;

const cleanup: (() => void)[] = [];
afterEach(() => {
  for (const f of cleanup.splice(0).reverse()) f();
});

/** A store file of its own; `start` opens it as the sidecar runs it, `open` at a version. */
function storeFolder() {
  const dir = mkdtempSync(join(tmpdir(), "govd-answer-keys-"));
  const file = join(dir, "sidecar.db");
  const opened: Db[] = [];
  cleanup.push(() => {
    for (const db of opened) if (db.open) db.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const open = (version?: number) => {
    const db = openDatabase(file);
    opened.push(db);
    migrateTo(db, version);
    return db;
  };
  return {
    open,
    start(clock: ManualClock) {
      const db = open();
      const ctx = createLeverContext(db, clock);
      ctx.goLive.set({ goLiveEnabled: true, killSwitchEngaged: false }, "ops", "t", clock.now());
      const pipeline = new CallPipeline({
        db,
        clock,
        token: new OperatorToken("answer-key-test-token"),
        logger: pino({ level: "silent" }),
        storeFile: file,
      });
      const risk = riskService(ctx);
      const call = (id: string, amount = "1.00") =>
        Buffer.from(
          pipeline.invoke(
            risk,
            RESERVE,
            create(ReserveRequestSchema, {
              engine: "WHOLESALE",
              amount,
              actor: "e",
              correlationId: id,
            }),
            undefined,
          ).binary ?? [],
        );
      return { db, pipeline, call };
    },
  };
}

const count = (db: Db, sql: string) => db.prepare<[], number>(sql).pluck().get() ?? 0;
const indexed = (db: Db) => count(db, "SELECT count(*) FROM audit_answer_key");
const eventsOf = (db: Db, id: string) =>
  db
    .prepare<[string], number>("SELECT count(*) FROM audit_event WHERE correlation_id = ?")
    .pluck()
    .get(id);
const turn = () => new Promise((resolve) => setImmediate(resolve));

describe("answer keys indexed by the fold", () => {
  it("writes no index entry with the decision, and answers from memory, then from the index", async () => {
    const s = storeFolder().start(new ManualClock(T0));
    const first = s.call("k-1");
    expect(indexed(s.db)).toBe(0);
    expect(s.call("k-1")).toEqual(first);
    expect(() => s.call("k-1", "2.00")).toThrow(
      expect.objectContaining({ code: Code.AlreadyExists }),
    );
    expect(s.pipeline.groupCommit.runNow(() => s.pipeline.keys.fold())).toBeGreaterThan(0);
    expect(indexed(s.db)).toBe(1);
    await turn();
    expect(s.call("k-1")).toEqual(first);
    expect(() => s.call("k-1", "2.00")).toThrow(
      expect.objectContaining({ code: Code.AlreadyExists }),
    );
    expect(eventsOf(s.db, "k-1")).toBe(1);
  });

  it("answers keys not folded yet after a restart, and folded ones after the next", async () => {
    const folder = storeFolder();
    const clock = new ManualClock(T0);
    const a = folder.start(clock);
    const first = a.call("k-2");
    a.db.close();
    const b = folder.start(clock);
    expect(indexed(b.db)).toBe(0);
    expect(b.call("k-2")).toEqual(first);
    b.pipeline.groupCommit.runNow(() => b.pipeline.keys.fold());
    await turn();
    b.db.close();
    const c = folder.start(clock);
    expect(indexed(c.db)).toBe(1);
    expect(c.call("k-2")).toEqual(first);
    expect(() => c.call("k-2", "3.00")).toThrow(
      expect.objectContaining({ code: Code.AlreadyExists }),
    );
    expect(eventsOf(c.db, "k-2")).toBe(1);
  });

  it("keeps answering keys whose fold rolled back", async () => {
    const s = storeFolder().start(new ManualClock(T0));
    const first = s.call("k-3");
    expect(() =>
      s.db.transaction(() => {
        expect(s.pipeline.keys.fold()).toBe(1);
        throw new Error("the fold's transaction fails");
      })(),
    ).toThrow(/fails/);
    // Memory lets go of keys only after a fold is committed: this one was not.
    await turn();
    await turn();
    expect(indexed(s.db)).toBe(0);
    expect(s.call("k-3")).toEqual(first);
    expect(() => s.call("k-3", "2.00")).toThrow(
      expect.objectContaining({ code: Code.AlreadyExists }),
    );
    expect(eventsOf(s.db, "k-3")).toBe(1);
  });

  it("removes the entry of a key the sweep clears or a late retry forgets", async () => {
    const clock = new ManualClock(T0);
    const s = storeFolder().start(clock);
    s.call("k-4");
    s.call("k-5");
    s.pipeline.groupCommit.runNow(() => s.pipeline.keys.fold());
    clock.advance(7 * DAY + 1);
    s.pipeline.groupCommit.runNow(() => s.pipeline.keys.clearAnswers(clock.now(), 7 * DAY));
    expect(indexed(s.db)).toBe(0);
    // Forgotten: the key is free again and books anew, and the fold indexes the new event.
    s.call("k-4", "4.00");
    expect(eventsOf(s.db, "k-4")).toBe(2);
    s.pipeline.groupCommit.runNow(() => s.pipeline.keys.fold());
    expect(indexed(s.db)).toBe(1);
    clock.advance(7 * DAY + 1);
    s.call("k-4", "5.00");
    expect(eventsOf(s.db, "k-4")).toBe(3);
    expect(indexed(s.db)).toBe(0);
    expect(verifyChain(s.db).ok).toBe(true);
  });
});

describe("migration 14", () => {
  it("goes down with keys folded and not, both indexes back, and indexes every key going up", () => {
    const folder = storeFolder();
    const clock = new ManualClock(T0);
    const s = folder.start(clock);
    const folded = s.call("m-1");
    s.pipeline.groupCommit.runNow(() => s.pipeline.keys.fold());
    const unfolded = s.call("m-2");
    s.db.close();
    const raw = folder.open(13);
    expect(count(raw, "SELECT count(*) FROM audit_event WHERE call_scope IS NOT NULL")).toBe(2);
    const indexes = raw
      .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'audit_event'")
      .pluck()
      .all();
    expect(indexes).toEqual(expect.arrayContaining(["audit_event_subject", "audit_event_answer"]));
    raw.close();
    const up = folder.start(clock);
    expect(indexed(up.db)).toBe(2);
    expect(up.call("m-1")).toEqual(folded);
    expect(up.call("m-2")).toEqual(unfolded);
  });

  it("forgets the older of two answers under one key going down", () => {
    const folder = storeFolder();
    const s = folder.start(new ManualClock(T0));
    s.call("d-1");
    s.call("d-2");
    // Without the unique index a second event could carry d-1's key (a bug would): copy it.
    const [a, b] = s.db
      .prepare<[], number>("SELECT seq FROM audit_event WHERE call_scope IS NOT NULL ORDER BY seq")
      .pluck()
      .all();
    s.db.exec("DROP TRIGGER audit_event_no_update");
    s.db.prepare("UPDATE audit_event SET correlation_id = 'd-1' WHERE seq = ?").run(b ?? 0);
    s.db.close();
    const raw = folder.open(13);
    const answered = raw
      .prepare(
        "SELECT seq FROM audit_event WHERE correlation_id = 'd-1' AND call_scope IS NOT NULL",
      )
      .pluck()
      .all();
    expect(answered).toEqual([b]);
    expect(a).toBeLessThan(b ?? 0);
  });
});

describe("reading the trail without the subject index", () => {
  it("scans a range of seq for decisions, and reads the other levers through their own index", () => {
    const s = storeFolder().start(new ManualClock(T0));
    for (const lever of ["risk", "kpi", "heimdall"] as const) {
      expect(auditReadPlan(s.db, { lever, subject: "WHOLESALE", afterSeq: 0, limit: 10 })).toBe(
        "SEARCH audit_event USING INTEGER PRIMARY KEY (rowid>?)",
      );
    }
    for (const lever of ["regression", "golive", "sync"] as const) {
      expect(
        auditReadPlan(s.db, { lever, actions: ["TRIP"], subject: "X", afterSeq: 0, limit: 10 }),
      ).toBe("SEARCH audit_event USING INDEX audit_event_occasional (lever=? AND seq>?)");
    }
  });
});
