/** The sweep releases expired reservations in bounded batches, one sweep at a time. */
import { afterEach, beforeEach, expect, it } from "vitest";
import { fillExpiredBacklog } from "../bench/expired-backlog.js";
import { RiskService } from "../gen/governance/v1/risk_pb.js";
import { RESERVE_RELEASES, SWEEP_BATCH } from "../src/levers/risk/reservations.js";
import { enableGoLive, type RunningSidecar, startSidecar, T0 } from "./support/sidecar.js";

let s: RunningSidecar;
beforeEach(async () => {
  s = await startSidecar();
  // Let the start-up sweep (nothing to release yet) finish.
  await new Promise((r) => setImmediate(r));
});
afterEach(async () => {
  await s.stop();
});

const BACKLOG = 3 * SWEEP_BATCH.limit + 7;
const open = () =>
  s.db.prepare("SELECT count(*) FROM risk_reservation WHERE status = 'OPEN'").pluck().get();

it("releases a backlog in batches between calls, and a second sweep joins the first", async () => {
  fillExpiredBacklog(s.db, {
    count: BACKLOG,
    engine: "WHOLESALE",
    amountMicros: 1_000_000,
    expiredMs: T0 - 60_000,
  });
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
  await enableGoLive(s.grpc);
  fillExpiredBacklog(s.db, {
    count: BACKLOG,
    engine: "NOTIFY",
    amountMicros: 1_000,
    expiredMs: T0 - 60_000,
  });
  const res = await s.grpc.call(RiskService, "reserve", {
    engine: "CAPITAL",
    amount: "1.00",
    correlationId: "during-backlog",
  });
  expect(res.allowed).toBe(true);
  const expired = s.db
    .prepare("SELECT count(*) FROM risk_reservation WHERE status = 'EXPIRED'")
    .pluck()
    .get();
  expect(expired).toBe(RESERVE_RELEASES);
});
