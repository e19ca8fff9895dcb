/**
 * The two ports every govd node serves (a sidecar and central alike): gRPC through grpc-js with
 * health and reflection, and HTTP/1.1 through connect-node with the probes and /metrics, over
 * one set of bindings and one pipeline. Streams end when shutdown begins, so the ports close.
 */
import type * as http from "node:http";
import type { AddressInfo } from "node:net";
import type * as grpc from "@grpc/grpc-js";
import type { Registry } from "prom-client";
import type { ServiceBinding } from "../levers/service-binding.js";
import type { CallRunner } from "./call-runner.js";
import { bindGrpc, createGrpcServer } from "./grpc-server.js";
import { createHttpServer } from "./http-server.js";
import { OpenStreams } from "./server-streams.js";
import { addHealth, type Readiness } from "./standard/health.js";
import { addReflection } from "./standard/reflection.js";
import type { ServerTls } from "./tls-credentials.js";

/** How often central pings each connection unless told otherwise (`govd central --keepalive-ms`). */
export const CENTRAL_KEEPALIVE_MS = 10_000;

/** How the ports are set up. */
export interface PortOptions {
  maxMessageBytes: number;
  /** gRPC connections idle this long are closed; HTTP keep-alive 5 s or this if shorter. */
  idleTimeoutMs: number;
  /** Calls one gRPC connection may have open at once (see GrpcServerOptions). */
  maxConcurrentStreams?: number;
  /** gRPC connections pinged this often, closed when a ping goes unanswered (see GrpcServerOptions). */
  keepaliveMs?: number;
  /** Why the node is not ready (for /readyz); undefined when it is. */
  notReadyBecause: () => string | undefined;
  metrics: Registry;
  allowedHosts?: ReadonlySet<string>;
  /** Both ports over TLS (central's `--tls-cert`). */
  tls?: ServerTls;
}

/** Where to listen; port 0 picks a free port. */
export interface ListenOptions {
  grpcHost?: string;
  grpcPort?: number;
  grpcSocket?: string;
  httpHost?: string;
  httpPort?: number;
}

/** The addresses actually bound. */
export interface BoundAddresses {
  grpcPort: number;
  httpPort: number;
  grpcSocket?: string;
}

/** Both ports of a node, not yet listening. */
export interface NodePorts {
  grpcServer: grpc.Server;
  httpServer: http.Server;
  /** Binds both ports; an error of the listening HTTP port later goes to `onHttpError`. */
  listen(l: ListenOptions, onHttpError: (err: Error) => void): Promise<BoundAddresses>;
  /** Lets open calls finish and closes both ports (call after `readiness.markClosing()`). */
  close(): Promise<void>;
}

/** Builds both ports over `bindings`, answered by `pipeline`, healthy while `readiness` says so. */
export function createNodePorts(
  bindings: readonly ServiceBinding[],
  pipeline: CallRunner,
  readiness: Readiness,
  o: PortOptions,
): NodePorts {
  // Server streams on both ports end when shutdown begins, or the ports never close.
  const streams = new OpenStreams();
  readiness.once("closing", () => streams.endAll());
  const grpcServer = createGrpcServer(bindings, pipeline, {
    maxMessageBytes: o.maxMessageBytes,
    idleTimeoutMs: o.idleTimeoutMs,
    maxConcurrentStreams: o.maxConcurrentStreams,
    keepaliveMs: o.keepaliveMs,
    streams,
  });
  const services = bindings.map((b) => b.service);
  const health = addHealth(
    grpcServer,
    readiness,
    services.map((s) => s.typeName),
  );
  const endReflection = addReflection(grpcServer, [...services, health]);
  readiness.once("closing", endReflection);
  const httpServer = createHttpServer(bindings, pipeline, {
    maxMessageBytes: o.maxMessageBytes,
    notReadyBecause: o.notReadyBecause,
    metrics: o.metrics,
    allowedHosts: o.allowedHosts,
    idleTimeoutMs: o.idleTimeoutMs,
    streams,
    tls: o.tls,
  });
  return {
    grpcServer,
    httpServer,
    async listen(l, onHttpError) {
      const grpcPort = await bindGrpc(
        grpcServer,
        `${l.grpcHost ?? "127.0.0.1"}:${l.grpcPort ?? 0}`,
        o.tls?.credentials,
      );
      if (l.grpcSocket) await bindGrpc(grpcServer, `unix:${l.grpcSocket}`);
      await new Promise<void>((resolve, reject) => {
        httpServer.once("error", reject);
        httpServer.listen(l.httpPort ?? 0, l.httpHost ?? "127.0.0.1", () => resolve());
      });
      // An error of the listening port (accept failing for want of descriptors) is reported,
      // never left to crash the process.
      httpServer.on("error", onHttpError);
      const httpPort = (httpServer.address() as AddressInfo).port;
      return { grpcPort, httpPort, grpcSocket: l.grpcSocket };
    },
    async close() {
      await Promise.all([
        new Promise<void>((resolve) => grpcServer.tryShutdown(() => resolve())),
        new Promise<void>((resolve) => {
          // A connection whose stream just ended turns idle later: close those as they do.
          const idle = setInterval(() => httpServer.closeIdleConnections(), 20);
          httpServer.close(() => {
            clearInterval(idle);
            resolve();
          });
          httpServer.closeIdleConnections();
        }),
      ]);
    },
  };
}
