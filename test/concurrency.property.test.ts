import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { RiskAction, RiskService } from "../gen/governance/v1/risk_pb.js";
import { formatMoney, parseMoney } from "../src/money.js";
import { type Caller, connectJsonCaller, grpcCaller } from "./support/callers.js";
import { enableGoLive, startSidecar, TOKEN } from "./support/sidecar.js";

type Caps = Record<
  "GLOBAL" | "ALPHA" | "BETA",
  { exposure: number; openRisk: number; actions: number }
>;

const capsOf = (
  exposure: [number, number],
  openRisk: [number, number],
  actions: [number, number],
) =>
  fc.record({
    exposure: fc.integer({ min: exposure[0], max: exposure[1] }),
    openRisk: fc.integer({ min: openRisk[0], max: openRisk[1] }),
    actions: fc.integer({ min: actions[0], max: actions[1] }),
  });

const capsArb: fc.Arbitrary<Caps> = fc.record({
  GLOBAL: capsOf([100, 1500], [50, 800], [20, 250]),
  ALPHA: capsOf([50, 1000], [30, 500], [10, 200]),
  BETA: capsOf([50, 1000], [30, 500], [10, 200]),
});

const micro = (text: string) => Number(parseMoney(text) ?? Number.NaN);

async function setCaps(c: Caller, caps: Caps): Promise<void> {
  for (const [engine, cap] of Object.entries(caps)) {
    await c.call(
      RiskService,
      "upsertPolicy",
      {
        engine,
        maxDailyLoss: "1000",
        maxDailyExposure: String(cap.exposure),
        maxOpenRisk: String(cap.openRisk),
        maxActionsPerDay: cap.actions,
        enabled: true,
        actor: "prop",
        reason: "property test caps",
        correlationId: `caps-${engine}`,
      },
      { token: TOKEN },
    );
  }
}

const reservation = fc.record({
  engine: fc.constantFrom("ALPHA", "BETA"),
  cents: fc.oneof(
    { arbitrary: fc.integer({ min: 1, max: 300 }), weight: 4 },
    { arbitrary: fc.integer({ min: 1_000, max: 5_000 }), weight: 1 },
  ),
  client: fc.nat({ max: 3 }),
});

describe("concurrent reservations against shared caps", () => {
  it("never book past a cap, and ledgers always equal the sum of booked events", async () => {
    await fc.assert(
      fc.asyncProperty(
        capsArb,
        fc.array(reservation, { minLength: 200, maxLength: 200 }),
        fc.array(fc.boolean(), { minLength: 200, maxLength: 200 }),
        async (caps, ops, settleMask) => {
          const s = await startSidecar();
          const clients = [
            s.grpc,
            s.connect,
            grpcCaller(s.grpcAddress),
            connectJsonCaller(s.httpUrl),
          ];
          try {
            await setCaps(s.grpc, caps);
            await enableGoLive(s.grpc);
            const answers = await Promise.all(
              ops.map((op, i) =>
                (clients[op.client] as Caller).call(RiskService, "reserve", {
                  engine: op.engine,
                  amount: formatMoney(BigInt(op.cents) * 10_000n),
                  correlationId: `op-${i}`,
                }),
              ),
            );
            // Settle about half of the granted ones, concurrently with 50 more reservations.
            const granted = answers.map((a, i) => ({ a, op: ops[i] })).filter((x) => x.a.allowed);
            await Promise.all([
              ...granted
                .filter((_, i) => settleMask[i])
                .map((g, i) =>
                  (clients[i % 4] as Caller).call(RiskService, "settle", {
                    reservationId: g.a.reservationId,
                    realizedLoss: "0.01",
                    correlationId: `settle-${i}`,
                  }),
                ),
              ...ops.slice(0, 50).map((op, i) =>
                (clients[(i + 1) % 4] as Caller).call(RiskService, "reserve", {
                  engine: op.engine,
                  amount: formatMoney(BigInt(op.cents) * 10_000n),
                  correlationId: `more-${i}`,
                }),
              ),
            ]);

            const { events } = await s.grpc.call(RiskService, "listEvents", { limit: 1000 });
            const ledger = await s.grpc.call(RiskService, "getLedgerToday", {});
            for (const engine of ["ALPHA", "BETA", "GLOBAL"] as const) {
              const mine = events.filter((e) => engine === "GLOBAL" || e.engine === engine);
              const sum = (action: RiskAction) =>
                mine.filter((e) => e.action === action).reduce((t, e) => t + micro(e.amount), 0);
              const reserved = sum(RiskAction.RESERVE);
              const settledIds = new Set(
                mine.filter((e) => e.action === RiskAction.SETTLE).map((e) => e.reservationId),
              );
              const stillOpen = mine
                .filter((e) => e.action === RiskAction.RESERVE && !settledIds.has(e.reservationId))
                .reduce((t, e) => t + micro(e.amount), 0);
              const entry = ledger.entries.find((e) => e.engine === engine);
              expect(micro(entry?.exposureUsed ?? "")).toBe(reserved);
              expect(micro(entry?.openRisk ?? "")).toBe(stillOpen);
              expect(micro(entry?.realizedLoss ?? "")).toBe(sum(RiskAction.SETTLE));
              expect(entry?.actions).toBe(
                mine.filter((e) => e.action === RiskAction.RESERVE).length,
              );
              expect(reserved).toBeLessThanOrEqual(caps[engine].exposure * 1_000_000);
              expect(entry?.actions ?? 0).toBeLessThanOrEqual(caps[engine].actions);
            }
            // Open risk never exceeded its cap at any point of the event sequence.
            const open = new Map<string, number>();
            const amountOf = new Map<string, { engine: string; amount: number }>();
            for (const e of events) {
              if (e.action === RiskAction.RESERVE)
                amountOf.set(e.reservationId, { engine: e.engine, amount: micro(e.amount) });
              const r = amountOf.get(e.reservationId);
              if (!r) continue;
              const delta =
                e.action === RiskAction.RESERVE
                  ? r.amount
                  : e.action === RiskAction.SETTLE
                    ? -r.amount
                    : 0;
              for (const key of [r.engine, "GLOBAL"] as const) {
                open.set(key, (open.get(key) ?? 0) + delta);
                expect(open.get(key)).toBeLessThanOrEqual(
                  caps[key as keyof Caps].openRisk * 1_000_000,
                );
              }
            }
          } finally {
            clients[2]?.close();
            await s.stop();
          }
        },
      ),
      { numRuns: 25 },
    );
  });
});
