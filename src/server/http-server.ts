/** The HTTP/1.1 port: Connect JSON and gRPC-Web (connect-node), /healthz, /readyz and /metrics. */
import * as http from "node:http";
import * as https from "node:https";
import type { DescMethodServerStreaming, DescMethodUnary, Message } from "@bufbuild/protobuf";
import type { ConnectRouter, HandlerContext } from "@connectrpc/connect";
import type { Registry } from "prom-client";
import type { ServiceBinding } from "../levers/service-binding.js";
import { hostAllowed, hostName } from "./allowed-hosts.js";
import type { CallRunner } from "./call-runner.js";
import { connectListener } from "./connect-adapter.js";
import { connectStreamHandler, type OpenStreams } from "./server-streams.js";
import { peerIdentityValues, type ServerTls } from "./tls-credentials.js";

/** Options of the HTTP port. */
export interface HttpServerOptions {
  maxMessageBytes: number;
  /** Undefined once ready (migrated, listening, store writable); else why not, for /readyz. */
  notReadyBecause: () => string | undefined;
  /** Served as Prometheus text at /metrics. */
  metrics?: Registry;
  /** Host names served besides IP literals and localhost (see allowed-hosts.ts). */
  allowedHosts?: ReadonlySet<string>;
  /** A keep-alive connection without a request for this long is closed (at most 5 s, Node's default). */
  idleTimeoutMs: number;
  /** Where its server-streaming calls are tracked, to be ended on shutdown. */
  streams: OpenStreams;
  /** Serve HTTPS from these files (central's `--tls-cert`), following their reloads. */
  tls?: ServerTls;
}

function routesFor(
  bindings: readonly ServiceBinding[],
  pipeline: CallRunner,
  streams: OpenStreams,
) {
  return (router: ConnectRouter) => {
    for (const binding of bindings) {
      const impl: Record<string, (req: Message, ctx: HandlerContext) => unknown> = {};
      for (const method of binding.service.methods) {
        if (method.methodKind === "server_streaming") {
          impl[method.localName] = connectStreamHandler(
            binding,
            method as DescMethodServerStreaming,
            pipeline,
            streams,
          );
          continue;
        }
        if (method.methodKind !== "unary") continue;
        impl[method.localName] = async (req, ctx) =>
          (
            await pipeline.submit(
              binding,
              method as DescMethodUnary,
              req,
              ctx.requestHeader.get("authorization") ?? undefined,
              ctx,
            )
          ).message;
      }
      router.service(binding.service, impl as never);
    }
  };
}

function probe(res: http.ServerResponse, ok: boolean, body: string): void {
  res.writeHead(ok ? 200 : 503, { "content-type": "text/plain; charset=utf-8" });
  res.end(`${body}\n`);
}

/**
 * An HTTP/1.1 server (not yet listening) for Connect, gRPC-Web and the health probes; HTTPS
 * with `options.tls`, where handlers find the peer's sidecar id with `connectPeerIdentity(ctx)`.
 */
export function createHttpServer(
  bindings: readonly ServiceBinding[],
  pipeline: CallRunner,
  options: HttpServerOptions,
): http.Server {
  const handler = connectListener({
    routes: routesFor(bindings, pipeline, options.streams),
    connect: true,
    grpcWeb: true,
    grpc: false,
    readMaxBytes: options.maxMessageBytes,
    jsonOptions: { alwaysEmitImplicit: true },
    contextValues: options.tls ? peerIdentityValues : undefined,
  });
  const allowedHosts = options.allowedHosts ?? new Set<string>();
  const listener: http.RequestListener = (req, res) => {
    if (!hostAllowed(req.headers.host, allowedHosts)) {
      res.writeHead(403, { "content-type": "text/plain; charset=utf-8" });
      res.end(
        `host ${hostName(req.headers.host ?? "")} is not served here: call the sidecar by IP address or localhost, or start it with --http-allowed-hosts ${hostName(req.headers.host ?? "")}\n`,
      );
      return;
    }
    const path = (req.url ?? "").split("?")[0];
    if (path === "/healthz") return probe(res, true, "ok");
    if (path === "/readyz") {
      const why = options.notReadyBecause();
      return probe(res, why === undefined, why === undefined ? "ready" : `not ready: ${why}`);
    }
    if (path === "/metrics" && options.metrics && req.method === "GET") {
      const registry = options.metrics;
      registry.metrics().then(
        (text) => {
          res.writeHead(200, { "content-type": registry.contentType });
          res.end(text);
        },
        (err: unknown) => probe(res, false, `metrics failed: ${(err as Error).message}`),
      );
      return;
    }
    handler(req, res);
  };
  const tls = options.tls;
  const server = tls
    ? https.createServer(tls.httpsOptions(), listener)
    : http.createServer(listener);
  if (tls) {
    const stop = tls.follow(server as https.Server);
    server.once("close", stop);
  }
  server.keepAliveTimeout = Math.min(options.idleTimeoutMs, 5_000);
  return server;
}
