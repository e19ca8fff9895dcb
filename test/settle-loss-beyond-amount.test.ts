/**
 * A realized loss larger than its reservation's amount: refused unless the Settle declares it
 * (loss_exceeds_amount), then booked, flagged in the SETTLE event and listed by govctl review.
 * Before, one typo of 500.00 on a 1.00 reservation tripped the GLOBAL loss cap for the fleet.
 */
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, expect, it } from "vitest";
import { ReservationStatus, RiskAction, RiskService } from "../gen/governance/v1/risk_pb.js";
import { lossBeyondAmount } from "../src/levers/risk/reservations.js";
import type { ReservationRecord } from "../src/levers/risk/risk-book.js";
import { rejects } from "./support/expect-error.js";
import { govctlFor } from "./support/govctl.js";
import { enableGoLive, type RunningSidecar, startSidecar } from "./support/sidecar.js";

let s: RunningSidecar;
beforeAll(async () => {
  s = await startSidecar();
  await enableGoLive(s.grpc);
});
afterAll(() => s.stop());

let n = 0;
const reserve = async (amount: string) => {
  const r = await s.grpc.call(RiskService, "reserve", {
    engine: "WHOLESALE",
    amount,
    correlationId: `rv-${++n}`,
  });
  expect(r.allowed).toBe(true);
  return r.reservationId;
};
const ledger = async (engine: string) =>
  (await s.grpc.call(RiskService, "getLedgerToday", { engine })).entries[0];

it("is a rule of its own: a loss up to the amount passes, above it only when declared", () => {
  const r = { id: "r-1", amount: 1_000_000n } as ReservationRecord;
  expect(lossBeyondAmount(r, 0n, false)).toEqual({});
  expect(lossBeyondAmount(r, 1_000_000n, false)).toEqual({});
  expect(() => lossBeyondAmount(r, 1_000_001n, false)).toThrow(
    /realized_loss: 1.000001 is more than/,
  );
  expect(lossBeyondAmount(r, 500_000_000n, true)).toEqual({
    loss_exceeds_amount: "true",
    reserved_amount: "1.00",
  });
});

it("refuses a typo of 500.00 on a 1.00 reservation, booking nothing; the fleet keeps reserving", async () => {
  const id = await reserve("1.00");
  await rejects(
    s.grpc.call(RiskService, "settle", {
      reservationId: id,
      realizedLoss: "500.00",
      correlationId: "typo",
    }),
    Code.InvalidArgument,
    /realized_loss: 500\.00 is more than reservation .*'s amount 1\.00: nothing was booked.*loss_exceeds_amount/,
  );
  expect(await ledger("GLOBAL")).toMatchObject({ realizedLoss: "0.00", openRisk: "1.00" });
  // The GLOBAL loss cap (250.00) was not tripped: reserving still works.
  await reserve("2.00");
  // The same id, fixed, settles (a refusal is not remembered as the id's answer).
  const fixed = await s.grpc.call(RiskService, "settle", {
    reservationId: id,
    realizedLoss: "0.50",
    correlationId: "typo",
  });
  expect(fixed.reservation).toMatchObject({
    status: ReservationStatus.SETTLED,
    realizedLoss: "0.50",
  });
});

it("books a declared loss beyond the amount in full, flags the event, and review lists it", async () => {
  const id = await reserve("1.00");
  const settled = await s.grpc.call(RiskService, "settle", {
    reservationId: id,
    realizedLoss: "7.25",
    correlationId: "real-big-loss",
    actor: "desk-7",
    lossExceedsAmount: true,
  });
  expect(settled.reservation?.realizedLoss).toBe("7.25");
  expect((await ledger("WHOLESALE"))?.realizedLoss).toBe("7.75");
  const { events } = await s.grpc.call(RiskService, "listEvents", { engine: "WHOLESALE" });
  const settle = events.find((e) => e.action === RiskAction.SETTLE && e.reservationId === id);
  expect(settle?.amount).toBe("7.25");
  expect(settle?.metadata).toEqual({ loss_exceeds_amount: "true", reserved_amount: "1.00" });
  // A declared flag on a loss that fits changes nothing and flags nothing.
  const small = await reserve("3.00");
  await s.grpc.call(RiskService, "settle", {
    reservationId: small,
    realizedLoss: "3.00",
    correlationId: "fits",
    lossExceedsAmount: true,
  });
  const after = await s.grpc.call(RiskService, "listEvents", { engine: "WHOLESALE" });
  expect(
    after.events.find((e) => e.reservationId === small && e.action === RiskAction.SETTLE)?.metadata,
  ).toEqual({});

  const review = await govctlFor(s)("review");
  expect(review.stdout).toMatch(/== risk ledger 2026-03-02: LOOK AT THIS/);
  expect(review.stdout).toContain(
    `! WHOLESALE settled ${id} with a loss of 7.25, above the 1.00 reserved (declared loss_exceeds_amount by desk-7): check it is not a typo`,
  );
  expect(review.code).toBe(5);
});
