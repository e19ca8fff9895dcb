/**
 * The engine library's guards against a real sidecar: withReservation settles with the
 * reported loss, releases when the work throws (and when the settle is refused), books nothing
 * twice on a retry with the same correlationId; denials are thrown as their own error types
 * with the reason; an unreachable sidecar is a SidecarCallError after the retries.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HeimdallService } from "../gen/governance/v1/heimdall_pb.js";
import { RiskService } from "../gen/governance/v1/risk_pb.js";
import {
  createEngine,
  DenyReason,
  type Engine,
  ProdIneligibleError,
  ReservationDeniedError,
  SidecarCallError,
} from "../packages/engine/src/index.js";
import { enableGoLive, type RunningSidecar, startSidecar } from "./support/sidecar.js";

describe("engine guards", () => {
  let s: RunningSidecar;
  let govd: Engine;
  const ledger = async () => {
    const l = await s.grpc.call(RiskService, "getLedgerToday", {});
    return l.entries.find((e) => e.engine === "WHOLESALE");
  };
  beforeAll(async () => {
    s = await startSidecar();
    govd = createEngine({ address: s.grpcAddress });
  });
  afterAll(async () => {
    govd.close();
    await s.stop();
  });

  it("throws ReservationDeniedError with the reason while go-live is disabled", async () => {
    const denied = await govd
      .reserveOrThrow("WHOLESALE", "10.00", { correlationId: "g-0", actor: "engine" })
      .catch((e: unknown) => e);
    expect(denied).toBeInstanceOf(ReservationDeniedError);
    expect(denied).toMatchObject({
      reason: DenyReason.GO_LIVE_DISABLED,
      reasonName: "DENY_REASON_GO_LIVE_DISABLED",
      engine: "WHOLESALE",
    });
    expect((denied as Error).message).toMatch(/go-live is disabled/);
  });

  it("settles with the loss the work reports", async () => {
    await enableGoLive(s.grpc);
    const value = await govd.withReservation(
      "WHOLESALE",
      "100.00",
      async (r) => {
        expect(r.reservationId).not.toBe("");
        expect((await ledger())?.openRisk).toBe("100.00");
        return { realizedLoss: "12.50", value: "deal done" };
      },
      { correlationId: "g-1", actor: "engine", reason: "deal 1" },
    );
    expect(value).toBe("deal done");
    expect(await ledger()).toMatchObject({ openRisk: "0.00", realizedLoss: "12.50", actions: 1 });
  });

  it("is idempotent on a retry with the same correlationId", async () => {
    const run = () =>
      govd.withReservation(
        "WHOLESALE",
        "100.00",
        async () => ({ realizedLoss: "12.50", value: 1 }),
        {
          correlationId: "g-1",
          actor: "engine",
          reason: "deal 1",
        },
      );
    await run();
    expect(await ledger()).toMatchObject({ openRisk: "0.00", realizedLoss: "12.50", actions: 1 });
  });

  it("releases when the work throws, and rethrows its error", async () => {
    const failure = new Error("buyer walked away");
    await expect(
      govd.withReservation(
        "WHOLESALE",
        "40.00",
        async () => {
          throw failure;
        },
        { correlationId: "g-2" },
      ),
    ).rejects.toBe(failure);
    expect(await ledger()).toMatchObject({ openRisk: "0.00", realizedLoss: "12.50", actions: 2 });
    const events = await s.grpc.call(RiskService, "listEvents", { engine: "WHOLESALE" });
    expect(events.events.at(-1)).toMatchObject({ correlationId: "g-2/release" });
  });

  it("releases when the settle is refused (a malformed loss)", async () => {
    await expect(
      govd.withReservation("WHOLESALE", "40.00", async () => ({ realizedLoss: "-1", value: 0 }), {
        correlationId: "g-3",
      }),
    ).rejects.toThrow(/INVALID_ARGUMENT.*realized_loss/);
    expect((await ledger())?.openRisk).toBe("0.00");
  });

  it("throws ProdIneligibleError with the reason and the gates", async () => {
    const rec = await s.grpc.call(HeimdallService, "recommend", {
      domain: "BUYER_MATCH",
      confidence: 0.95,
      recommendationJson: "{}",
    });
    const denied = await govd
      .requireProdEligible(rec.recommendationId, { actor: "engine" })
      .catch((e: unknown) => e);
    expect(denied).toBeInstanceOf(ProdIneligibleError);
    expect(denied).toMatchObject({ reasonName: "DENY_REASON_PROD_USE_DISABLED" });
    expect((denied as ProdIneligibleError).gates.length).toBeGreaterThan(0);
  });

  it("answers an unreachable sidecar with SidecarCallError after the retries", async () => {
    const lost = createEngine({ address: "127.0.0.1:1", backoffMs: 1 });
    const err = await lost
      .reserveOrThrow("WHOLESALE", "1.00", { correlationId: "g-4" })
      .catch((e: unknown) => e);
    lost.close();
    expect(err).toBeInstanceOf(SidecarCallError);
    expect(err).toMatchObject({ codeName: "UNAVAILABLE", attempts: 3, rpc: "RiskService/Reserve" });
    expect((err as Error).message).toMatch(/is govd running and serving gRPC at 127.0.0.1:1/);
  });

  it("refuses an address off loopback", () => {
    expect(() => createEngine({ address: "10.0.0.7:8013" })).toThrow(/not on loopback/);
  });
});
