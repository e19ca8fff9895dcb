/**
 * A sidecar's client of central's SyncService over grpc-js: the Watch stream, acks (on the
 * AckStream, or by the Ack call), ReportTrip and ShipEvents, to one of central's addresses. Messages are the protobuf-es types of sync.proto.
 */
import {
  create,
  type DescMessage,
  fromBinary,
  type MessageInitShape,
  type MessageShape,
  toBinary,
} from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import {
  AckRequestSchema,
  AckResponseSchema,
  AckStreamRequestSchema,
  AckStreamResponseSchema,
  ListSidecarsRequestSchema,
  ListSidecarsResponseSchema,
  ReportTripRequestSchema,
  ReportTripResponseSchema,
  ShipEventsRequestSchema,
  ShipEventsResponseSchema,
  SyncService,
  WatchRequestSchema,
  type WatchResponse,
  WatchResponseSchema,
} from "../../../gen/governance/v1/sync_pb.js";
import type { CentralConnection } from "../tls/client-credentials.js";

/** How an address reads in logs and messages: `host:port` or `https://host:port`. */
export function centralLabel(c: CentralConnection): string {
  return `${c.address.tls ? "https://" : ""}${c.target}`;
}

const path = (name: string) => `/${SyncService.typeName}/${name}`;
const encode =
  <D extends DescMessage>(schema: D) =>
  (m: MessageInitShape<D>) =>
    Buffer.from(toBinary(schema, create(schema, m)));
const decode =
  <D extends DescMessage>(schema: D) =>
  (b: Buffer): MessageShape<D> =>
    fromBinary(schema, b);

/** An ACK or NACK as a sidecar sends it. */
type AckInit = MessageInitShape<typeof AckRequestSchema>;

/** Codes with which central refuses an ack itself (the ack is wrong, not the link). */
const REFUSALS = new Set<number>([
  grpc.status.INVALID_ARGUMENT,
  grpc.status.FAILED_PRECONDITION,
  grpc.status.PERMISSION_DENIED,
  grpc.status.UNAUTHENTICATED,
  grpc.status.NOT_FOUND,
]);

/** One channel to central with the calls a sidecar makes. */
export class SyncClient {
  private readonly client: grpc.Client;
  /** The AckStream acks go on, while open. */
  private acks:
    | grpc.ClientWritableStream<MessageInitShape<typeof AckStreamRequestSchema>>
    | undefined;
  /** Central answered UNIMPLEMENTED to AckStream: acks go by the Ack call. */
  private noAckStream = false;
  private newestAck: AckInit | undefined;
  private refused: ((err: Error, ack: AckInit) => void) | undefined;
  /** Streams ended here, whose end is no failure. */
  private readonly ended = new WeakSet<object>();
  private unaryAcks: Promise<unknown> = Promise.resolve();
  private closed = false;

  /** The address as logs show it. */
  readonly label: string;

  constructor(
    readonly endpoint: CentralConnection,
    private readonly token?: string,
  ) {
    this.label = centralLabel(endpoint);
    this.client = new grpc.Client(endpoint.target, endpoint.credentials, {
      // A connection that silently stops carrying data is found by keepalive pings too.
      "grpc.keepalive_time_ms": 10_000,
      "grpc.keepalive_timeout_ms": 5_000,
      "grpc.keepalive_permit_without_calls": 1,
      "grpc.initial_reconnect_backoff_ms": 100,
      "grpc.max_reconnect_backoff_ms": 2_000,
    });
  }

  private metadata(): grpc.Metadata {
    const m = new grpc.Metadata();
    if (this.token) m.set("authorization", `Bearer ${this.token}`);
    return m;
  }

  /** Opens the Watch stream. */
  watch(
    request: MessageInitShape<typeof WatchRequestSchema>,
  ): grpc.ClientReadableStream<WatchResponse> {
    return this.client.makeServerStreamRequest(
      path("Watch"),
      encode(WatchRequestSchema),
      decode(WatchResponseSchema),
      request,
      this.metadata(),
    );
  }

  private unary<I extends DescMessage, O extends DescMessage>(
    name: string,
    input: I,
    output: O,
    request: MessageInitShape<I>,
    timeoutMs: number,
  ): Promise<MessageShape<O>> {
    return new Promise((resolve, reject) => {
      this.client.makeUnaryRequest(
        path(name),
        encode(input),
        decode(output),
        request,
        this.metadata(),
        { deadline: Date.now() + timeoutMs },
        (err, value) => (err || !value ? reject(err ?? new Error("no answer")) : resolve(value)),
      );
    });
  }

