/**
 * A lever's service as the ports serve it: its handlers, plain synchronous functions of the
 * request, and the methods that need the operator token. The levers build these; the server
 * layer runs them, so the types live here and imports run one way (server -> levers).
 */
import type {
  DescMessage,
  DescMethodServerStreaming,
  DescMethodUnary,
  DescService,
  Message,
  MessageInitShape,
  MessageShape,
} from "@bufbuild/protobuf";

/** The names of a service's unary methods. */
type UnaryNames<S extends DescService> = {
  [K in keyof S["method"]]: S["method"][K] extends DescMethodUnary ? K : never;
}[keyof S["method"]];

/** The names of a service's server-streaming methods. */
type StreamNames<S extends DescService> = {
  [K in keyof S["method"]]: S["method"][K] extends DescMethodServerStreaming ? K : never;
}[keyof S["method"]];

/** A lever's handlers for one service: plain synchronous functions of the request. */
export type UnaryHandlers<S extends DescService> = {
  [K in UnaryNames<S>]: S["method"][K] extends DescMethodUnary<infer I, infer O>
    ? (request: MessageShape<I>) => MessageInitShape<O>
    : never;
};

/** Where a server-streaming handler sends its messages; the port writes them to the call. */
export interface StreamSink<M> {
  send(message: M): void;
}

/**
 * A server-streaming handler: sends its first messages at once and the rest as they come, and
 * returns the function that stops it (the port calls it when the caller cancels or the server
 * shuts down, and ends the stream itself).
 */
export type StreamHandlers<S extends DescService> = {
  [K in StreamNames<S>]: S["method"][K] extends DescMethodServerStreaming<infer I, infer O>
    ? (request: MessageShape<I>, sink: StreamSink<MessageInitShape<O>>) => () => void
    : never;
};

/** A service with its handlers and the methods that need the operator token. */
export interface ServiceBinding<S extends DescService = DescService> {
  service: S;
  handlers: UnaryHandlers<S>;
  /** Its server-streaming methods (none for most services). */
  streams: StreamHandlers<S>;
  /** Its client-streaming methods, each message of which is one call of a unary method. */
  callStreams?: Readonly<Record<string, CallStream>>;
  /**
   * Decoders of requests on the gRPC port that replace `fromBinary` where it is the hot path
   * (each must give what `fromBinary` gives, and throw where it throws), by method local name.
   */
  decoders?: Readonly<Record<string, (bytes: Uint8Array) => Message>>;
  admin: ReadonlySet<string>;
}

/**
 * A client-streaming method served as a run of unary calls: each message holds the request of
 * `unary` (a method of the same service), which `request` takes out (undefined when absent);
 * `answer` is the reply once the client ends the stream, from the calls that succeeded.
 */
export interface CallStream {
  unary: string;
  request: (message: Message) => Message | undefined;
  answer: (recorded: number) => MessageInitShape<DescMessage>;
}

/**
 * Binds handlers to a service; `admin` names the methods that need the operator token and
 * `streams` holds the handlers of its server-streaming methods.
 */
export function bindService<S extends DescService>(
  service: S,
  handlers: UnaryHandlers<S>,
  admin: readonly (keyof S["method"] & string)[] = [],
  ...streams: keyof StreamHandlers<S> extends never ? [] : [StreamHandlers<S>]
): ServiceBinding {
  return {
    service,
    handlers,
    streams: streams[0] ?? {},
    admin: new Set(admin),
  } as unknown as ServiceBinding;
}

/**
 * Handlers of a node whose store is asynchronous (central on PostgreSQL): each may return its
 * answer or a promise of it; a write handler also gets `write`, the open write transaction its
 * node's pipeline runs it in (with the idempotency key of the call). Missing methods are not
 * served there.
 */
export type AsyncUnaryHandlers<S extends DescService, W> = {
  [K in UnaryNames<S>]?: S["method"][K] extends DescMethodUnary<infer I, infer O>
    ? (request: MessageShape<I>, write: W) => MessageInitShape<O> | Promise<MessageInitShape<O>>
    : never;
};

/**
 * A service bound to asynchronous handlers. `unserved` names the methods this node does not
 * serve and says why (the pipeline answers UNIMPLEMENTED with that sentence).
 */
export interface AsyncServiceBinding<W = unknown> extends ServiceBinding {
  asyncHandlers: Record<string, (request: unknown, write: W) => unknown>;
  unserved: Readonly<Record<string, string>>;
}

/** Binds asynchronous handlers to a service (see AsyncUnaryHandlers). */
export function bindAsyncService<S extends DescService, W>(
  service: S,
  handlers: AsyncUnaryHandlers<S, W>,
  options: {
    admin?: readonly (keyof S["method"] & string)[];
    unserved?: Partial<Record<keyof S["method"] & string, string>>;
    streams?: Partial<StreamHandlers<S>>;
    callStreams?: Partial<Record<keyof S["method"] & string, CallStream>>;
    decoders?: Partial<Record<keyof S["method"] & string, (bytes: Uint8Array) => Message>>;
  } = {},
): AsyncServiceBinding<W> {
  return {
    service,
    handlers: {},
    asyncHandlers: handlers,
    streams: options.streams ?? {},
    callStreams: (options.callStreams ?? {}) as Record<string, CallStream>,
    decoders: (options.decoders ?? {}) as Record<string, (bytes: Uint8Array) => Message>,
    admin: new Set(options.admin ?? []),
    unserved: (options.unserved ?? {}) as Record<string, string>,
  } as unknown as AsyncServiceBinding<W>;
}
