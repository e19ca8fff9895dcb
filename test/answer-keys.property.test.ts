/**
 * Idempotency keys answered from memory and the fold's index always agree with the committed
 * calls: random calls under a few correlation ids (same or another body), shared commits that
 * fail after their keys were saved, folds committed and rolled back, and restarts in between.
 * Every committed key answers its first answer, bytes and all; another body is ALREADY_EXISTS;
 * a key whose commit failed is free; no key is on two events.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create, type DescMethodUnary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import fc from "fast-check";
import { pino } from "pino";
import { afterEach, expect, it } from "vitest";
import { ReserveRequestSchema, RiskService } from "../gen/governance/v1/risk_pb.js";
import { ManualClock } from "../src/clock.js";
import { createLeverContext } from "../src/levers/context.js";
import { riskService } from "../src/levers/risk/service.js";
import { CallPipeline } from "../src/server/call-pipeline.js";
import { OperatorToken } from "../src/server/operator-token.js";
import { type Db, migrateTo, openDatabase } from "../src/store/database.js";

const T0 = Date.UTC(2026, 2, 2, 12);
const RESERVE = RiskService.method.reserve as DescMethodUnary;
const SCOPE = "governance.v1.RiskService/Reserve";

let dir: string | undefined;
let db: Db | undefined;
afterEach(() => {
  if (db?.open) db.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

type Call = { key: number; body: number };
/** A key's first committed answer and the body it answered. */
type Known = { body: number; answer: Buffer };
type Op =
  | { kind: "call"; call: Call }
  | { kind: "batch"; calls: Call[]; fails: boolean }
  | { kind: "fold"; events: number; rolledBack: boolean }
  | { kind: "restart" }
  | { kind: "idle" };

const call: fc.Arbitrary<Call> = fc.record({ key: fc.nat(7), body: fc.nat(2) });
const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ kind: fc.constant("call" as const), call }) },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant("batch" as const),
      calls: fc.array(call, { minLength: 1, maxLength: 4 }),
      fails: fc.boolean(),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant("fold" as const),
      events: fc.integer({ min: 1, max: 6 }),
      rolledBack: fc.boolean(),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("restart" as const) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("idle" as const) }) },
);

const request = (c: Call) =>
  create(ReserveRequestSchema, {
    engine: "WHOLESALE",
    amount: `${c.body + 1}.00`,
    actor: "engine",
    correlationId: `key-${c.key}`,
  });

it("answers every committed key with its first answer, whatever rolled back or restarted", async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 40 }), async (ops) => {
      if (db?.open) db.close();
      if (dir) rmSync(dir, { recursive: true, force: true });
      dir = mkdtempSync(join(tmpdir(), "govd-answer-keys-prop-"));
      const file = join(dir, "sidecar.db");
      const store = openDatabase(file);
      db = store;
      migrateTo(store);
      const clock = new ManualClock(T0);
      const start = () => {
        const ctx = createLeverContext(store, clock);
        const pipeline = new CallPipeline({
          db: store,
          clock,
          token: new OperatorToken("answer-keys-property-token"),
          logger: pino({ level: "silent" }),
          storeFile: file,
        });
        return { pipeline, risk: riskService(ctx) };
      };
      let s = start();
      s.pipeline.groupCommit.runNow(() =>
        createLeverContext(store, clock).goLive.set(
          { goLiveEnabled: true, killSwitchEngaged: false },
          "ops",
          "t",
          T0,
        ),
      );
      /** The committed first answer and body of each key. */
      const model = new Map<number, Known>();
      /** What a call must do now; on success, what the model learns once it is committed. */
      const expectCall = (c: Call, outcome: Promise<Buffer>, learned: Map<number, Known>) => {
        const known = model.get(c.key) ?? learned.get(c.key);
        return outcome.then(
          (answer) => {
            if (known) {
              expect(known.body).toBe(c.body);
              expect(answer).toEqual(known.answer);
            } else learned.set(c.key, { body: c.body, answer });
          },
          (err: unknown) => {
            expect(known && known.body !== c.body).toBe(true);
            expect(ConnectError.from(err).code).toBe(Code.AlreadyExists);
          },
        );
      };
      for (const o of ops) {
        if (o.kind === "call") {
          const learned = new Map<number, Known>();
          const outcome = new Promise<Buffer>((resolve) =>
            resolve(
              Buffer.from(
                s.pipeline.invoke(s.risk, RESERVE, request(o.call), undefined).binary ?? [],
              ),
            ),
          );
          await expectCall(o.call, outcome, learned);
          for (const [k, v] of learned) model.set(k, v);
        } else if (o.kind === "batch") {
          const submitted = o.calls.map((c) =>
            Promise.resolve(s.pipeline.submit(s.risk, RESERVE, request(c), undefined)).then((a) =>
              Buffer.from(a.binary ?? []),
            ),
          );
          if (o.fails) {
            // The shared commit fails after every call saved its key: none of them is kept.
            store.exec("ROLLBACK");
            await Promise.allSettled(submitted);
          } else {
            const learned = new Map<number, Known>();
            for (const [i, c] of o.calls.entries()) {
              await expectCall(c, submitted[i] as Promise<Buffer>, learned);
            }
            for (const [k, v] of learned) model.set(k, v);
          }
        } else if (o.kind === "fold") {
          const fold = () => s.pipeline.keys.fold(o.events);
          if (o.rolledBack) {
            expect(() =>
              store.transaction(() => {
                fold();
                throw new Error("the fold's transaction fails");
              })(),
            ).toThrow(/fails/);
          } else s.pipeline.groupCommit.runNow(fold);
        } else if (o.kind === "restart") {
          s = start();
        } else {
          await new Promise((r) => setImmediate(r));
          await new Promise((r) => setImmediate(r));
        }
        // Every key answers as the model says, and a key nothing committed is free.
        for (let key = 0; key < 8; key++) {
          const found = s.pipeline.keys.find(SCOPE, `key-${key}`, clock.now());
          const known = model.get(key);
          expect(found ? Buffer.from(found.response) : undefined).toEqual(known?.answer);
        }
      }
      expect(
        store
          .prepare(
            `SELECT correlation_id FROM audit_event WHERE call_scope IS NOT NULL
              GROUP BY correlation_id, call_scope HAVING count(*) > 1`,
          )
          .all(),
      ).toEqual([]);
    }),
    { numRuns: 150 },
  );
});
