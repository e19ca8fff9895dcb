/** `govd central`: the central node on SQLite or PostgreSQL, until SIGTERM or SIGINT. */

import { mkdirSync } from "node:fs";
import { hostname } from "node:os";
import { join, resolve } from "node:path";
import { getHeapStatistics } from "node:v8";
import { type Command, Option } from "commander";
import { pino } from "pino";
import { systemClock } from "../clock.js";
import { parseAllowedHosts } from "../server/allowed-hosts.js";
import { CENTRAL_KEEPALIVE_MS, createCentral } from "../server/central.js";
import { loadOrCreateToken, tokenPath } from "../server/operator-token.js";
import { listenerTls } from "../server/tls-credentials.js";
import { seedCentral } from "../sync/central/central-entities.js";
import { CentralStore, describeLocation } from "../sync/central/central-store.js";
import { integer } from "./flag-values.js";
import { withNodeFlags } from "./node-flags.js";

/** Everything `govd central` can be told, from flags or GOVD_* environment variables. */
export interface CentralCommandOptions {
  dataDir: string;
  store?: string;
  replicaId?: string;
  heartbeatMs: number;
  keepaliveMs: number;
  evidenceCheckMs: number;
  grpcHost: string;
  grpcPort: number;
  httpHost: string;
  httpPort: number;
  allowRemote: boolean;
  allowReadableToken: boolean;
  httpAllowedHosts?: string;
  idleTimeoutSeconds: number;
  maxConcurrentStreams: number;
  maxMessageBytes: number;
  logLevel: string;
  tlsCert?: string;
  tlsKey?: string;
  clientCa?: string;
}

/** Starts central and resolves once it has shut down after a signal. */
export async function runCentral(o: CentralCommandOptions): Promise<void> {
  const logger = pino({ level: o.logLevel });
  // TLS with --tls-cert/--tls-key (mTLS with --client-ca); plaintext only on loopback.
  const tls = listenerTls({
    hosts: [o.grpcHost, o.httpHost],
    allowRemote: o.allowRemote,
    certFile: o.tlsCert,
    keyFile: o.tlsKey,
    clientCaFile: o.clientCa,
    onReload: (loaded) => logger.info({ certificate: loaded }, "TLS certificates reloaded"),
    onProblem: (message) => logger.error(message),
  });
  if (o.heartbeatMs < 10) throw new Error("--heartbeat-ms must be at least 10");
  // Not shorter: an event loop held up longer than the ping's timeout (a busy central) would
  // close every healthy connection at once.
  if (o.keepaliveMs < 1000) throw new Error("--keepalive-ms must be at least 1000");
  if (o.evidenceCheckMs < 10) throw new Error("--evidence-check-ms must be at least 10");
  mkdirSync(o.dataDir, { recursive: true, mode: 0o700 });
  const location = o.store ?? `sqlite:${join(resolve(o.dataDir), "central.db")}`;
  const replica = o.replicaId ?? `${hostname()}-${process.pid}`;
  const { store, applied } = await CentralStore.open(location, systemClock, {
    log: (message, err) => logger.warn({ err }, message),
  });
  for (const name of applied) logger.info(`migrated central store: ${name}`);
  const seeded = await seedCentral(store);
  if (seeded > 0) logger.info({ revisions: seeded }, "seeded a fresh central store");
  const token = loadOrCreateToken(o.dataDir, process.env.GOVD_ADMIN_TOKEN, {
    allowReadable: o.allowReadableToken,
    warn: (message) => logger.warn(message),
  });
  const central = createCentral({
    store,
    token,
    replica,
    heartbeatMs: o.heartbeatMs,
    keepaliveMs: o.keepaliveMs,
    evidenceCheckMs: o.evidenceCheckMs,
    logger,
    maxMessageBytes: o.maxMessageBytes,
    httpAllowedHosts: parseAllowedHosts(o.httpAllowedHosts),
    idleTimeoutMs: o.idleTimeoutSeconds * 1000,
    maxConcurrentStreams: o.maxConcurrentStreams,
    warmUp: true,
    tls,
  });
  const bound = await central.listen({
    grpcHost: o.grpcHost,
    grpcPort: o.grpcPort,
    httpHost: o.httpHost,
    httpPort: o.httpPort,
  });
  logger.info(
    {
      grpc: `${o.grpcHost}:${bound.grpcPort}`,
      http: `${o.httpHost}:${bound.httpPort}`,
      tls: tls ? (tls.mtls ? "mTLS" : "TLS") : "plaintext",
      maxConcurrentStreams: o.maxConcurrentStreams,
      store: describeLocation(location),
      replica,
      tokenFile: process.env.GOVD_ADMIN_TOKEN ? "(from GOVD_ADMIN_TOKEN)" : tokenPath(o.dataDir),
      // The V8 heap bound the launcher set (bin/govd), for capacity planning.
      heapLimitMb: Math.round(getHeapStatistics().heap_size_limit / 2 ** 20),
    },
    "govd central serving",
  );
  await new Promise<void>((done) => {
    const stop = (signal: string) => {
      logger.info({ signal }, "shutting down: ending Watch streams so sidecars reconnect");
      central
        .close()
        .catch((err: unknown) => logger.error({ err }, "shutdown failed"))
        .then(() => {
          tls?.close();
          return store.close();
        })
        .catch((err: unknown) => logger.error({ err }, "closing the store failed"))
        .finally(() => {
          logger.info("store closed; bye");
          done();
        });
    };
    process.once("SIGTERM", () => stop("SIGTERM"));
    process.once("SIGINT", () => stop("SIGINT"));
  });
}