  /** Acks (error empty) or NACKs a revision, by a call of its own. */
  ack(request: MessageInitShape<typeof AckRequestSchema>, timeoutMs = 5_000) {
    return this.unary("Ack", AckRequestSchema, AckResponseSchema, request, timeoutMs);
  }

  /**
   * Acks a revision on the long-lived AckStream (opened on first use): no call per revision.
   * Central ends the stream only when it refuses an ack (`refused` is told, with that ack) or
   * when the stream breaks (central shutting down, its store unreachable, the link lost): then
   * the newest ack written, which covers every revision before it, goes again by the Ack call,
   * whose answer is definite, and `refused` is told only if that fails too. The next ack opens a
   * new stream. A central that does not serve AckStream (UNIMPLEMENTED) gets every later ack by
   * the Ack call. Acks by the call go one after another, in revision order.
   */
  ackOnStream(request: AckInit, refused: (err: Error, ack: AckInit) => void): void {
    this.refused = refused;
    if (this.noAckStream) {
      this.ackByCall(request);
      return;
    }
    if (!this.acks) {
      const stream = this.client.makeClientStreamRequest(
        path("AckStream"),
        encode(AckStreamRequestSchema),
        decode(AckStreamResponseSchema),
        this.metadata(),
        (err) => {
          if (this.acks === stream) this.acks = undefined;
          // Ended here (close(), or the follower moved to another address): nothing to redo.
          if (!err || this.closed || this.ended.has(stream)) return;
          const newest = this.newestAck;
          if (err.code === grpc.status.UNIMPLEMENTED) this.noAckStream = true;
          else if (REFUSALS.has(err.code)) {
            if (newest) this.refused?.(err, newest);
            return;
          }
          if (newest) this.ackByCall(newest);
        },
      );
      this.acks = stream;
    }
    this.newestAck = request;
    this.acks.write({ ack: request });
  }

  /** Ends the AckStream, if open (the follower moved to another of central's addresses). */
  endAcks(): void {
    const stream = this.acks;
    if (!stream) return;
    this.acks = undefined;
    this.ended.add(stream);
    stream.end();
  }

  private ackByCall(request: AckInit): void {
    this.unaryAcks = this.unaryAcks.then(() =>
      this.ack(request).catch((err: Error) => {
        if (!this.closed) this.refused?.(err, request);
      }),
    );
  }

  /** Reports a trip acted on here. */
  reportTrip(request: MessageInitShape<typeof ReportTripRequestSchema>, timeoutMs = 5_000) {
    return this.unary(
      "ReportTrip",
      ReportTripRequestSchema,
      ReportTripResponseSchema,
      request,
      timeoutMs,
    );
  }

  /** Ships a batch of audit events (or, empty, asks which central holds). */
  shipEvents(request: MessageInitShape<typeof ShipEventsRequestSchema>, timeoutMs = 10_000) {
    return this.unary(
      "ShipEvents",
      ShipEventsRequestSchema,
      ShipEventsResponseSchema,
      request,
      timeoutMs,
    );
  }

  /**
   * Ships a ShipEvents request already encoded (`encodeShipment`): the shipper's path, which
   * skips building and reflecting over a message per event.
   */
  shipEncoded(
    request: Uint8Array,
    timeoutMs = 10_000,
  ): Promise<MessageShape<typeof ShipEventsResponseSchema>> {
    return new Promise((resolve, reject) => {
      this.client.makeUnaryRequest(
        path("ShipEvents"),
        (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength),
        decode(ShipEventsResponseSchema),
        request,
        this.metadata(),
        { deadline: Date.now() + timeoutMs },
        (err, value) => (err || !value ? reject(err ?? new Error("no answer")) : resolve(value)),
      );
    });
  }

  /** The fleet view (for the anchor `govd audit verify` checks against). */
  listSidecars(timeoutMs = 10_000) {
    return this.unary(
      "ListSidecars",
      ListSidecarsRequestSchema,
      ListSidecarsResponseSchema,
      {},
      timeoutMs,
    );
  }

  /** Closes the channel (an open AckStream ends first). */
  close(): void {
    this.closed = true;
    this.acks?.end();
    this.acks = undefined;
    this.client.close();
  }
}
