/** `govd serve`: a standalone sidecar on its own SQLite file, until SIGTERM or SIGINT. */
import { mkdirSync, readFileSync } from "node:fs";
import { hostname } from "node:os";
import { join, resolve } from "node:path";
import { getHeapStatistics } from "node:v8";
import { pino } from "pino";
import { systemClock } from "../clock.js";
import { loadOrCreateToken, tokenPath } from "../server/operator-token.js";
import { createSidecar } from "../server/sidecar.js";
import { migrateTo, openDatabase } from "../store/database.js";
import { centralLabel } from "../sync/follower/sync-client.js";
import { assertSidecarIdForm, recordTrailOwner, trailOwner } from "../sync/follower/trail-owner.js";
import { MIN_RETAIN_SHIPPED_MS } from "../sync/follower/trail-retention.js";
import { clientCredentials } from "../sync/tls/client-credentials.js";
import { assertPlaintextAllowed } from "../sync/tls/plaintext-rule.js";
import { servingUntilSignal } from "./entry-point.js";
import { portSettings } from "./node-flags.js";

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
  maxConcurrentStreams: number;
  allowReadableToken: boolean;
  /** Central's addresses; absent for a standalone sidecar. */
  central?: string[];
  sidecarId?: string;
  engine?: string[];
  staleAfter: number;
  /** Acked events older than this are pruned; undefined keeps them for ever. */
  retainShipped?: number;
  centralTokenFile?: string;
  /** TLS to central: the CA its certificate is checked against, and this sidecar's certificate. */
  centralCa?: string;
  tlsCert?: string;
  tlsKey?: string;
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
  const connected = checkFollowFlags(o);
  const logger = pino({ level: o.logLevel });
  mkdirSync(o.dataDir, { recursive: true, mode: 0o700 });
  const file = storeFile(o.dataDir);
  const db = openDatabase(file);
  const applied = migrateTo(db);
  for (const m of applied) logger.info({ version: m.version }, `migrated store: ${m.name}`);
  let follow: ReturnType<typeof followOptions> | undefined;
  try {
    if (connected) {
      const owner = trailOwner(db, o.sidecarId, hostname(), file);
      follow = followOptions(o, owner.sidecarId);
      recordTrailOwner(db, owner, systemClock.now());
      if (owner.source !== "flag") {
        logger.info(
          { sidecarId: owner.sidecarId },
          owner.source === "store"
            ? "sidecar id: the one this store ships its trail as (--sidecar-id not given)"
            : "sidecar id: the host name, now recorded in the store (later starts keep it)",
        );
      }
    }
  } catch (err) {
    db.close();
    throw err;
  }
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
    ...portSettings(o),
    settings: { reservationTtlMs: o.reservationTtlSeconds * 1000 },
    follow,
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
      // The V8 heap bound the launcher set (bin/govd), for capacity planning.
      heapLimitMb: Math.round(getHeapStatistics().heap_size_limit / 2 ** 20),
      // Calls one gRPC connection may have open; a client queues the rest (overload pushback).
      maxConcurrentStreams: o.maxConcurrentStreams,
      central: follow?.endpoints.map(centralLabel),
      sidecarId: follow?.sidecarId,
    },
    follow ? "govd sidecar serving, following central" : "govd sidecar serving",
  );
  await servingUntilSignal((signal) => {
    logger.info({ signal }, "shutting down: finishing in-flight calls");
    return sidecar
      .close()
      .catch((err: unknown) => logger.error({ err }, "shutdown failed"))
      .finally(() => {
        db.close();
        logger.info("store closed; bye");
      });
  });
}

/**
 * Whether the sidecar follows central (`--central` given); refuses, before anything is created,
 * flags that need `--central` without it and settings out of range.
 */
function checkFollowFlags(o: ServeOptions): boolean {
  if ((o.central ?? []).length === 0) {
    for (const [flag, given] of [
      ["--sidecar-id", o.sidecarId],
      ["--central-token-file", o.centralTokenFile],
      ["--central-ca", o.centralCa],
      ["--tls-cert", o.tlsCert],
      ["--tls-key", o.tlsKey],
      ["--retain-shipped", o.retainShipped],
    ] as const) {
      if (given !== undefined && given !== "") {
        throw new Error(`${flag} needs --central: it only applies to a connected sidecar`);
      }
    }
    return false;
  }
  if (o.sidecarId !== undefined) assertSidecarIdForm(o.sidecarId, "flag");
  if (o.staleAfter < 1_000) throw new Error("--stale-after must be at least 1s");
  if (o.retainShipped !== undefined && o.retainShipped < MIN_RETAIN_SHIPPED_MS) {
    throw new Error(
      "--retain-shipped must be keep or at least 10m: central may take back its last moments after a power cut, and the sidecar must still hold them to ship again",
    );
  }
  return true;
}

/** The follower's settings from `--central` and its companions, for `sidecarId`. */
function followOptions(o: ServeOptions, sidecarId: string) {
  const addresses = o.central ?? [];
  // Each address is checked (plaintext only to loopback unless --allow-remote; TLS files read).
  const endpoints = addresses.map((central) =>
    clientCredentials({
      central,
      allowRemote: o.allowRemote,
      sidecarId,
      centralCaFile: o.centralCa,
      certFile: o.tlsCert,
      keyFile: o.tlsKey,
    }),
  );
  const token = o.centralTokenFile
    ? readFileSync(o.centralTokenFile, "utf8").trim()
    : process.env.GOVD_CENTRAL_TOKEN;
  return {
    endpoints,
    sidecarId,
    engines: o.engine ?? [],
    staleAfterMs: o.staleAfter,
    retainShippedMs: o.retainShipped,
    token: token || undefined,
  };
}
