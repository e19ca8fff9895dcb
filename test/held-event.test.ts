/**
 * The call's event held for its answer (held-event.ts): a decision's event is inserted once,
 * with its answer, never updated after; whatever reads the trail while an event is held sees it
 * (a read inside the handler, a fold, an exec); the chain's head and a link's hash come from the
 * hold; a call that fails leaves no event; a call with two events under its id, or an event of
 * another id after its own, still gets its first answer on a retry; the chain verifies after all.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create, type DescMethodUnary, type Message } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import Database from "better-sqlite3";
import { pino } from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { ReserveRequestSchema, RiskService } from "../gen/governance/v1/risk_pb.js";
import { ManualClock } from "../src/clock.js";
import { createLeverContext } from "../src/levers/context.js";
import { riskService } from "../src/levers/risk/service.js";
import { bindService, type ServiceBinding } from "../src/levers/service-binding.js";
import { CallPipeline } from "../src/server/call-pipeline.js";
import { OperatorToken } from "../src/server/operator-token.js";
import { type AuditEntry, AuditLog } from "../src/store/audit-log.js";
import { verifyChain } from "../src/store/audit-trail.js";
import { ChainJournal } from "../src/store/chain-journal.js";
import { type Db, migrateTo, openDatabase } from "../src/store/database.js";
import { eventHold } from "../src/store/held-event.js";

const T0 = Date.UTC(2026, 11, 7, 12);
const RESERVE = RiskService.method.reserve as DescMethodUnary;

const cleanup: (() => void)[] = [];
afterEach(() => {
  for (const f of cleanup.splice(0).reverse()) f();
});

/** A migrated store with the sidecar's pipeline, and a count of answers written by UPDATE. */
function sidecar(open: (file: string) => Db = openDatabase) {
  const dir = mkdtempSync(join(tmpdir(), "govd-held-"));
  const file = join(dir, "sidecar.db");
  const db = open(file);
  cleanup.push(() => {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  });
  migrateTo(db);
  db.exec(`CREATE TEMP TABLE answer_updates (n INTEGER NOT NULL);
    INSERT INTO answer_updates VALUES (0);
    CREATE TEMP TRIGGER count_answer_updates AFTER UPDATE OF answer ON audit_event
      BEGIN UPDATE answer_updates SET n = n + 1; END;`);
  const clock = new ManualClock(T0);
  const ctx = createLeverContext(db, clock);
  const pipeline = new CallPipeline({
    db,
    clock,
    token: new OperatorToken("held-event-test-token"),
    logger: pino({ level: "silent" }),
    storeFile: file,
  });
  const answerUpdates = () => db.prepare("SELECT n FROM answer_updates").pluck().get() as number;
  return { db, ctx, pipeline, answerUpdates };
}

function reserveRequest(correlationId: string, amount = "10") {
  return create(ReserveRequestSchema, {
    engine: "DEAL_BOOKING",
    amount,
    actor: "t",
    correlationId,
  });
}

function event(correlationId: string, action: string): AuditEntry {
  return { lever: "risk", action, subject: "x", ok: true, reason: "r", actor: "t", correlationId };
}

/** A Reserve whose handler is `handler`: the pipeline runs it as any mutating call. */
function binding(handler: (request: Message & { correlationId: string }) => object) {
  return bindService(RiskService, { reserve: handler } as never) as ServiceBinding;
}

function answersOf(db: Db) {
  return db
    .prepare(
      "SELECT seq, correlation_id AS id, call_scope AS scope, answer FROM audit_event ORDER BY seq",
    )
    .all() as { seq: number; id: string; scope: string | null; answer: Buffer | null }[];
}

