/**
 * The flags every serving govd command shares (`govd serve`, `govd central`): where the two
 * ports listen, the loopback guard, the token file check, the HTTP host allowlist, idle
 * connections, the calls a gRPC connection may have open, the message limit and the log
 * level, each with its GOVD_* variable.
 */
import { type Command, InvalidArgumentError, Option } from "commander";
import { parseAllowedHosts } from "../server/allowed-hosts.js";
import { DEFAULT_MAX_CONCURRENT_STREAMS, MAX_STREAM_LIMIT } from "../server/grpc-server.js";
import { integer, switchOption } from "./flag-values.js";

/** The defaults that differ between a sidecar and central. */
export interface NodeFlagDefaults {
  grpcPort: number;
  httpPort: number;
  maxMessageBytes: number;
}

/** A stream limit: a whole number from 1 to 2^32-1 (what HTTP/2's setting can carry). */
function streamLimit(value: string): number {
  const n = integer(value);
  if (n < 1 || n > MAX_STREAM_LIMIT) {
    throw new InvalidArgumentError(`must be a whole number from 1 to ${MAX_STREAM_LIMIT}`);
  }
  return n;
}

/** The shared flags, in the order `--help` lists them. */
export function nodeFlags(d: NodeFlagDefaults): Option[] {
  return [
    new Option("--grpc-host <host>", "gRPC listen host").env("GOVD_GRPC_HOST").default("127.0.0.1"),
    new Option("--grpc-port <port>", "gRPC listen port")
      .env("GOVD_GRPC_PORT")
      .default(d.grpcPort)
      .argParser(integer),
    new Option("--http-host <host>", "HTTP/1.1 listen host (Connect, gRPC-Web, probes)")
      .env("GOVD_HTTP_HOST")
      .default("127.0.0.1"),
    new Option("--http-port <port>", "HTTP/1.1 listen port")
      .env("GOVD_HTTP_PORT")
      .default(d.httpPort)
      .argParser(integer),
    switchOption(
      "--allow-remote",
      "allow listening on non-loopback addresses",
      "GOVD_ALLOW_REMOTE",
    ),
    switchOption(
      "--allow-readable-token",
      "serve even though <data-dir>/admin.token can be read by other users (logged as a warning)",
      "GOVD_ALLOW_READABLE_TOKEN",
    ),
    new Option(
      "--http-allowed-hosts <names>",
      "host names the HTTP port answers besides IP addresses and localhost, comma-separated (DNS rebinding guard)",
    ).env("GOVD_HTTP_ALLOWED_HOSTS"),
    new Option("--idle-timeout-seconds <n>", "close gRPC connections idle this long")
      .env("GOVD_IDLE_TIMEOUT_SECONDS")
      .default(300)
      .argParser(integer),
    new Option(
      "--max-concurrent-streams <n>",
      "calls one gRPC connection may have open at once (HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS); a client's further calls wait in the client",
    )
      .env("GOVD_MAX_CONCURRENT_STREAMS")
      .default(DEFAULT_MAX_CONCURRENT_STREAMS)
      .argParser(streamLimit),
    new Option("--max-message-bytes <n>", "largest request and answer")
      .env("GOVD_MAX_MESSAGE_BYTES")
      .default(d.maxMessageBytes)
      .argParser(integer),
    new Option("--log-level <level>", "pino log level")
      .env("GOVD_LOG_LEVEL")
      .default("info")
      .choices(["fatal", "error", "warn", "info", "debug", "trace", "silent"]),
  ];
}

/** Adds the shared flags to `command` and returns it (for chaining). */
export function withNodeFlags(command: Command, d: NodeFlagDefaults): Command {
  for (const option of nodeFlags(d)) command.addOption(option);
  return command;
}

/** The shared flags as a node's port settings, as `createSidecar` and `createCentral` take them. */
export function portSettings(o: {
  maxMessageBytes: number;
  httpAllowedHosts?: string;
  idleTimeoutSeconds: number;
  maxConcurrentStreams: number;
}) {
  return {
    maxMessageBytes: o.maxMessageBytes,
    httpAllowedHosts: parseAllowedHosts(o.httpAllowedHosts),
    idleTimeoutMs: o.idleTimeoutSeconds * 1000,
    maxConcurrentStreams: o.maxConcurrentStreams,
    // Request rules compiled at start, not on the first call of each method.
    warmUp: true,
  };
}
