/** The standalone sidecar: the four levers on one store, served on the gRPC and HTTP ports. */
import type * as http from "node:http";
import type * as grpc from "@grpc/grpc-js";
import { type Logger, pino } from "pino";
import type { Clock } from "../clock.js";
import { createLeverContext, type LeverContext, type LeverSettings } from "../levers/context.js";
import { goLiveService } from "../levers/golive/service.js";
import { heimdallService } from "../levers/heimdall/service.js";
import { regressionService } from "../levers/regression/service.js";
import { riskService } from "../levers/risk/service.js";
import type { ServiceBinding } from "../levers/service-binding.js";
import { assertServable, type Db } from "../store/database.js";
import { DiskSpace } from "../store/disk-space.js";
import { DEFAULT_KEY_RETENTION_MS } from "../store/idempotency-keys.js";
import { type CheckpointReport, WalCheckpointer } from "../store/wal-checkpointer.js";
import { CentralFollower, type FollowerOptions } from "../sync/follower/central-follower.js";
import { centralLabel } from "../sync/follower/sync-client.js";
import { CallPipeline } from "./call-pipeline.js";
import { SidecarMetrics } from "./metrics.js";
import { type BoundAddresses, createNodePorts, type ListenOptions } from "./node-ports.js";
import { OperatorToken } from "./operator-token.js";
import { ProblemLog } from "./problem-log.js";
import { Readiness } from "./standard/health.js";
import { StoreUpkeep } from "./store-upkeep.js";

/** What a sidecar is made from; the store and the clock are passed in. */
export interface SidecarOptions {
  db: Db;
  clock: Clock;
  /** The operator token admin writes must present. */
  token: string;
  /** For messages about the store. */
  storeFile: string;
  logger?: Logger;
  maxMessageBytes?: number;
  /** Host names the HTTP port serves besides IP literals and localhost (DNS rebinding guard). */
  httpAllowedHosts?: ReadonlySet<string>;
  /**
   * gRPC connections without a call for this long are closed (default 5 minutes); HTTP/1.1
   * keep-alive connections after 5 s idle, or this if shorter.
   */
  idleTimeoutMs?: number;
  /** Calls one gRPC connection may have open at once; more wait in the client (default 1000). */
  maxConcurrentStreams?: number;
  settings?: Partial<LeverSettings>;
  /** How often expired reservations are released and old idempotency keys pruned. */
  sweepIntervalMs?: number;
  /**
   * How often a worker thread checkpoints the WAL (default 1000 ms), keeping checkpoints and
   * their fsync off the deciding thread; 0 leaves them to SQLite inside commits.
   */
  checkpointIntervalMs?: number;
  /** Compile every request type's validation rules in `listen`, before ready (as `govd serve` does). */
  warmUp?: boolean;
  /** How long a correlation_id is remembered (default 7 days). */
  idempotencyRetentionMs?: number;
  /**
   * Follow a central node: its policy is applied here, decisions carry its revision and fail
   * closed past the staleness bound, and local operator writes are refused.
   */
  follow?: Omit<FollowerOptions, "db" | "clock" | "logger">;
}

/** A sidecar not yet listening: `listen` binds both ports, `close` shuts down gracefully. */
export interface Sidecar {
  context: LeverContext;
  grpcServer: grpc.Server;
  httpServer: http.Server;
  bindings: readonly ServiceBinding[];
  /** Shared by /readyz and grpc.health.v1. */
  readiness: Readiness;
  /** What /metrics serves. */
  metrics: SidecarMetrics;
  /** The follower of central, on a connected sidecar. */
  follower?: CentralFollower;
  listen(options?: ListenOptions): Promise<BoundAddresses>;
  close(): Promise<void>;
  /**
   * Prunes old idempotency keys and releases the first batch of expired reservations now, then
   * the rest in batches between calls; resolves with how many were released once none is left.
   * A sweep already under way is joined, never run twice at once.
   */
  sweep(): Promise<number>;
  /** How many request types had their rules first compiled during a call: 0 after warm-up. */
  rulesCompiledOnCall(): number;
  /** Checkpoints the worker has run, and the last one's WAL figures (none when off). */
  checkpoints(): { runs: number; looks: number; startedOver: number; last?: CheckpointReport };
}