describe("a decision's event held for its answer", () => {
  it("is inserted once with its answer: no UPDATE, and a retry gets the same bytes", () => {
    const { db, ctx, pipeline, answerUpdates } = sidecar();
    const risk = riskService(ctx);
    const first = pipeline.invoke(risk, RESERVE, reserveRequest("r-1"), undefined);
    const rows = answersOf(db).filter((r) => r.id === "r-1");
    expect(rows).toHaveLength(1);
    expect(rows[0]?.scope).toBe("governance.v1.RiskService/Reserve");
    expect(Buffer.compare(rows[0]?.answer as Buffer, first.binary as Buffer)).toBe(0);
    expect(answerUpdates()).toBe(0);
    const retry = pipeline.invoke(risk, RESERVE, reserveRequest("r-1"), undefined);
    expect(Buffer.compare(retry.binary as Buffer, first.binary as Buffer)).toBe(0);
    expect(verifyChain(db).ok).toBe(true);
  });

  it("is not held on a store not opened by openDatabase: the answer follows as an UPDATE", () => {
    const { db, ctx, pipeline, answerUpdates } = sidecar((file) => new Database(file));
    const risk = riskService(ctx);
    const first = pipeline.invoke(risk, RESERVE, reserveRequest("raw-1"), undefined);
    expect(answerUpdates()).toBe(1);
    const retry = pipeline.invoke(risk, RESERVE, reserveRequest("raw-1"), undefined);
    expect(Buffer.compare(retry.binary as Buffer, first.binary as Buffer)).toBe(0);
    expect(verifyChain(db).ok).toBe(true);
  });

  it("is seen by a read of the trail inside the handler, and still answered", () => {
    const { db, ctx, pipeline } = sidecar();
    let seen = -1;
    const handler = binding((req) => {
      ctx.audit.append(event(req.correlationId, "RESERVE"), T0);
      seen = db
        .prepare("SELECT count(*) FROM audit_event WHERE correlation_id = ?")
        .pluck()
        .get(req.correlationId) as number;
      return { allowed: true, reservationId: "res-1" };
    });
    const first = pipeline.invoke(handler, RESERVE, reserveRequest("read-1"), undefined);
    expect(seen).toBe(1);
    const retry = pipeline.invoke(handler, RESERVE, reserveRequest("read-1"), undefined);
    expect(Buffer.compare(retry.binary as Buffer, first.binary as Buffer)).toBe(0);
    expect(answersOf(db).filter((r) => r.answer !== null)).toHaveLength(1);
    expect(verifyChain(db).ok).toBe(true);
  });

  it("stays held when its insert fails inside a read whose error is swallowed", () => {
    const { db, ctx, pipeline } = sidecar();
    db.exec(`CREATE TEMP TABLE refuse (on_ INTEGER NOT NULL); INSERT INTO refuse VALUES (0);
      CREATE TEMP TRIGGER refuse_events BEFORE INSERT ON main.audit_event
        WHEN (SELECT on_ FROM refuse) = 1 BEGIN SELECT RAISE(ABORT, 'refused'); END;`);
    let swallowed = "";
    const handler = binding((req) => {
      ctx.audit.append(event(req.correlationId, "RESERVE"), T0);
      db.prepare("UPDATE refuse SET on_ = 1").run();
      try {
        db.prepare("SELECT count(*) FROM audit_event").get();
      } catch (err) {
        swallowed = (err as Error).message;
      }
      db.prepare("UPDATE refuse SET on_ = 0").run();
      return { allowed: true, reservationId: "kept" };
    });
    const first = pipeline.invoke(handler, RESERVE, reserveRequest("kept-1"), undefined);
    expect(swallowed).toBe("refused");
    const rows = answersOf(db);
    expect(rows.map((r) => r.id)).toEqual(["kept-1"]);
    expect(Buffer.compare(rows[0]?.answer as Buffer, first.binary as Buffer)).toBe(0);
    expect(verifyChain(db).ok).toBe(true);
  });

  it("goes in before an exec that names the trail", () => {
    const { db, ctx } = sidecar();
    const hold = eventHold(db);
    hold.begin("exec-1");
    ctx.audit.append(event("exec-1", "RESERVE"), T0);
    db.exec("CREATE TEMP TABLE copied AS SELECT seq FROM audit_event");
    hold.release();
    expect(db.prepare("SELECT count(*) FROM temp.copied").pluck().get()).toBe(1);
  });

  it("is the chain's head and answers for its own link, before it is in the store", () => {
    const { db } = sidecar();
    const audit = new AuditLog(db);
    const before = audit.appendLinked(event("other", "A"), T0);
    const hold = eventHold(db);
    hold.begin("held-1");
    db.exec("SAVEPOINT t");
    const first = audit.appendLinked(event("held-1", "B"), T0);
    expect([hold.head()?.seq, hold.head()?.hash]).toEqual([first.seq, first.hash]);
    expect(hold.hashAt(first.seq)).toBe(first.hash);
    expect(hold.hashAt(before.seq)).toBeUndefined();
    // A journal's change at the held event holds; one at a rolled-back event does not.
    const journal = new ChainJournal(db);
    let undone = 0;
    journal.record(first, () => undone++);
    journal.sync();
    expect(undone).toBe(0);
    const second = audit.appendLinked(event("held-1", "C"), T0);
    expect(second.seq).toBe(first.seq + 1);
    hold.drop();
    db.exec("ROLLBACK TO t; RELEASE t");
    journal.sync();
    expect(undone).toBe(1);
    expect(answersOf(db).map((r) => r.seq)).toEqual([before.seq]);
    expect(verifyChain(db).ok).toBe(true);
  });

  it("is dropped with a call that fails after appending it", () => {
    const { db, ctx, pipeline } = sidecar();
    const failing = binding((req) => {
      ctx.audit.append(event(req.correlationId, "RESERVE"), T0);
      throw new Error("the handler failed after its append");
    });
    let failed: unknown;
    try {
      pipeline.invoke(failing, RESERVE, reserveRequest("fail-1"), undefined);
    } catch (err) {
      failed = err;
    }
    expect(failed).toBeInstanceOf(ConnectError);
    expect((failed as ConnectError).code).toBe(Code.Internal);
    expect(answersOf(db)).toHaveLength(0);
    const risk = riskService(ctx);
    pipeline.invoke(risk, RESERVE, reserveRequest("after-1"), undefined);
    expect(answersOf(db).map((r) => r.id)).toEqual(["after-1"]);
    expect(verifyChain(db).ok).toBe(true);
  });

  it("keeps the first answer when the call appends two events, or another id's after its own", () => {
    const { db, ctx, pipeline } = sidecar();
    const twice = binding((req) => {
      ctx.audit.append(event(req.correlationId, "FIRST"), T0);
      ctx.audit.append(event(req.correlationId, "SECOND"), T0);
      return { allowed: true, reservationId: "two" };
    });
    const two = pipeline.invoke(twice, RESERVE, reserveRequest("two-1"), undefined);
    const rows = answersOf(db);
    expect(rows.map((r) => r.answer !== null)).toEqual([false, true]);
    const retryTwo = pipeline.invoke(twice, RESERVE, reserveRequest("two-1"), undefined);
    expect(Buffer.compare(retryTwo.binary as Buffer, two.binary as Buffer)).toBe(0);

    const thenOther = binding((req) => {
      ctx.audit.append(event(req.correlationId, "OWN"), T0);
      ctx.audit.append(event("someone-else", "OTHER"), T0);
      return { allowed: true, reservationId: "other" };
    });
    const own = pipeline.invoke(thenOther, RESERVE, reserveRequest("own-1"), undefined);
    // Its newest event is not its own: the key is kept in the table, as before the hold.
    expect(answersOf(db).filter((r) => r.id === "own-1" && r.answer !== null)).toHaveLength(0);
    const retryOwn = pipeline.invoke(thenOther, RESERVE, reserveRequest("own-1"), undefined);
    expect(Buffer.compare(retryOwn.binary as Buffer, own.binary as Buffer)).toBe(0);
    expect(verifyChain(db).ok).toBe(true);
  });

  it("holds across calls that share one commit, each written with its own answer", async () => {
    const { db, ctx, pipeline, answerUpdates } = sidecar();
    const risk = riskService(ctx);
    const answers = await Promise.all(
      ["g-1", "g-2", "g-3"].map((id) =>
        pipeline.submit(risk, RESERVE, reserveRequest(id), undefined),
      ),
    );
    expect(pipeline.groupCommit.stats.batches).toBe(1);
    const rows = answersOf(db);
    expect(rows.map((r) => r.id)).toEqual(["g-1", "g-2", "g-3"]);
    rows.forEach((row, i) => {
      expect(Buffer.compare(row.answer as Buffer, answers[i]?.binary as Buffer)).toBe(0);
    });
    expect(answerUpdates()).toBe(0);
    expect(verifyChain(db).ok).toBe(true);
  });
});
