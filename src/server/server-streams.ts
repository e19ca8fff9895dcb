/**
 * Server-streaming calls on both ports (WatchGoLive): the pipeline accepts the call, the
 * lever's handler sends messages into a sink, and the port writes them to the caller. Every
 * open stream is tracked so that shutdown can end it: grpc-js's tryShutdown and Node's
 * http.Server.close otherwise wait for an endless stream forever.
 */
import {
  create,
  type DescMessage,
  type DescMethodServerStreaming,
  fromBinary,
  type Message,
  type MessageInitShape,
} from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import type * as grpc from "@grpc/grpc-js";
import type { ServiceBinding } from "../levers/service-binding.js";
import type { CallRunner } from "./call-runner.js";
import { encodeMessage } from "./message-encoding.js";

/** The streams open on a server, so that shutdown can end them all. */
export class OpenStreams {
  private readonly ends = new Set<() => void>();
  private closing = false;

  /**
   * Tracks a stream until the returned function is called; undefined once shutdown has begun
   * (the caller ends the stream at once).
   */
  add(end: () => void): (() => void) | undefined {
    if (this.closing) return undefined;
    this.ends.add(end);
    return () => this.ends.delete(end);
  }

  /** Ends every open stream and every stream opened from now on. */
  endAll(): void {
    this.closing = true;
    for (const end of [...this.ends]) end();
    this.ends.clear();
  }

  /** How many streams are open. */
  get size(): number {
    return this.ends.size;
  }
}

/** The grpc-js method definition of a server-streaming method (binary in, message out). */
export function grpcStreamDefinition(
  path: string,
  method: DescMethodServerStreaming,
): grpc.MethodDefinition<Buffer, Message> {
  return {
    path,
    requestStream: false,
    responseStream: true,
    originalName: method.name,
    requestSerialize: (b: Buffer) => b,
    requestDeserialize: (b: Buffer) => b,
    // A message already encoded (one change sent to every stream) goes out as it is.
    responseSerialize: (m: Message | Buffer) =>
      Buffer.isBuffer(m) ? m : encodeMessage(method.output, m),
    responseDeserialize: (b: Buffer) => fromBinary(method.output, b),
  };
}

/** The grpc-js handler of a server-streaming method, through the pipeline. */
export function grpcStreamHandler(
  binding: ServiceBinding,
  method: DescMethodServerStreaming,
  pipeline: CallRunner,
  streams: OpenStreams,
): grpc.handleServerStreamingCall<Buffer, Message> {
  // Each message encoded once, however many streams it goes to (a handler that sends one
  // object to every stream, as central's Watch does with a change, pays for one encoding).
  const encoded = new WeakMap<object, Buffer>();
  const encode = (m: MessageInitShape<DescMessage>): Buffer => {
    let bytes = encoded.get(m);
    if (!bytes) {
      bytes = encodeMessage(method.output, create(method.output, m));
      encoded.set(m, bytes);
    }
    return bytes;
  };
  return (call) => {
    let start: ReturnType<CallRunner["openStream"]>;
    try {
      const request = fromBinary(method.input, call.request);
      const authorization = call.metadata.get("authorization")[0]?.toString();
      start = pipeline.openStream(binding, method, request, authorization, call);
    } catch (err) {
      const e =
        err instanceof ConnectError
          ? err
          : new ConnectError(
              `request body is not a valid ${method.input.typeName} message`,
              Code.InvalidArgument,
            );
      call.emit("error", { code: e.code as number, details: e.rawMessage });
      return;
    }
    let stop = (): void => {};
    let done = false;
    const finish = (endCall: boolean) => {
      if (done) return;
      done = true;
      stop();
      untrack?.();
      if (endCall) call.end();
    };
    const untrack = streams.add(() => finish(true));
    if (!untrack) {
      call.end();
      return;
    }
    call.on("cancelled", () => finish(false));
    call.on("error", () => finish(false));
    stop = start({ send: (m) => call.write(encode(m) as unknown as Message) });
  };
}

/**
 * The connect-node handler of a server-streaming method: an async generator yielding what the
 * lever's handler sends, until the caller goes away or the server shuts down.
 */
export function connectStreamHandler(
  binding: ServiceBinding,
  method: DescMethodServerStreaming,
  pipeline: CallRunner,
  streams: OpenStreams,
): (request: Message, ctx: HandlerContext) => AsyncIterable<MessageInitShape<DescMessage>> {
  return async function* (request, ctx) {
    const start = pipeline.openStream(
      binding,
      method,
      request,
      ctx.requestHeader.get("authorization") ?? undefined,
      ctx,
    );
    const queue: MessageInitShape<DescMessage>[] = [];
    let wake: (() => void) | undefined;
    let ended = false;
    const end = () => {
      ended = true;
      wake?.();
    };
    const untrack = streams.add(end);
    if (!untrack) return;
    ctx.signal.addEventListener("abort", end);
    const stop = start({
      send: (m) => {
        queue.push(m);
        wake?.();
      },
    });
    try {
      while (!ended || queue.length > 0) {
        const next = queue.shift();
        if (next !== undefined) {
          yield next;
          continue;
        }
        if (ended) break;
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
        wake = undefined;
      }
    } finally {
      stop();
      untrack();
      ctx.signal.removeEventListener("abort", end);
    }
  };
}
