/**
 * What the library throws: a failed call to the sidecar (with its gRPC status), and one error
 * type per kind of denial, each carrying the deny reason enum and the sidecar's message.
 */
import * as grpc from "@grpc/grpc-js";
import type { DenyReason, ExecutionClass } from "../gen/governance/v1/common_pb.js";
import type { Gate } from "../gen/governance/v1/heimdall_pb.js";
import { denyReasonName } from "./execution.js";

/** A call to the sidecar failed (after its retries): the status code and what to do. */
export class SidecarCallError extends Error {
  override readonly name = "SidecarCallError";

  constructor(
    /** The RPC, as Service/Method. */
    readonly rpc: string,
    /** The gRPC status code. */
    readonly code: grpc.status,
    /** The sidecar's (or grpc-js's) description. */
    readonly details: string,
    /** How many attempts were made. */
    readonly attempts: number,
    address: string,
  ) {
    const hint =
      code === grpc.status.UNAVAILABLE
        ? `: is govd running and serving gRPC at ${address}? (govd serve --grpc-port/--grpc-socket)`
        : code === grpc.status.DEADLINE_EXCEEDED
          ? `: the sidecar at ${address} did not answer in time`
          : "";
    super(
      `govd ${rpc} failed with ${grpc.status[code] ?? code}: ${details}${hint} (${attempts} attempt${attempts === 1 ? "" : "s"})`,
    );
  }

  /** The status code's name, such as UNAVAILABLE. */
  get codeName(): string {
    return grpc.status[this.code] ?? String(this.code);
  }
}

/** The sidecar denied an action: the reason enum, its name, and the message for humans. */
export class GovdDeniedError extends Error {
  override name = "GovdDeniedError";
  /** The reason as the contract spells it, such as DENY_REASON_KILL_SWITCH_ENGAGED. */
  readonly reasonName: string;

  constructor(
    readonly reason: DenyReason,
    readonly denial: string,
    readonly policyRevision: bigint,
    readonly stalenessMs: bigint,
    what: string,
  ) {
    super(`${what} denied (${denyReasonName(reason)}): ${denial}`);
    this.reasonName = denyReasonName(reason);
  }
}

/** Reserve was denied: a cap, a throttle, go-live or the kill switch. */
export class ReservationDeniedError extends GovdDeniedError {
  override name = "ReservationDeniedError";

  constructor(
    readonly engine: string,
    readonly amount: string,
    r: { reason: DenyReason; message: string; policyRevision: bigint; stalenessMs: bigint },
  ) {
    super(r.reason, r.message, r.policyRevision, r.stalenessMs, `reserve ${amount} for ${engine}`);
  }
}

/** RequireProdEligible was denied: a gate failed, prod use is off, or go-live blocks it. */
export class ProdIneligibleError extends GovdDeniedError {
  override name = "ProdIneligibleError";

  constructor(
    readonly recommendationId: string,
    /** Each gate with its observed value, threshold and verdict. */
    readonly gates: readonly Gate[],
    r: { reason: DenyReason; message: string; policyRevision: bigint; stalenessMs: bigint },
  ) {
    super(
      r.reason,
      r.message,
      r.policyRevision,
      r.stalenessMs,
      `production use of recommendation ${recommendationId}`,
    );
  }
}

/** The in-process go-live decision blocked an action of this class. */
export class GoLiveBlockedError extends GovdDeniedError {
  override name = "GoLiveBlockedError";

  constructor(
    readonly executionClass: ExecutionClass,
    r: { reason: DenyReason; message: string },
    policyRevision = 0n,
    stalenessMs = 0n,
  ) {
    super(r.reason, r.message, policyRevision, stalenessMs, "production action");
  }
}
