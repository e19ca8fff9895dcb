/** `govd central`: the central node on SQLite or PostgreSQL, until SIGTERM or SIGINT. */
import { mkdirSync } from "node:fs";
import { hostname } from "node:os";
import { join, resolve } from "node:path";
import { getHeapStatistics } from "node:v8";
import { pino } from "pino";
import { systemClock } from "../clock.js";
import { createCentral } from "../server/central.js";
import { loadOrCreateToken, tokenPath } from "../server/operator-token.js";
import { listenerTls } from "../server/tls-credentials.js";
import { seedCentral } from "../sync/central/central-entities.js";
import { CentralStore, describeLocation } from "../sync/central/central-store.js";
import type { CentralCommandOptions } from "./central.js";
import { servingUntilSignal } from "./entry-point.js";
import { portSettings } from "./node-flags.js";

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
    ...portSettings(o),
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
  await servingUntilSignal((signal) => {
    logger.info({ signal }, "shutting down: ending Watch streams so sidecars reconnect");
    return central
      .close()
      .catch((err: unknown) => logger.error({ err }, "shutdown failed"))
      .then(() => {
        tls?.close();
        return store.close();
      })
      .catch((err: unknown) => logger.error({ err }, "closing the store failed"))
      .finally(() => logger.info("store closed; bye"));
  });
}
