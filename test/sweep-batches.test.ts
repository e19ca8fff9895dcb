/** The sweep releases expired reservations in bounded batches, one sweep at a time. */
import { afterEach, expect, it } from "vitest";
import { fillExpiredBacklog } from "../bench/expired-backlog.js";
import { RiskService } from "../gen/governance/v1/risk_pb.js";
import { RESERVE_RELEASES, SWEEP_BATCH } from "../src/levers/risk/reservations.js";
import { enableGoLive, type RunningSidecar, startSidecar, T0 } from "./support/sidecar.js";

let s: RunningSidecar | undefined;
afterEach(async () => {
  await s?.stop();
  s = undefined;
});

const BACKLOG = 3 * SWEEP_BATCH.limit + 7;

/** A sidecar started over a store its last run left with a backlog of expired reservations. */
async function startOverBacklog(engine: string, amountMicros: number): Promise<RunningSidecar> {
  // They expire a minute after the start, so the start-up sweep finds none.
  const run = await startSidecar({
    storeBefore: (db) =>
      fillExpiredBacklog(db, { count: BACKLOG, engine, amountMicros, expiredMs: T0 + 60_000 }),
  });
  await new Promise((r) => setImmediate(r));
  run.clock.advance(120_000);
  return run;
}

/** How many reservations are open, and how many expired (the book folded into the tables). */
function counted(run: RunningSidecar, status: "OPEN" | "EXPIRED"): number {
  run.db.transaction(() => run.sidecar.context.risk.fold(Number.MAX_SAFE_INTEGER))();
  return Number(
    run.db.prepare("SELECT count(*) FROM risk_reservation WHERE status = ?").pluck().get(status),
  );
}

it("releases a backlog in batches between calls, and a second sweep joins the first", async () => {
  s = await startOverBacklog("WHOLESALE", 1_000_000);
  const open = () => counted(s as RunningSidecar, "OPEN");
  const first = s.sidecar.sweep();
  // One batch ran at once; the rest waits for later turns of the event loop.
  expect(BACKLOG - Number(open())).toBeLessThanOrEqual(SWEEP_BATCH.limit);
  expect(s.sidecar.sweep()).toBe(first);
  expect(await first).toBe(BACKLOG);
  expect(open()).toBe(0);
  const ledger = await s.grpc.call(RiskService, "getLedgerToday", {});
  expect(ledger.entries.filter((e) => e.openRisk !== "0.00")).toEqual([]);
  // Done: the next sweep is a new one, with nothing left to release.
  const next = s.sidecar.sweep();
  expect(next).not.toBe(first);
  expect(await next).toBe(0);
});

it("a Reserve releases at most a few expired reservations before it decides", async () => {
  s = await startOverBacklog("NOTIFY", 1_000);
  await enableGoLive(s.grpc);
  const res = await s.grpc.call(RiskService, "reserve", {
    engine: "CAPITAL",
    amount: "1.00",
    correlationId: "during-backlog",
  });
  expect(res.allowed).toBe(true);
  expect(counted(s, "EXPIRED")).toBe(RESERVE_RELEASES);
});
