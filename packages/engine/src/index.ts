/**
 * @govd/engine: what an engine imports to use its govd sidecar. Runtime dependencies are
 * @grpc/grpc-js and @bufbuild/protobuf only; Express and Fastify are served through their
 * shapes, and the Connect interceptor lives in `@govd/engine/connect`.
 */
export { DenyReason, ExecutionClass } from "../gen/governance/v1/common_pb.js";
export { GoLiveService } from "../gen/governance/v1/golive_pb.js";
export { HeimdallService } from "../gen/governance/v1/heimdall_pb.js";
export { RiskService } from "../gen/governance/v1/risk_pb.js";
export { createEngine, Engine, type EngineOptions } from "./engine.js";
export {
  GoLiveBlockedError,
  GovdDeniedError,
  ProdIneligibleError,
  ReservationDeniedError,
  SidecarCallError,
} from "./errors.js";
export {
  ALLOW,
  decideExecution,
  denyReasonName,
  type ExecutionClassName,
  executionClassOf,
  type GoLiveFlags,
  type Verdict,
} from "./execution.js";
export { DEFAULT_STALE_AFTER_MS, GoLiveWatch, type GoLiveWatchOptions } from "./golive-watch.js";
export { grpcGoLiveInterceptor } from "./grpc-interceptor.js";
export {
  type ProdEligibleOptions,
  type Reservation,
  type ReservationOutcome,
  type ReserveOptions,
  requireProdEligible,
  reserveOrThrow,
  withReservation,
} from "./guards.js";
export {
  type BlockedBody,
  blockedBody,
  type ExpressLikeRequest,
  expressGoLiveGuard,
  type FastifyLikeReply,
  type FastifyLikeRequest,
  fastifyGoLiveHook,
  type GoLiveDecider,
  nodeGoLiveGuard,
} from "./http-middleware.js";
export { RouteClassifier, type RouteTable } from "./route-table.js";
export { type CallOptions, SidecarClient, type SidecarClientOptions } from "./sidecar-client.js";
