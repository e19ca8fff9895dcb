/**
 * The seed's engine helpers on the sidecar's answers: `reserveOrThrow` (risk_reserve_or_raise),
 * `withReservation` (reserve, run, settle or release: no path leaves a reservation open, and a
 * crash leaves it to the sidecar's TTL) and `requireProdEligible`
 * (heimdall_require_prod_eligible). A denial is thrown as its own error type.
 */
import type { RequireProdEligibleResponse } from "../gen/governance/v1/heimdall_pb.js";
import { HeimdallService } from "../gen/governance/v1/heimdall_pb.js";
import { type ReserveResponse, RiskService } from "../gen/governance/v1/risk_pb.js";
import { ProdIneligibleError, ReservationDeniedError } from "./errors.js";
import type { SidecarClient } from "./sidecar-client.js";

/** Who reserves and why; `correlationId` is the idempotency key (required: money moves). */
export interface ReserveOptions {
  correlationId: string;
  actor?: string;
  reason?: string;
  /** Recorded with the audit event (at most 32 pairs). */
  metadata?: Record<string, string>;
}

/** An allowed reservation: its id, what remains, and when the sidecar would release it. */
export type Reservation = ReserveResponse;

/** Reserves `amount` for `engine`, or throws ReservationDeniedError with the reason. */
export async function reserveOrThrow(
  client: SidecarClient,
  engine: string,
  amount: string,
  options: ReserveOptions,
): Promise<Reservation> {
  const answer = await client.call(RiskService.method.reserve, {
    engine,
    amount,
    actor: options.actor ?? "",
    reason: options.reason ?? "",
    correlationId: options.correlationId,
    metadata: options.metadata ?? {},
  });
  if (!answer.allowed) throw new ReservationDeniedError(engine, amount, answer);
  return answer;
}

/** What the work under a reservation reports: its realized loss (a decimal string) and value. */
export interface ReservationOutcome<T> {
  realizedLoss: string;
  value: T;
}

/**
 * Reserves, runs `work`, then settles with the loss it reports and returns its value. When
 * `work` throws, the reservation is released and the error rethrown; when the settle itself is
 * refused (a malformed loss), the reservation is released and the refusal thrown. Settle and
 * release use the ids `<correlationId>/settle` and `<correlationId>/release`, so a retry of
 * the whole call with the same correlationId reserves and settles nothing twice (the work runs
 * again: make it idempotent too, or do not retry past a settled outcome).
 */
export async function withReservation<T>(
  client: SidecarClient,
  engine: string,
  amount: string,
  work: (reservation: Reservation) => Promise<ReservationOutcome<T>>,
  options: ReserveOptions,
): Promise<T> {
  const reservation = await reserveOrThrow(client, engine, amount, options);
  const id = reservation.reservationId;
  const release = (why: string) =>
    client.call(RiskService.method.release, {
      reservationId: id,
      actor: options.actor ?? "",
      reason: why.slice(0, 1024),
      correlationId: `${options.correlationId}/release`,
    });
  let outcome: ReservationOutcome<T>;
  try {
    outcome = await work(reservation);
  } catch (err) {
    // Released best-effort: if the sidecar cannot be reached, its TTL releases the reservation.
    await release(`work failed: ${(err as Error)?.message ?? String(err)}`).catch(() => {});
    throw err;
  }
  try {
    await client.call(RiskService.method.settle, {
      reservationId: id,
      realizedLoss: outcome.realizedLoss,
      actor: options.actor ?? "",
      correlationId: `${options.correlationId}/settle`,
    });
  } catch (err) {
    await release(`settle refused: ${(err as Error).message}`).catch(() => {});
    throw err;
  }
  return outcome.value;
}

/** Who asks, and the optional idempotency key. */
export interface ProdEligibleOptions {
  actor?: string;
  correlationId?: string;
}

/** Re-checks a recommendation's gates and go-live now; throws ProdIneligibleError if denied. */
export async function requireProdEligible(
  client: SidecarClient,
  recommendationId: string,
  options: ProdEligibleOptions = {},
): Promise<RequireProdEligibleResponse> {
  const answer = await client.call(HeimdallService.method.requireProdEligible, {
    recommendationId,
    actor: options.actor ?? "",
    correlationId: options.correlationId ?? "",
  });
  if (!answer.allowed) throw new ProdIneligibleError(recommendationId, answer.gates, answer);
  return answer;
}