/** Adds `govd central` to the govd program. */
export function addCentralCommand(program: Command, dataDir: () => Option): void {
  withNodeFlags(
    program
      .command("central")
      .description(
        "serve the central node: policies, go-live and the kill switch for the fleet, and SyncService for sidecars",
      )
      .addOption(dataDir()),
    // A snapshot carries every policy: central's answers may be larger than a sidecar's.
    { grpcPort: 9013, httpPort: 9014, maxMessageBytes: 4194304 },
  )
    .addOption(
      new Option(
        "--store <location>",
        "sqlite:PATH (default <data-dir>/central.db) or postgres://USER@HOST:PORT/DB for replicas",
      ).env("GOVD_STORE"),
    )
    .addOption(
      new Option(
        "--replica-id <id>",
        "this replica's name in the fleet view (default host-pid)",
      ).env("GOVD_REPLICA_ID"),
    )
    .addOption(
      new Option("--heartbeat-ms <ms>", "Watch heartbeat interval when nothing changes")
        .env("GOVD_HEARTBEAT_MS")
        .default(1000)
        .argParser(integer),
    )
    .addOption(
      new Option(
        "--keepalive-ms <ms>",
        "ping each connection this often; one unanswered for as long is closed (a frozen link)",
      )
        .env("GOVD_KEEPALIVE_MS")
        .default(CENTRAL_KEEPALIVE_MS)
        .argParser(integer),
    )
    .addOption(
      new Option(
        "--evidence-check-ms <ms>",
        "how often the fleet's sandbox evidence sent to sidecars is checked for changes",
      )
        .env("GOVD_EVIDENCE_CHECK_MS")
        .default(1000)
        .argParser(integer),
    )
    .addOption(
      new Option(
        "--tls-cert <file>",
        "serve both ports over TLS with this PEM certificate chain (reloaded when the file changes)",
      ).env("GOVD_TLS_CERT"),
    )
    .addOption(new Option("--tls-key <file>", "the private key of --tls-cert").env("GOVD_TLS_KEY"))
    .addOption(
      new Option(
        "--client-ca <file>",
        "mTLS: sidecars must present a certificate this CA bundle issued, naming their id (SAN URI govd-sidecar://ID)",
      ).env("GOVD_CLIENT_CA"),
    )
    .addHelpText(
      "after",
      "\nThe operator token is read from GOVD_ADMIN_TOKEN, else <data-dir>/admin.token (made on first start, mode 0600).\n\nExamples:\n  govd central --data-dir /var/lib/govd-central\n  govd central --store postgres://govd@db:5432/govd --replica-id central-a --allow-remote --grpc-host 0.0.0.0 --http-host 0.0.0.0",
    )
    .action(runCentral);
}
