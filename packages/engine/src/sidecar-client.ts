/**
 * A typed client for the sidecar's gRPC port (TCP on loopback, or its unix socket): every
 * call has a deadline; reads and calls keyed by a correlation_id are retried with the same id
 * when the sidecar was unreachable or late, which the sidecar answers with its first answer.
 */
import {
  create,
  type DescMessage,
  type DescMethodUnary,
  fromBinary,
  type MessageInitShape,
  type MessageShape,
  toBinary,
} from "@bufbuild/protobuf";
import { MethodOptions_IdempotencyLevel } from "@bufbuild/protobuf/wkt";
import * as grpc from "@grpc/grpc-js";
import { SidecarCallError } from "./errors.js";

/** Where the sidecar is and how patient to be with it. */
export interface SidecarClientOptions {
  /** `host:port` on loopback (govd's default is 127.0.0.1:8013) or `unix:/path/to/govd.sock`. */
  address: string;
  /** Deadline of one attempt (default 2,000 ms). */
  deadlineMs?: number;
  /** Attempts of a retryable call (default 3). */
  attempts?: number;
  /** Wait before the second attempt, doubled before each next one (default 50 ms). */
  backoffMs?: number;
}

/** Options of one call. */
export interface CallOptions {
  /** This call's deadline per attempt, instead of the client's. */
  deadlineMs?: number;
  /** The operator token, for admin methods (Enable, EngageKillSwitch, ...). */
  token?: string;
}

/** Status codes after which a retryable call is tried again. */
const RETRY_ON = new Set([grpc.status.UNAVAILABLE, grpc.status.DEADLINE_EXCEEDED]);

const LOOPBACK = /^(unix:|127\.|localhost:|\[::1\]:|::1$)/;

/** A grpc-js client of the sidecar; one per engine process, shared by every call. */
export class SidecarClient {
  /** The underlying grpc-js client (its channel is shared by calls and the go-live stream). */
  readonly grpc: grpc.Client;
  readonly address: string;
  private readonly deadlineMs: number;
  private readonly attempts: number;
  private readonly backoffMs: number;

  constructor(options: SidecarClientOptions) {
    if (!LOOPBACK.test(options.address)) {
      throw new TypeError(
        `sidecar address ${options.address} is not on loopback: govd runs next to the engine (use 127.0.0.1:PORT or unix:/path)`,
      );
    }
    this.address = options.address;
    this.deadlineMs = options.deadlineMs ?? 2_000;
    this.attempts = Math.max(1, options.attempts ?? 3);
    this.backoffMs = options.backoffMs ?? 50;
    this.grpc = new grpc.Client(options.address, grpc.credentials.createInsecure());
  }

  /**
   * Calls a unary method such as `RiskService.method.reserve`. Rejects with SidecarCallError;
   * a denial is an answer (`allowed: false`), not an error.
   */
  async call<I extends DescMessage, O extends DescMessage>(
    method: DescMethodUnary<I, O>,
    request: MessageInitShape<I>,
    options: CallOptions = {},
  ): Promise<MessageShape<O>> {
    const message = create(method.input, request);
    const id = (message as { correlationId?: unknown }).correlationId;
    const retryable =
      method.idempotency === MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS ||
      (typeof id === "string" && id !== "");
    const bytes = Buffer.from(toBinary(method.input, message));
    const rpc = `${method.parent.name}/${method.name}`;
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.once(method, bytes, options);
      } catch (err) {
        const e = err as grpc.ServiceError;
        const again = retryable && RETRY_ON.has(e.code) && attempt < this.attempts;
        if (!again) throw new SidecarCallError(rpc, e.code, e.details, attempt, this.address);
        await new Promise((r) => setTimeout(r, this.backoffMs * 2 ** (attempt - 1)));
      }
    }
  }

  private once<O extends DescMessage>(
    method: DescMethodUnary<DescMessage, O>,
    bytes: Buffer,
    options: CallOptions,
  ): Promise<MessageShape<O>> {
    const metadata = new grpc.Metadata();
    if (options.token) metadata.set("authorization", `Bearer ${options.token}`);
    const deadline = Date.now() + (options.deadlineMs ?? this.deadlineMs);
    return new Promise((resolve, reject) => {
      this.grpc.makeUnaryRequest(
        `/${method.parent.typeName}/${method.name}`,
        (b: Buffer) => b,
        (b: Buffer) => fromBinary(method.output, b),
        bytes,
        metadata,
        { deadline },
        (err, value) => (err ? reject(err) : resolve(value as MessageShape<O>)),
      );
    });
  }

  /** Opens a server stream such as `GoLiveService.method.watchGoLive` (no deadline). */
  stream<I extends DescMessage, O extends DescMessage>(
    path: string,
    input: I,
    output: O,
    request: MessageInitShape<I>,
  ): grpc.ClientReadableStream<MessageShape<O>> {
    return this.grpc.makeServerStreamRequest(
      path,
      (m: MessageShape<I>) => Buffer.from(toBinary(input, m)),
      (b: Buffer) => fromBinary(output, b),
      create(input, request),
    );
  }

  /** Closes the channel. */
  close(): void {
    this.grpc.close();
  }
}
