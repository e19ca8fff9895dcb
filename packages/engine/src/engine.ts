/**
 * The engine's one object: a client of its sidecar, the pushed go-live state, the guards and
 * the middleware, wired together. Three lines in an Express engine:
 *
 *   const govd = createEngine({ address: "127.0.0.1:8013", engine: "WHOLESALE" });
 *   app.use(govd.express({ "GET /health": "EXEMPT", "POST /deals/:id/execute": "PROD_EXEC" }));
 *   await govd.withReservation("WHOLESALE", "250.00", run, { correlationId: dealId });
 */
import type * as grpc from "@grpc/grpc-js";
import type { ExecutionClass } from "../gen/governance/v1/common_pb.js";
import type { RequireProdEligibleResponse } from "../gen/governance/v1/heimdall_pb.js";
import { GoLiveBlockedError } from "./errors.js";
import { type ExecutionClassName, executionClassOf, type Verdict } from "./execution.js";
import { GoLiveWatch, type GoLiveWatchOptions } from "./golive-watch.js";
import { grpcGoLiveInterceptor } from "./grpc-interceptor.js";
import * as guards from "./guards.js";
import { expressGoLiveGuard, fastifyGoLiveHook, nodeGoLiveGuard } from "./http-middleware.js";
import type { RouteTable } from "./route-table.js";
import { SidecarClient, type SidecarClientOptions } from "./sidecar-client.js";

/** Where the sidecar is, and how the engine follows it. */
export interface EngineOptions extends SidecarClientOptions, GoLiveWatchOptions {}

/** A sidecar client, the go-live state it pushes, and what an engine calls. */
export class Engine {
  /** The typed client, for any other RPC. */
  readonly client: SidecarClient;
  /** The go-live state, kept current by WatchGoLive. */
  readonly goLive: GoLiveWatch;

  constructor(options: EngineOptions) {
    this.client = new SidecarClient(options);
    this.goLive = new GoLiveWatch(this.client, options);
  }

  /** Resolves once the first go-live state has arrived (production is blocked until then). */
  ready(timeoutMs?: number): Promise<void> {
    return this.goLive.ready(timeoutMs);
  }

  /** The in-process go-live verdict for a class, such as "PROD_EXEC". */
  decide(executionClass: ExecutionClassName | ExecutionClass): Verdict {
    const c =
      typeof executionClass === "string" ? executionClassOf(executionClass) : executionClass;
    return this.goLive.decide(c);
  }

  /** Throws GoLiveBlockedError unless an action of this class may run now. */
  requireGoLive(executionClass: ExecutionClassName): void {
    const c = executionClassOf(executionClass);
    const verdict = this.goLive.decide(c);
    if (!verdict.allowed) throw new GoLiveBlockedError(c, verdict);
  }

  /** Reserves, or throws ReservationDeniedError. */
  reserveOrThrow(
    engine: string,
    amount: string,
    options: guards.ReserveOptions,
  ): Promise<guards.Reservation> {
    return guards.reserveOrThrow(this.client, engine, amount, options);
  }

  /** Reserves, runs `work`, settles with its loss; releases if it throws. */
  withReservation<T>(
    engine: string,
    amount: string,
    work: (reservation: guards.Reservation) => Promise<guards.ReservationOutcome<T>>,
    options: guards.ReserveOptions,
  ): Promise<T> {
    return guards.withReservation(this.client, engine, amount, work, options);
  }

  /** Throws ProdIneligibleError unless the recommendation may reach production now. */
  requireProdEligible(
    recommendationId: string,
    options?: guards.ProdEligibleOptions,
  ): Promise<RequireProdEligibleResponse> {
    return guards.requireProdEligible(this.client, recommendationId, options);
  }

  /** Express middleware over a route table. */
  express(table: RouteTable): ReturnType<typeof expressGoLiveGuard> {
    return expressGoLiveGuard(this.goLive, table);
  }

  /** A Fastify onRequest hook over a route table. */
  fastify(table: RouteTable): ReturnType<typeof fastifyGoLiveHook> {
    return fastifyGoLiveHook(this.goLive, table);
  }

  /** A node:http guard over a route table (true when it answered the request). */
  node(table: RouteTable): ReturnType<typeof nodeGoLiveGuard> {
    return nodeGoLiveGuard(this.goLive, table);
  }

  /** A grpc-js server interceptor over a route table keyed by `/<package.Service>/<Method>`. */
  grpcInterceptor(table: RouteTable): grpc.ServerInterceptor {
    return grpcGoLiveInterceptor(this.goLive, table);
  }

  /** Stops the go-live stream and closes the channel. */
  close(): void {
    this.goLive.close();
    this.client.close();
  }
}

/** Connects an engine to its sidecar; the go-live stream starts at once. */
export function createEngine(options: EngineOptions): Engine {
  return new Engine(options);
}
