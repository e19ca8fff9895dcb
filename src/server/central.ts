/**
 * The central node: the admin side of the four levers on central's store (SQLite or
 * PostgreSQL), authoritative here, and SyncService, on the gRPC and HTTP ports. Decisions are
 * served by the sidecars.
 */
import type * as http from "node:http";
import type * as grpc from "@grpc/grpc-js";
import { type Logger, pino } from "pino";
import { Gauge, Registry } from "prom-client";
import type { ServiceBinding } from "../levers/service-binding.js";
import type { CentralStore } from "../sync/central/central-store.js";
import { centralGoLiveService } from "../sync/central/golive-admin.js";
import { centralHeimdallService, centralRiskService } from "../sync/central/policy-admin.js";
import { centralRegressionService } from "../sync/central/regression-admin.js";
import { centralSyncService } from "../sync/central/sync-service.js";
import { CallTally } from "./call-tally.js";
import { CentralPipeline, type SidecarIdentity } from "./central-pipeline.js";
import {
  type BoundAddresses,
  CENTRAL_KEEPALIVE_MS,
  createNodePorts,
  type ListenOptions,
} from "./node-ports.js";
import { OperatorToken } from "./operator-token.js";
import { Readiness } from "./standard/health.js";
import {
  type CallWithAuthContext,
  connectPeerIdentity,
  peerIdentity,
  type ServerTls,
} from "./tls-credentials.js";

/** What a central node is made from; the store (opened, migrated, seeded) is passed in. */
export interface CentralOptions {
  store: CentralStore;
  /** The operator token admin writes (and ReportTrip) must present. */
  token: string;
  /** This replica's id in the fleet view (`govd central --replica-id`). */
  replica: string;
  /** Watch heartbeat interval (default 1000 ms). */
  heartbeatMs?: number;
  /**
   * Each gRPC connection is pinged this often and closed when a ping goes unanswered for as
   * long (default CENTRAL_KEEPALIVE_MS): a sidecar behind a frozen link then leaves the fleet
   * view's connected sidecars within twice this, instead of looking heard while writes to it
   * still fit in the socket's buffers.
   */
  keepaliveMs?: number;
  /** How often the fleet evidence on Watch streams is checked for changes (default 1000 ms). */
  evidenceCheckMs?: number;
  logger?: Logger;
  maxMessageBytes?: number;
  httpAllowedHosts?: ReadonlySet<string>;
  idleTimeoutMs?: number;
  /**
   * Calls one gRPC connection may have open at once (default 1000). Each sidecar follows on a
   * connection of its own, so this bounds one sidecar's calls, not how many sidecars watch.
   */
  maxConcurrentStreams?: number;
  /** When given, a sidecar's calls must come from a connection with its identity (mTLS). */
  identify?: SidecarIdentity;
  /**
   * Serve both ports over TLS (`--tls-cert`, `--tls-key`); with `--client-ca` (mTLS) every
   * sidecar call must come from a certificate naming its sidecar_id, unless `identify` is given.
   */
  tls?: ServerTls;
  /** Compile every request type's validation rules in `listen`, before ready. */
  warmUp?: boolean;
}

/** A central node not yet listening: `listen` binds both ports, `close` shuts down. */
export interface Central {
  grpcServer: grpc.Server;
  httpServer: http.Server;
  bindings: readonly ServiceBinding[];
  readiness: Readiness;
  /** What /metrics serves. */
  registry: Registry;
  listen(options?: ListenOptions): Promise<BoundAddresses>;
  /** Ends every Watch stream (sidecars reconnect, to another replica if there is one), closes the ports. */
  close(): Promise<void>;
}

/**
 * The sidecar id of a call's verified client certificate, on either port: a grpc-js call has
 * its auth context, a connect-node call its context values.
 */
function certificateIdentity(transport: object | undefined): string | undefined {
  if (!transport) return undefined;
  if (typeof (transport as Partial<CallWithAuthContext>).getAuthContext === "function") {
    return peerIdentity(transport as CallWithAuthContext);
  }
  return connectPeerIdentity(transport as Parameters<typeof connectPeerIdentity>[0]);
}

/** Builds a central node over an open store. */
export function createCentral(options: CentralOptions): Central {
  const logger = options.logger ?? pino({ level: "silent" });
  const maxMessageBytes = options.maxMessageBytes ?? 4 * 1024 * 1024;
  const maxAnswerBytes = Math.floor(maxMessageBytes * 0.9);
  const heartbeatMs = options.heartbeatMs ?? 1_000;
  const store = options.store;
  const sync = centralSyncService(store, {
    replica: options.replica,
    heartbeatMs,
    evidenceCheckMs: options.evidenceCheckMs ?? 1_000,
    logger,
  });
  const bindings: ServiceBinding[] = [
    centralGoLiveService(store),
    centralRiskService(store, maxAnswerBytes),
    centralHeimdallService(store, maxAnswerBytes),
    centralRegressionService(store, maxAnswerBytes),
    sync,
  ];
  const registry = new Registry();
  const calls = new CallTally(registry, (service) => service.replace(/^governance\.v1\./, ""));
  new Gauge({
    name: "govd_central_revision",
    help: "Central's newest revision",
    registers: [registry],
    async collect() {
      this.set((await store.head()).revision);
    },
  });
  new Gauge({
    name: "govd_central_watch_streams",
    help: "Sidecars with a Watch stream open on this replica",
    registers: [registry],
    collect() {
      this.set(sync.streamsOpen());
    },
  });
  const pipeline = new CentralPipeline({
    store,
    token: new OperatorToken(options.token),
    logger,
    identify: options.identify ?? (options.tls?.mtls ? certificateIdentity : undefined),
    observe: (service, rpc, seconds, response, code) =>
      calls.observe(service, rpc, seconds, response, code),
  });
  const readiness = new Readiness();
  let storeProblem: string | undefined;
  const ports = createNodePorts(bindings, pipeline, readiness, {
    maxMessageBytes,
    idleTimeoutMs: options.idleTimeoutMs ?? 300_000,
    maxConcurrentStreams: options.maxConcurrentStreams,
    keepaliveMs: options.keepaliveMs ?? CENTRAL_KEEPALIVE_MS,
    // Not ready while the store cannot be read (checked at each heartbeat), so a load balancer
    // sends operators and sidecars to a replica that can answer.
    notReadyBecause: () => readiness.notReadyBecause() ?? storeProblem,
    metrics: registry,
    allowedHosts: options.httpAllowedHosts,
    tls: options.tls,
  });
  let stopUpkeep: (() => void) | undefined;
  return {
    grpcServer: ports.grpcServer,
    httpServer: ports.httpServer,
    bindings,
    readiness,
    registry,
    async listen(l: ListenOptions = {}) {
      if (options.warmUp) pipeline.warmUp(bindings);
      const bound = await ports.listen(l, (err: Error) => logger.error({ err }, "HTTP port error"));
      stopUpkeep ??= sync.upkeep((problem) => {
        if (problem !== storeProblem) {
          if (problem) logger.error(`not ready: ${problem}`);
          else if (storeProblem) logger.info("central's store answers again: ready");
        }
        storeProblem = problem;
      });
      readiness.markReady();
      return { grpcPort: bound.grpcPort, httpPort: bound.httpPort };
    },
    async close() {
      readiness.markClosing();
      stopUpkeep?.();
      stopUpkeep = undefined;
      await ports.close();
      // Acks handed over by streams the shutdown ended, still waiting for their batch.
      await sync.drainAcks();
    },
  };
}
