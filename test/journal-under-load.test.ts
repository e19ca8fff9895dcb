/**
 * Memory that waits for commits (the risk book's journal, the answer keys after the fold) is
 * let go of under load that never pauses: calls arriving from I/O callbacks in every turn of
 * the event loop keep a transaction open whenever a turn's check phase looks, so the journals
 * are emptied right after each commit instead.
 */
import { stat } from "node:fs";
import { create, type DescMethodUnary } from "@bufbuild/protobuf";
import { pino } from "pino";
import { afterEach, expect, it } from "vitest";
import { ReserveRequestSchema, RiskService } from "../gen/governance/v1/risk_pb.js";
import { ManualClock } from "../src/clock.js";
import { createLeverContext } from "../src/levers/context.js";
import { riskService } from "../src/levers/risk/service.js";
import { CallPipeline } from "../src/server/call-pipeline.js";
import { OperatorToken } from "../src/server/operator-token.js";
import { openTempStore, type TempStore } from "./support/temp-store.js";

const RESERVE = RiskService.method.reserve as DescMethodUnary;
let store: TempStore | undefined;
afterEach(() => store?.remove());

it("keeps the journals and the unfolded keys small while calls never pause", async () => {
  store = openTempStore();
  const db = store.db;
  const clock = new ManualClock(Date.UTC(2026, 2, 2, 12));
  const ctx = createLeverContext(db, clock);
  ctx.goLive.set({ goLiveEnabled: true, killSwitchEngaged: false }, "ops", "t", clock.now());
  const pipeline = new CallPipeline({
    db,
    clock,
    token: new OperatorToken("journal-under-load-token"),
    logger: pino({ level: "silent" }),
    storeFile: db.name,
  });
  const risk = riskService(ctx);
  let calls = 0;
  let stop = false;
  let worst = { journal: 0, keys: 0 };
  // 32 callers, each sending its next Reserve from an I/O callback once the last is answered.
  const caller = (): Promise<void> =>
    new Promise((done) => {
      const next = () => {
        if (stop) return done();
        stat(db.name, () => {
          const id = `load-${++calls}`;
          const request = create(ReserveRequestSchema, {
            engine: "WHOLESALE",
            amount: "0.01",
            actor: "engine",
            correlationId: id,
          });
          Promise.resolve(pipeline.submit(risk, RESERVE, request, undefined)).then(next, next);
        });
      };
      next();
    });
  // As the sidecar does every second (here every 100 ms): fold the trail and the keys.
  const folding = setInterval(() => {
    pipeline.groupCommit.runNow(() => {
      ctx.risk.fold(Number.MAX_SAFE_INTEGER);
      pipeline.keys.fold(Number.MAX_SAFE_INTEGER);
    });
    worst = {
      journal: Math.max(worst.journal, ctx.risk.uncommitted),
      keys: Math.max(worst.keys, pipeline.keys.remembered),
    };
  }, 100);
  const running = Promise.all(Array.from({ length: 32 }, caller));
  await new Promise((r) => setTimeout(r, 2_500));
  stop = true;
  await running;
  clearInterval(folding);
  expect(calls).toBeGreaterThan(2_000);
  // A fold's interval of calls at most (and the batch in flight), not every call so far.
  expect(worst.journal).toBeLessThan(calls / 10);
  expect(worst.keys).toBeLessThan(calls / 10);
});
