/** `govd serve`: a standalone sidecar on its own SQLite file, until SIGTERM or SIGINT. */
import { mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { getHeapStatistics } from "node:v8";
import { pino } from "pino";
import { systemClock } from "../clock.js";
import { parseAllowedHosts } from "../server/allowed-hosts.js";
import { loadOrCreateToken, tokenPath } from "../server/operator-token.js";
import { createSidecar } from "../server/sidecar.js";
import { migrateTo, openDatabase } from "../store/database.js";
import { assertPlaintextAllowed } from "../sync/tls/plaintext-rule.js";

/** Everything `govd serve` can be told, from flags or GOVD_* environment variables. */
export interface ServeOptions {
  dataDir: string;
  grpcHost: string;
  grpcPort: number;
  grpcSocket?: string;
  httpHost: string;
  httpPort: number;
  allowRemote: boolean;
  maxMessageBytes: number;
  reservationTtlSeconds: number;
  logLevel: string;
  httpAllowedHosts?: string;
  idleTimeoutSeconds: number;
  allowReadableToken: boolean;
}

/** The store file inside a data dir. */
export function storeFile(dataDir: string): string {
  return join(resolve(dataDir), "sidecar.db");
}

/** Starts the sidecar and resolves once it has shut down cleanly after a signal. */
export async function serve(o: ServeOptions): Promise<void> {
  // The sidecar's own ports are plaintext: loopback only, unless --allow-remote.
  for (const host of [o.grpcHost, o.httpHost]) {
    assertPlaintextAllowed(host, { role: "listen", allowRemote: o.allowRemote });
  }
  if (o.idleTimeoutSeconds < 1) throw new Error("--idle-timeout-seconds must be at least 1");
  const logger = pino({ level: o.logLevel });
  mkdirSync(o.dataDir, { recursive: true, mode: 0o700 });
  const file = storeFile(o.dataDir);
  const db = openDatabase(file);
  const applied = migrateTo(db);
  for (const m of applied) logger.info({ version: m.version }, `migrated store: ${m.name}`);
  const token = loadOrCreateToken(o.dataDir, process.env.GOVD_ADMIN_TOKEN, {
    allowReadable: o.allowReadableToken,
    warn: (message) => logger.warn(message),
  });
  const sidecar = createSidecar({
    db,
    clock: systemClock,
    token,
    storeFile: file,
    logger,
    maxMessageBytes: o.maxMessageBytes,
    httpAllowedHosts: parseAllowedHosts(o.httpAllowedHosts),
    idleTimeoutMs: o.idleTimeoutSeconds * 1000,
    warmUp: true,
    settings: { reservationTtlMs: o.reservationTtlSeconds * 1000 },
  });
  const bound = await sidecar.listen({
    grpcHost: o.grpcHost,
    grpcPort: o.grpcPort,
    grpcSocket: o.grpcSocket,
    httpHost: o.httpHost,
    httpPort: o.httpPort,
  });
  logger.info(
    {
      grpc: `${o.grpcHost}:${bound.grpcPort}`,
      grpcSocket: bound.grpcSocket,
      http: `${o.httpHost}:${bound.httpPort}`,
      store: file,
      tokenFile: process.env.GOVD_ADMIN_TOKEN ? "(from GOVD_ADMIN_TOKEN)" : tokenPath(o.dataDir),
      // The V8 heap bound the launcher set (see the shebang of govd.ts), for capacity planning.
      heapLimitMb: Math.round(getHeapStatistics().heap_size_limit / 2 ** 20),
    },
    "govd sidecar serving",
  );
  await new Promise<void>((done) => {
    const stop = (signal: string) => {
      logger.info({ signal }, "shutting down: finishing in-flight calls");
      sidecar
        .close()
        .catch((err: unknown) => logger.error({ err }, "shutdown failed"))
        .finally(() => {
          db.close();
          logger.info("store closed; bye");
          done();
        });
    };
    process.once("SIGTERM", () => stop("SIGTERM"));
    process.once("SIGINT", () => stop("SIGINT"));
  });
}
