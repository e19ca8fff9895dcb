/**
 * Idempotency keys on the call's own audit event (migration 11): a retry is answered from the
 * event, bytes and all, across a restart; another body is ALREADY_EXISTS; a call that appends
 * no event keeps its key in the table; a rolled-back call leaves no answer; a key past the
 * retention is not answered; a key outlives trail pruning of its event; migration 11 goes up
 * and down with keys in both places; the chain's columns stay immutable beside the answer.
 */

import { createHash } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create, type DescMethodUnary, type Message, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { pino } from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { HeimdallService, RecommendRequestSchema } from "../gen/governance/v1/heimdall_pb.js";
import {
  ReserveRequestSchema,
  ReserveResponseSchema,
  RiskService,
} from "../gen/governance/v1/risk_pb.js";
import { ManualClock } from "../src/clock.js";
import { createLeverContext } from "../src/levers/context.js";
import { heimdallService } from "../src/levers/heimdall/service.js";
import { riskService } from "../src/levers/risk/service.js";
import type { ServiceBinding } from "../src/levers/service-binding.js";
import { CallPipeline } from "../src/server/call-pipeline.js";
import { canonicalBytes } from "../src/server/canonical-request.js";
import { OperatorToken } from "../src/server/operator-token.js";
import { verifyChain } from "../src/store/audit-trail.js";
import { type Db, migrateTo, openDatabase } from "../src/store/database.js";
import { IdempotencyKeys } from "../src/store/idempotency-keys.js";
import { TrailPruning } from "../src/store/trail-horizon.js";
import { rejects } from "./support/expect-error.js";

const DAY = 86_400_000;
const T0 = Date.UTC(2026, 2, 2, 12);
const RESERVE = RiskService.method.reserve as DescMethodUnary;
const RECOMMEND = HeimdallService.method.recommend as DescMethodUnary;
const RESERVE_SCOPE = "governance.v1.RiskService/Reserve";

const cleanup: (() => void)[] = [];
afterEach(() => {
  for (const f of cleanup.splice(0).reverse()) f();
});

