/**
 * `govd central`: its flags and help. What runs it (central's store, its services, PostgreSQL's
 * driver) is loaded only when the command runs, so a sidecar's process never holds that code
 * (about 10 MB of its resident size).
 */
import { type Command, Option } from "commander";
import { CENTRAL_KEEPALIVE_MS } from "../server/node-ports.js";
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
    .action(async (o: CentralCommandOptions) => {
      const { runCentral } = await import("./central-run.js");
      await runCentral(o);
    });
}
