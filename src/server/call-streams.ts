/**
 * Client-streaming methods on the gRPC port, served as a run of unary calls (SyncService
 * AckStream: each message is one Ack). Every message goes through the pipeline exactly as the
 * unary call would (validation, operator token, sidecar identity, handler, metrics), one at a
 * time in the order sent; what costs a call per message (a new HTTP/2 stream, its headers and
 * trailers, grpc-js's call objects) is paid once per stream. The first refused message ends
 * the stream with that refusal, shutdown with UNAVAILABLE; when the client ends it, the answer
 * counts the calls that succeeded.
 */
import {
  create,
  type DescMethodClientStreaming,
  type DescMethodUnary,
  fromBinary,
  type Message,
} from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type * as grpc from "@grpc/grpc-js";
import type { CallStream, ServiceBinding } from "../levers/service-binding.js";
import type { CallRunner } from "./call-runner.js";
import { decodeMessage } from "./message-decoding.js";
import { encodeMessage } from "./message-encoding.js";
import type { OpenStreams } from "./server-streams.js";

const identity = (b: Buffer): Buffer => b;

/** The grpc-js method definition of a client-streaming method (bytes in, message out). */
export function grpcCallStreamDefinition(
  path: string,
  method: DescMethodClientStreaming,
): grpc.MethodDefinition<Buffer, Message> {
  return {
    path,
    requestStream: true,
    responseStream: false,
    originalName: method.name,
    requestSerialize: identity,
    requestDeserialize: identity,
    responseSerialize: (m: Message) => encodeMessage(method.output, m),
    responseDeserialize: (b: Buffer) => fromBinary(method.output, b),
  };
}

/** The grpc-js handler of a client-streaming method served as a run of unary calls. */
export function grpcCallStreamHandler(
  binding: ServiceBinding,
  method: DescMethodClientStreaming,
  each: CallStream,
  pipeline: CallRunner,
  streams: OpenStreams,
): grpc.handleClientStreamingCall<Buffer, Message> {
  const unary = binding.service.methods.find((m) => m.localName === each.unary);
  if (unary?.methodKind !== "unary") {
    throw new Error(
      `${method.name}: ${each.unary} is not a unary method of ${binding.service.typeName}`,
    );
  }
  const call1 = unary as DescMethodUnary;
  return (call, callback) => {
    const authorization = call.metadata.get("authorization")[0]?.toString();
    let recorded = 0;
    let done = false;
    let queue: Promise<void> = Promise.resolve();
    const finish = (err?: ConnectError) => {
      if (done) return;
      done = true;
      untrack?.();
      if (err) callback({ code: err.code as number, details: err.rawMessage });
      else callback(null, create(method.output, each.answer(recorded)));
    };
    // Shutdown ends it UNAVAILABLE, whatever is still queued: the client sends its newest
    // message again (to this node once it is back, or to another).
    const untrack = streams.add(() =>
      finish(new ConnectError("the server is shutting down; send again", Code.Unavailable)),
    );
    if (!untrack) {
      finish(new ConnectError("the server is shutting down", Code.Unavailable));
      return;
    }
    call.on("data", (bytes: Buffer) => {
      if (done) return;
      let inner: Message | undefined;
      try {
        inner = each.request(decodeMessage(method.input, bytes));
      } catch {
        inner = undefined;
      }
      if (!inner) {
        finish(
          new ConnectError(
            `each ${method.input.typeName} must be a valid message holding a ${call1.input.typeName}`,
            Code.InvalidArgument,
          ),
        );
        return;
      }
      const request = inner;
      queue = queue.then(async () => {
        if (done) return;
        try {
          await pipeline.submit(binding, call1, request, authorization, call);
          recorded++;
        } catch (err) {
          finish(ConnectError.from(err));
        }
      });
    });
    call.on("end", () => void queue.then(() => finish()));
    call.on("cancelled", () => {
      done = true;
      untrack?.();
    });
    call.on("error", () => {
      done = true;
      untrack?.();
    });
  };
}