/** A store file in a folder of its own, and the sidecar's parts over it (reopenable). */
function storeFolder() {
  const dir = mkdtempSync(join(tmpdir(), "govd-idem-"));
  const file = join(dir, "sidecar.db");
  const open: Db[] = [];
  cleanup.push(() => {
    for (const db of open) if (db.open) db.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return {
    /** Opens the store at schema `version` (for writing as an older govd did). */
    open(version: number): Db {
      const db = openDatabase(file);
      open.push(db);
      migrateTo(db, version);
      return db;
    },
    /** Opens the store at the latest version with a pipeline as the sidecar runs it. */
    start(clock: ManualClock) {
      const db = openDatabase(file);
      open.push(db);
      migrateTo(db);
      const ctx = createLeverContext(db, clock);
      const pipeline = new CallPipeline({
        db,
        clock,
        token: new OperatorToken("idempotency-test-token"),
        logger: pino({ level: "silent" }),
        storeFile: file,
      });
      return { db, ctx, pipeline, risk: riskService(ctx), heimdall: heimdallService(ctx) };
    },
  };
}

function started() {
  const clock = new ManualClock(T0);
  const s = storeFolder().start(clock);
  s.ctx.goLive.set({ goLiveEnabled: true, killSwitchEngaged: false }, "ops", "test", T0);
  return { ...s, clock };
}

const reserve = (correlationId: string, amount = "1.00") =>
  create(ReserveRequestSchema, { engine: "WHOLESALE", amount, actor: "engine", correlationId });

const recommend = (correlationId: string, recommendationJson = '{"offer":1}') =>
  create(RecommendRequestSchema, {
    domain: "BUYER_MATCH",
    confidence: 0.5,
    recommendationJson,
    correlationId,
  });

/** The answer kept on events under `correlationId`, in order. */
const answersOnEvents = (db: Db, correlationId: string) =>
  db
    .prepare<[string], { seq: number; call_scope: string; answer: Buffer }>(
      "SELECT seq, call_scope, answer FROM audit_event WHERE correlation_id = ? AND call_scope IS NOT NULL ORDER BY seq",
    )
    .all(correlationId);

const tableKeys = (db: Db) =>
  db
    .prepare<[], { method: string; correlation_id: string; response: Buffer }>(
      "SELECT method, correlation_id, response FROM idempotency ORDER BY id",
    )
    .all();

const eventsOf = (db: Db, correlationId: string) =>
  db
    .prepare<[string], number>("SELECT count(*) FROM audit_event WHERE correlation_id = ?")
    .pluck()
    .get(correlationId);

/** The hash a key is checked against, as the pipeline makes it. */
const requestHash = (request: Message) =>
  createHash("sha256").update(canonicalBytes(ReserveRequestSchema, request)).digest();

const bytes = (b: Uint8Array | undefined) => Buffer.from(b ?? []);

describe("a key on its audit event", () => {
  it("answers a retry from the event with the same bytes, across a restart, and books once", () => {
    const folder = storeFolder();
    const clock = new ManualClock(T0);
    const first = folder.start(clock);
    first.ctx.goLive.set({ goLiveEnabled: true, killSwitchEngaged: false }, "ops", "t", T0);
    const answer = first.pipeline.invoke(first.risk, RESERVE, reserve("r-1"), undefined);
    expect(answersOnEvents(first.db, "r-1")).toEqual([
      { seq: expect.any(Number), call_scope: RESERVE_SCOPE, answer: bytes(answer.binary) },
    ]);
    expect(tableKeys(first.db)).toEqual([]);
    first.db.close();

    clock.advance(DAY);
    const second = folder.start(clock);
    const retry = second.pipeline.invoke(second.risk, RESERVE, reserve("r-1"), undefined);
    expect(bytes(retry.binary)).toEqual(bytes(answer.binary));
    expect(eventsOf(second.db, "r-1")).toBe(1);
    expect(verifyChain(second.db).ok).toBe(true);
  });

  it("refuses another body under the same id with ALREADY_EXISTS", () => {
    const s = started();
    s.pipeline.invoke(s.risk, RESERVE, reserve("r-2", "1.00"), undefined);
    expect(() => s.pipeline.invoke(s.risk, RESERVE, reserve("r-2", "2.00"), undefined)).toThrow(
      expect.objectContaining({ code: Code.AlreadyExists }),
    );
    expect(eventsOf(s.db, "r-2")).toBe(1);
  });

  it("keeps the key in the table for a call that appends no event (Recommend)", () => {
    const s = started();
    const first = s.pipeline.invoke(s.heimdall, RECOMMEND, recommend("rec-1"), undefined);
    expect(eventsOf(s.db, "rec-1")).toBe(0);
    expect(tableKeys(s.db)).toEqual([
      {
        method: "governance.v1.HeimdallService/Recommend",
        correlation_id: "rec-1",
        response: bytes(first.binary),
      },
    ]);
    const retry = s.pipeline.invoke(s.heimdall, RECOMMEND, recommend("rec-1"), undefined);
    expect(bytes(retry.binary)).toEqual(bytes(first.binary));
    expect(() =>
      s.pipeline.invoke(s.heimdall, RECOMMEND, recommend("rec-1", '{"offer":2}'), undefined),
    ).toThrow(expect.objectContaining({ code: Code.AlreadyExists }));
  });

  it("leaves no answer behind a call whose savepoint failed in a group commit", async () => {
    const s = started();
    const handlers = s.risk.handlers as unknown as Record<string, (r: Message) => unknown>;
    // The real Reserve (its event appended), then a fault: the call's savepoint is undone.
    const faulty: ServiceBinding = {
      ...s.risk,
      handlers: {
        ...s.risk.handlers,
        reserve: (r: Message) => {
          handlers.reserve?.(r);
          throw new ConnectError("fault after booking", Code.Internal);
        },
      } as unknown as ServiceBinding["handlers"],
    };
    const ok = s.pipeline.submit(s.risk, RESERVE, reserve("g-ok"), undefined);
    const failed = s.pipeline.submit(faulty, RESERVE, reserve("g-fail"), undefined);
    const after = s.pipeline.submit(s.risk, RESERVE, reserve("g-after"), undefined);
    await rejects(Promise.resolve(failed), Code.Internal, /fault after booking/);
    const [a, c] = await Promise.all([ok, after]);
    expect(s.pipeline.groupCommit.stats).toEqual({ batches: 1, calls: 3 });
    expect(eventsOf(s.db, "g-fail")).toBe(0);
    expect(answersOnEvents(s.db, "g-ok").map((r) => r.answer)).toEqual([bytes(a.binary)]);
    // The next call took the failed call's seq: its answer is on its own event.
    expect(answersOnEvents(s.db, "g-after").map((r) => r.answer)).toEqual([bytes(c.binary)]);
    expect(tableKeys(s.db)).toEqual([]);
    // The failed id is new: it books now, once.
    await s.pipeline.submit(s.risk, RESERVE, reserve("g-fail"), undefined);
    expect(eventsOf(s.db, "g-fail")).toBe(1);
  });

  it("does not answer a key older than the retention, and forgets it for the new call", () => {
    const s = started();
    const old = s.pipeline.invoke(s.risk, RESERVE, reserve("r-old"), undefined);
    s.clock.advance(7 * DAY - 1);
    const kept = s.pipeline.invoke(s.risk, RESERVE, reserve("r-old"), undefined);
    expect(bytes(kept.binary)).toEqual(bytes(old.binary));
    s.clock.advance(2);
    // Past the retention: another body is a new request, not ALREADY_EXISTS.
    const again = s.pipeline.invoke(s.risk, RESERVE, reserve("r-old", "3.00"), undefined);
    expect(bytes(again.binary)).not.toEqual(bytes(old.binary));
    expect(eventsOf(s.db, "r-old")).toBe(2);
    expect(answersOnEvents(s.db, "r-old").map((r) => r.answer)).toEqual([bytes(again.binary)]);
    const forgotten = s.db
      .prepare("SELECT request_hash FROM audit_event WHERE correlation_id = 'r-old' ORDER BY seq")
      .pluck()
      .all();
    expect(forgotten[0]).toEqual(Buffer.alloc(0));
  });

  it("keeps a key whose event trail pruning removes (moved into the table)", () => {
    const s = started();
    const first = s.pipeline.invoke(s.risk, RESERVE, reserve("r-pruned"), undefined);
    s.clock.advance(60_000);
    s.pipeline.invoke(s.risk, RESERVE, reserve("r-head"), undefined);
    // Pruning stops at the lowest fold: the risk, KPI and scorecard tables all take the trail.
    s.ctx.risk.fold();
    s.ctx.tripwires.fold();
    s.ctx.evidence.fold();
    const head = s.db.prepare<[], number>("SELECT max(seq) FROM audit_event").pluck().get() ?? 0;
    s.db.prepare("UPDATE meta SET value = ? WHERE key = 'shipped_seq'").run(head);
    const pruning = new TrailPruning(s.db);
    const pruned = s.pipeline.groupCommit.runNow(() =>
      pruning.pruneOlderThan(s.clock.now(), s.clock.now(), 1_000, Number.MAX_SAFE_INTEGER),
    );
    expect(pruned).toBe(head - 1);
    expect(eventsOf(s.db, "r-pruned")).toBe(0);
    expect(tableKeys(s.db).map((k) => [k.method, k.correlation_id, k.response])).toEqual([
      [RESERVE_SCOPE, "r-pruned", bytes(first.binary)],
    ]);
    const retry = s.pipeline.invoke(s.risk, RESERVE, reserve("r-pruned"), undefined);
    expect(bytes(retry.binary)).toEqual(bytes(first.binary));
    expect(() =>
      s.pipeline.invoke(s.risk, RESERVE, reserve("r-pruned", "9.00"), undefined),
    ).toThrow(expect.objectContaining({ code: Code.AlreadyExists }));
  });
});

describe("the answer beside the chain", () => {
  it("is set once and whole, may only be forgotten, and the chain's columns stay immutable", () => {
    const s = started();
    s.pipeline.invoke(s.risk, RESERVE, reserve("r-t"), undefined);
    const seq = answersOnEvents(s.db, "r-t")[0]?.seq ?? 0;
    const update = (set: string) => () =>
      s.db.prepare(`UPDATE audit_event SET ${set} WHERE seq = ?`).run(seq);
    expect(update("answer = X'00'")).toThrow(/set once/);
    expect(update("call_scope = 'x/y'")).toThrow(/set once/);
    expect(update("reason = 'edited'")).toThrow(/immutable/);
    expect(update("expires_ms = 1")).toThrow(/immutable/);
    update("call_scope = NULL, request_hash = X'', answer = NULL")();
    expect(update("call_scope = 'x/y', request_hash = X'01', answer = X'02'")).toThrow(/set once/);
    // An event without an answer takes one only whole.
    s.ctx.audit.append(
      {
        lever: "golive",
        action: "ENABLE",
        subject: "",
        ok: true,
        reason: "",
        actor: "a",
        correlationId: "e",
      },
      T0,
    );
    const bare = s.db.prepare<[], number>("SELECT max(seq) FROM audit_event").pluck().get();
    expect(() =>
      s.db.prepare("UPDATE audit_event SET answer = X'01' WHERE seq = ?").run(bare),
    ).toThrow(/set once/);
    expect(verifyChain(s.db).ok).toBe(true);
  });

  it("is cleared by the sweep once older than the retention, oldest first", () => {
    const s = started();
    const keys = new IdempotencyKeys(s.db);
    s.pipeline.invoke(s.risk, RESERVE, reserve("c-1"), undefined);
    s.clock.advance(DAY);
    s.pipeline.invoke(s.risk, RESERVE, reserve("c-2"), undefined);
    s.clock.advance(6 * DAY + 1);
    expect(s.pipeline.groupCommit.runNow(() => keys.clearAnswers(s.clock.now(), 7 * DAY))).toBe(
      false,
    );
    expect(answersOnEvents(s.db, "c-1")).toEqual([]);
    expect(answersOnEvents(s.db, "c-2")).toHaveLength(1);
  });
});

describe("migration 11 with keys in both places", () => {
  it("answers keys left in the table after up, and moves every key back into it on down", () => {
    const folder = storeFolder();
    const clock = new ManualClock(T0);
    // A key as version 10 stored it, for a Reserve answered before the upgrade.
    const before = folder.open(10);
    const earlier = toBinary(
      ReserveResponseSchema,
      create(ReserveResponseSchema, { allowed: true, reservationId: "booked-before-11" }),
    );
    before
      .prepare(
        "INSERT INTO idempotency (method, correlation_id, request_hash, response, created_ms) VALUES (?, ?, ?, ?, ?)",
      )
      .run(RESERVE_SCOPE, "before-11", requestHash(reserve("before-11")), earlier, T0);
    before.close();

    const s = folder.start(clock);
    s.ctx.goLive.set({ goLiveEnabled: true, killSwitchEngaged: false }, "ops", "t", T0);
    const retry = s.pipeline.invoke(s.risk, RESERVE, reserve("before-11"), undefined);
    expect(bytes(retry.binary)).toEqual(bytes(earlier));
    expect(() =>
      s.pipeline.invoke(s.risk, RESERVE, reserve("before-11", "5.00"), undefined),
    ).toThrow(expect.objectContaining({ code: Code.AlreadyExists }));
    const eventAnswer = s.pipeline.invoke(s.risk, RESERVE, reserve("after-11"), undefined);
    expect(answersOnEvents(s.db, "after-11")).toHaveLength(1);
    s.db.close();

    const down = folder.open(10);
    expect(tableKeys(down).map((k) => [k.method, k.correlation_id, k.response])).toEqual([
      [RESERVE_SCOPE, "before-11", bytes(earlier)],
      [RESERVE_SCOPE, "after-11", bytes(eventAnswer.binary)],
    ]);
    expect(verifyChain(down).ok).toBe(true);
    down.close();

    const up = folder.start(clock);
    const again = up.pipeline.invoke(up.risk, RESERVE, reserve("after-11"), undefined);
    expect(bytes(again.binary)).toEqual(bytes(eventAnswer.binary));
  });
});
