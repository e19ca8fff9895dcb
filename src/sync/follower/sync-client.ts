/**
 * A sidecar's client of central's SyncService over grpc-js: the Watch stream, Ack and
 * ReportTrip and ShipEvents, to one of central's addresses. Messages are the protobuf-es types of sync.proto.
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

/** One channel to central with the calls a sidecar makes. */
export class SyncClient {
  private readonly client: grpc.Client;

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

  /** Acks (error empty) or NACKs a revision. */
  ack(request: MessageInitShape<typeof AckRequestSchema>, timeoutMs = 5_000) {
    return this.unary("Ack", AckRequestSchema, AckResponseSchema, request, timeoutMs);
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

  /** Closes the channel. */
  close(): void {
    this.client.close();
  }
}
