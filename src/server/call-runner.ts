/**
 * What the ports need of a pipeline: answer a unary call, accept a server-streaming one. The
 * sidecar's CallPipeline (synchronous store, group commit) and central's CentralPipeline
 * (asynchronous store) both are one, so the gRPC and HTTP adapters serve either.
 */
import type {
  DescMessage,
  DescMethodServerStreaming,
  DescMethodUnary,
  Message,
  MessageInitShape,
} from "@bufbuild/protobuf";
import type { ServiceBinding, StreamSink } from "../levers/service-binding.js";
import type { CallResult } from "./call-pipeline.js";

/**
 * The call as the port holds it (grpc-js's call object, or connect-node's HandlerContext),
 * passed through untouched for checks that need the connection (a peer certificate).
 */
export type CallTransport = object;

/** Runs calls for a port. */
export interface CallRunner {
  /** Answers a unary call: a value, or a promise when the store is asynchronous or batched. */
  submit(
    binding: ServiceBinding,
    method: DescMethodUnary,
    request: Message,
    authorization: string | undefined,
    transport?: CallTransport,
  ): CallResult | Promise<CallResult>;
  /** Accepts a server-streaming call; returns the start of its handler. Throws ConnectError. */
  openStream(
    binding: ServiceBinding,
    method: DescMethodServerStreaming,
    request: Message,
    authorization: string | undefined,
    transport?: CallTransport,
  ): (sink: StreamSink<MessageInitShape<DescMessage>>) => () => void;
}
