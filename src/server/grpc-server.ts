/** The gRPC port: grpc-js serving every bound service, framed by grpc-js, decoded by protobuf-es. */
import type {
  DescMethodClientStreaming,
  DescMethodServerStreaming,
  DescMethodUnary,
  Message,
} from "@bufbuild/protobuf";
import { ConnectError } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import type { ServiceBinding } from "../levers/service-binding.js";
import type { CallResult } from "./call-pipeline.js";
import type { CallRunner } from "./call-runner.js";
import { grpcCallStreamDefinition, grpcCallStreamHandler } from "./call-streams.js";
import { decodeMessage } from "./message-decoding.js";
import { encodeMessage } from "./message-encoding.js";
import { grpcStreamDefinition, grpcStreamHandler, type OpenStreams } from "./server-streams.js";
// protobuf-es encodes strings through Node's Buffer pool from here on (see wire-text.ts).
import "./wire-text.js";

/** Options of the gRPC port. */
export interface GrpcServerOptions {
  /** Larger requests are refused with RESOURCE_EXHAUSTED. */
  maxMessageBytes: number;
  /** A connection without a call for this long is closed (GOAWAY); clients reconnect. */
  idleTimeoutMs: number;
  /**
   * Calls (HTTP/2 streams) one connection may have open at once, sent to the client as
   * SETTINGS_MAX_CONCURRENT_STREAMS: its further calls wait in the client until one ends.
   * Default DEFAULT_MAX_CONCURRENT_STREAMS.
   */
  maxConcurrentStreams?: number;
  /** Where its server-streaming calls are tracked, to be ended on shutdown. */
  streams: OpenStreams;
  /**
   * When given, every connection is pinged this often and closed when a ping goes unanswered
   * for as long: a frozen link sends no reset, and its streams would otherwise look alive.
   */
  keepaliveMs?: number;
}

/**
 * Calls one gRPC connection may have open at once unless told otherwise (`--max-concurrent-streams`).
 * Without a bound grpc-js accepts every stream a client opens, and a flood of 20,000 calls on
 * one channel held about 5 KB of heap each until the 96 MB heap ran out; 1,000 of them hold
 * about 5 MB. Not lower: grpc-js puts every client of one address in a process on one
 * connection, so an engine holding many WatchGoLive streams (or a test running many followers
 * in one process) would otherwise see its other calls wait for a place that never frees.
 */
export const DEFAULT_MAX_CONCURRENT_STREAMS = 1_000;

/** The largest value SETTINGS_MAX_CONCURRENT_STREAMS can carry. */
export const MAX_STREAM_LIMIT = 2 ** 32 - 1;

const identity = (b: Buffer): Buffer => b;

/** The answer encoded. */
function encoded(method: DescMethodUnary, message: Message): Buffer {
  return encodeMessage(method.output, message);
}

/**
 * A grpc-js server (not yet listening) with every binding's unary and server-streaming methods,
 * and the client-streaming ones it serves as runs of unary calls (see call-streams.ts).
 */
export function createGrpcServer(
  bindings: readonly ServiceBinding[],
  pipeline: CallRunner,
  options: GrpcServerOptions,
): grpc.Server {
  const streams = options.maxConcurrentStreams ?? DEFAULT_MAX_CONCURRENT_STREAMS;
  if (!Number.isInteger(streams) || streams < 1 || streams > MAX_STREAM_LIMIT) {
    throw new RangeError(
      `max concurrent streams must be a whole number from 1 to ${MAX_STREAM_LIMIT}, not ${streams}`,
    );
  }
  const server = new grpc.Server({
    "grpc.max_receive_message_length": options.maxMessageBytes,
    "grpc.max_send_message_length": options.maxMessageBytes,
    "grpc.max_connection_idle_ms": options.idleTimeoutMs,
    // No channelz service is served, so its per-call tracking (a Date, a tracker object and four
    // closures per call) had no reader: about 5 KB of the 27 KB a CheckGoLive allocated.
    "grpc.enable_channelz": 0,
    // Overload is pushed back to the client through HTTP/2 (its calls queue there) instead of
    // piling up here: the server holds at most this many calls per connection.
    "grpc.max_concurrent_streams": streams,
    ...(options.keepaliveMs
      ? {
          "grpc.keepalive_time_ms": options.keepaliveMs,
          "grpc.keepalive_timeout_ms": options.keepaliveMs,
        }
      : {}),
  });
  for (const binding of bindings) {
    const definition: Record<string, grpc.MethodDefinition<Buffer, Message | Buffer>> = {};
    const implementation: grpc.UntypedServiceImplementation = {};
    for (const m of binding.service.methods) {
      if (m.methodKind === "server_streaming") {
        const path = `/${binding.service.typeName}/${m.name}`;
        definition[m.localName] = grpcStreamDefinition(
          path,
          m as DescMethodServerStreaming,
        ) as never;
        implementation[m.localName] = grpcStreamHandler(
          binding,
          m as DescMethodServerStreaming,
          pipeline,
          options.streams,
        );
        continue;
      }
      const each = binding.callStreams?.[m.localName];
      if (m.methodKind === "client_streaming" && each) {
        const path = `/${binding.service.typeName}/${m.name}`;
        const streaming = m as DescMethodClientStreaming;
        definition[m.localName] = grpcCallStreamDefinition(path, streaming) as never;
        implementation[m.localName] = grpcCallStreamHandler(
          binding,
          streaming,
          each,
          pipeline,
          options.streams,
        );
        continue;
      }
      if (m.methodKind !== "unary") continue;
      const method = m as DescMethodUnary;
      definition[method.localName] = {
        path: `/${binding.service.typeName}/${method.name}`,
        requestStream: false,
        responseStream: false,
        originalName: method.name,
        requestSerialize: identity,
        requestDeserialize: identity,
        responseSerialize: (m: Message | Buffer) => (Buffer.isBuffer(m) ? m : encoded(method, m)),
        responseDeserialize: identity,
      };
      const decoders = binding.decoders ?? {};
      const decode = Object.hasOwn(decoders, method.localName)
        ? (decoders[method.localName] as (b: Uint8Array) => Message)
        : (b: Uint8Array) => decodeMessage(method.input, b);
      const handle: grpc.handleUnaryCall<Buffer, Message | Buffer> = (call, callback) => {
        let request: Message;
        try {
          request = decode(call.request);
        } catch {
          callback({
            code: grpc.status.INVALID_ARGUMENT,
            details: `request body is not a valid ${method.input.typeName} message`,
          });
          return;
        }
        const respond = (result: CallResult) => callback(null, result.binary ?? result.message);
        const fail = (err: unknown) => {
          const e = ConnectError.from(err);
          callback({ code: e.code as number, details: e.rawMessage });
        };
        const authorization = call.metadata.get("authorization")[0];
        try {
          const answer = pipeline.submit(binding, method, request, authorization?.toString(), call);
          if (answer instanceof Promise) answer.then(respond, fail);
          else respond(answer);
        } catch (err) {
          fail(err);
        }
      };
      implementation[method.localName] = handle;
    }
    server.addService(definition, implementation);
  }
  return server;
}

/**
 * Binds the server to `address` (host:port or unix:path) and resolves with the bound port;
 * plaintext unless `credentials` (TLS, see tls-credentials.ts) are given.
 */
export function bindGrpc(
  server: grpc.Server,
  address: string,
  credentials: grpc.ServerCredentials = grpc.ServerCredentials.createInsecure(),
): Promise<number> {
  return new Promise((resolve, reject) => {
    server.bindAsync(address, credentials, (err, port) => (err ? reject(err) : resolve(port)));
  });
}