/** Builds a sidecar over a migrated store. */
export function createSidecar(options: SidecarOptions): Sidecar {
  assertServable(options.db);
  const logger = options.logger ?? pino({ level: "silent" });
  const maxMessageBytes = options.maxMessageBytes ?? 1024 * 1024;
  const follower = options.follow
    ? new CentralFollower({ ...options.follow, db: options.db, clock: options.clock, logger })
    : undefined;
  // Answers keep a tenth of the message limit for the envelope and the other fields.
  const context = createLeverContext(
    options.db,
    options.clock,
    { maxAnswerBytes: Math.floor(maxMessageBytes * 0.9), ...options.settings },
    follower ? () => follower.source() : undefined,
  );
  const bindings = [
    goLiveService(context),
    riskService(context),
    heimdallService(context),
    regressionService(context),
  ];
  // Read on scrape only, once `pipeline` below exists.
  const metrics = new SidecarMetrics(bindings, () => pipeline.groupCommit.stats);
  const problems = new ProblemLog(logger, options.clock);
  const space = new DiskSpace(options.db, { log: (message) => logger.error(message) });
  const pipeline = new CallPipeline({
    db: options.db,
    clock: options.clock,
    token: new OperatorToken(options.token),
    logger,
    storeFile: options.storeFile,
    observe: (service, rpc, seconds, response, code) =>
      metrics.observe(service, rpc, seconds, response, code),
    space,
    adminRefusal: follower
      ? `this sidecar follows central (${options.follow?.endpoints.map(centralLabel).join(", ")}): make policy, go-live, kill switch and tripwire changes there (govctl --addr <central>); reads still work here`
      : undefined,
    keyRetentionMs: options.idempotencyRetentionMs,
  });
  const readiness = new Readiness();
  if (follower) {
    metrics.scrapeOutbox(() => follower.outbox());
    metrics.scrapeFleetEvidence(() => context.fleetEvidence.received);
    readiness.followPolicy(() => follower.staleBecause());
    follower.on("freshness", () => readiness.policyFreshnessChanged());
  }
  space.on("change", () => readiness.markStoreFull(space.full));
  const ports = createNodePorts(bindings, pipeline, readiness, {
    maxMessageBytes,
    idleTimeoutMs: options.idleTimeoutMs ?? 300_000,
    maxConcurrentStreams: options.maxConcurrentStreams,
    notReadyBecause: () => readiness.notReadyBecause(),
    metrics: metrics.registry,
    allowedHosts: options.httpAllowedHosts,
  });
  const upkeep = new StoreUpkeep({
    context,
    keys: pipeline.keys,
    groupCommit: pipeline.groupCommit,
    clock: options.clock,
    space,
    problems,
    logger,
    retentionMs: options.idempotencyRetentionMs ?? DEFAULT_KEY_RETENTION_MS,
  });
  let checkpointer: WalCheckpointer | undefined;
  const checkpointEvery = options.checkpointIntervalMs ?? 1_000;

  return {
    context,
    grpcServer: ports.grpcServer,
    httpServer: ports.httpServer,
    bindings,
    readiness,
    metrics,
    follower,
    sweep: () => upkeep.sweep(),
    rulesCompiledOnCall: () => pipeline.rulesCompiledOnCall,
    checkpoints: () => ({
      runs: checkpointer?.runs ?? 0,
      looks: checkpointer?.looks ?? 0,
      startedOver: checkpointer?.startedOver ?? 0,
      last: checkpointer?.last,
    }),
    async listen(l: ListenOptions = {}) {
      if (options.warmUp) pipeline.warmUp(bindings);
      const bound = await ports.listen(l, (err) => problems.report("http", err, "HTTP port error"));
      upkeep.start(options.sweepIntervalMs ?? 5_000);
      if (checkpointEvery > 0 && options.db.name !== ":memory:" && !checkpointer) {
        checkpointer = new WalCheckpointer(
          options.db,
          options.db.name,
          checkpointEvery,
          (message) => problems.report("checkpoint", new Error(message), "WAL checkpoint failed"),
        );
      }
      // After every commit: an overgrown WAL is restarted, and the event shipper (of a sidecar
      // that follows central) learns that there may be events to ship.
      const wal = checkpointer;
      if (wal || follower) {
        pipeline.groupCommit.afterCommit = () => {
          wal?.afterCommit();
          follower?.committed();
        };
      }
      readiness.markReady();
      follower?.start(
        context,
        (work) => pipeline.groupCommit.runNow(work),
        () => pipeline.groupCommit.settled(),
      );
      return bound;
    },
    async close() {
      follower?.stop();
      readiness.markClosing();
      // Its timers stop now; a sweep under way ends after its current batch.
      const swept = upkeep.stop();
      space.stop();
      await swept;
      await ports.close();
      // Calls answered while the ports closed may have left a batch to commit.
      pipeline.groupCommit.commit();
      // The risk and KPI tables hold every decision on a clean stop (a start then replays none).
      upkeep.foldAll();
      pipeline.groupCommit.afterCommit = undefined;
      await checkpointer?.stop();
      checkpointer = undefined;
    },
  };
}
