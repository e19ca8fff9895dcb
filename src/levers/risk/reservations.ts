/**
 * Closing reservations: Settle, Release and the TTL sweep share one booking path; the rule for
 * a loss larger than the reservation; how many expired reservations one transaction releases.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { formatMoney } from "../../money.js";
import type { LeverContext } from "../context.js";
import type { ReservationRecord } from "./risk-book.js";

/**
 * Closes a reservation: frees its open risk on the engine's and GLOBAL's ledgers and books the
 * realized loss on today's (one SETTLE or RELEASE event; see RiskBook.close). An expired reservation may still be settled late so its loss is
 * not lost; its open risk was freed when it expired.
 */
export function closeReservation(
  ctx: LeverContext,
  r: ReservationRecord,
  status: "SETTLED" | "RELEASED" | "EXPIRED",
  loss: bigint,
  who: { actor: string; reason: string; correlationId: string },
  flags: Record<string, string> = {},
): ReservationRecord {
  const now = ctx.clock.now();
  const late = r.status === "EXPIRED";
  ctx.risk.close(
    r,
    status,
    loss,
    {
      ok: true,
      reason: who.reason,
      actor: who.actor,
      correlationId: who.correlationId,
      metadata: {
        ...(late
          ? { late: "settled after its TTL released it" }
          : status === "EXPIRED"
            ? { ttl: "expired" }
            : {}),
        ...flags,
      },
    },
    now,
  );
  return { ...r, status, realizedLoss: loss };
}

/**
 * The most expired reservations one sweep transaction releases, and the time it may take:
 * it stops at whichever comes first, so decisions interleave with a backlog of any size
 * (measured with `node dist/bench/sweep-batch.js`: about 30 us a reservation on 2 loaded cores).
 * After `foldEvery` releases the sweep folds them in a step of its own: a close costs the fold
 * about 10 us (its row's page rewritten), so over a backlog of 300,000 that step held the
 * thread 5 ms on average and up to 45 ms (a sidecar in-process); a fold of 4,096 closes, up
 * to 60 ms.
 */
export const SWEEP_BATCH = { limit: 256, budgetMs: 2, foldEvery: 512 } as const;

/**
 * The most risk decisions one fold moves into the tables: the sidecar's fold timer and the
 * sweep fold a batch per step until the tables have caught up with the trail. Smaller batches
 * hold the thread for less but cost more in all (each rewrites the pages its rows share):
 * at 3,000 decisions a second, 4,096 cost 38-40 ms a second, 512 cost 64-68 ms.
 */
export const RISK_FOLD_BATCH = 4_096;

/**
 * How many expired reservations a Reserve releases before it decides. Bounded so that a
 * backlog (after an outage) never stalls a decision; the sweep releases the rest in batches,
 * and until it has, their open risk still counts (a Reserve may be denied, never waved through).
 */
export const RESERVE_RELEASES = 16;

/**
 * Releases open reservations whose TTL has passed, oldest expiry first: at most `limit`, and
 * none more once `budgetMs` have passed. Returns how many it released (0: none is left).
 */
export function releaseExpired(ctx: LeverContext, limit: number, budgetMs = Infinity): number {
  const started = performance.now();
  const nowMs = ctx.clock.now();
  let released = 0;
  // Read a few at a time: a stored reservation costs about 4 us to read and 30 us to release,
  // so reading `limit` up front would spend the budget on rows it has no time to release.
  while (released < limit) {
    const chunk = Math.min(limit - released, EXPIRY_READ);
    const expired = ctx.risk.expiredReservations(nowMs, chunk);
    for (const r of expired) {
      closeReservation(ctx, r, "EXPIRED", 0n, {
        actor: "govd:ttl",
        reason: "reservation TTL passed without Settle or Release",
        correlationId: `ttl:${r.id}`,
      });
      released++;
      if (performance.now() - started >= budgetMs) return released;
    }
    if (expired.length < chunk) break;
  }
  return released;
}

/** Expired reservations `releaseExpired` reads at a time. */
const EXPIRY_READ = 16;

/**
 * A realized loss above the reservation's amount is refused unless the Settle declares it
 * (loss_exceeds_amount): one typo would otherwise trip the GLOBAL loss cap for the fleet.
 * Returns the SETTLE event's flags for a declared one (none when the loss fits).
 */
export function lossBeyondAmount(
  r: ReservationRecord,
  loss: bigint,
  declared: boolean,
): Record<string, string> {
  if (loss <= r.amount) return {};
  if (!declared) {
    throw new ConnectError(
      `invalid request: realized_loss: ${formatMoney(loss)} is more than reservation ${r.id}'s amount ${formatMoney(r.amount)}: nothing was booked; check the figure, or if the loss really exceeds the reserved exposure, settle with loss_exceeds_amount: true`,
      Code.InvalidArgument,
    );
  }
  return { loss_exceeds_amount: "true", reserved_amount: formatMoney(r.amount) };
}
