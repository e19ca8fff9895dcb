/**
 * What runs around every handler on central: operator token, protovalidate rules, the
 * sidecar identity check, idempotency by correlation_id in the same transaction as the
 * handler's change, and error mapping. Central's store is asynchronous (PostgreSQL), so every
 * answer is a promise; the sidecar's synchronous pipeline is not involved.
 */
import { randomUUID } from "node:crypto";
import {
  create,
  type DescMessage,
  type DescMethod,
  type DescMethodServerStreaming,
  type DescMethodUnary,
  fromBinary,
  type Message,
  type MessageInitShape,
} from "@bufbuild/protobuf";
import { MethodOptions_IdempotencyLevel } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Logger } from "pino";
import type { AsyncServiceBinding, ServiceBinding, StreamSink } from "../levers/service-binding.js";
import { sha256Hex } from "../store/sha256.js";
import { type CentralStore, describeLocation } from "../sync/central/central-store.js";
import type { RevisionWrite } from "../sync/central/revision-write.js";
import { answer, toConnectError } from "./call-answers.js";
import type { CallObserver, CallResult } from "./call-pipeline.js";
import type { CallRunner, CallTransport } from "./call-runner.js";
import { canonicalBytes } from "./canonical-request.js";
import { encodeMessage } from "./message-encoding.js";
import type { OperatorToken } from "./operator-token.js";
import { RequestRules } from "./request-rules.js";

/**
 * The identity of the caller's connection (the mTLS peer certificate's), or undefined when it
 * has none. When central is given one, a sidecar call's sidecar_id must equal it.
 */
export type SidecarIdentity = (transport: CallTransport | undefined) => string | undefined;

interface Deps {
  store: CentralStore;
  token: OperatorToken;
  logger: Logger;
  observe?: CallObserver;
  identify?: SidecarIdentity;
}

type Handler = (request: Message, write: RevisionWrite | undefined) => unknown;

/** PostgreSQL and socket conditions that mean the store cannot be reached right now. */
function unreachable(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  if (typeof code === "string") {
    return /^(ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|ENOTFOUND|08|57P0[123]|53300)/.test(code);
  }
  // pg reports a connection dropped mid-query without a code.
  return /Connection terminated|connection timeout/i.test((err as Error).message ?? "");
}

/** Runs central's calls (see the file comment). */
export class CentralPipeline implements CallRunner {
  private readonly rules = new RequestRules();

  constructor(private readonly deps: Deps) {}

  /** Answers a unary call once its change (if any) is committed. */
  submit(
    binding: ServiceBinding,
    method: DescMethodUnary,
    request: Message,
    authorization: string | undefined,
    transport?: CallTransport,
  ): Promise<CallResult> {
    const start = performance.now();
    const done = (result: CallResult | undefined, code: Code | undefined) =>
      this.deps.observe?.(
        binding.service.typeName,
        method.name,
        (performance.now() - start) / 1000,
        result?.message,
        code,
      );
    return this.run(binding, method, request, authorization, transport).then(
      (result) => {
        done(result, undefined);
        return result;
      },
      (err: unknown) => {
        const e = this.toConnectError(method, err);
        done(undefined, e.code);
        throw e;
      },
    );
  }

  /** Accepts a server-streaming call (SyncService.Watch). */
  openStream(
    binding: ServiceBinding,
    method: DescMethodServerStreaming,
    request: Message,
    authorization: string | undefined,
    transport?: CallTransport,
  ): (sink: StreamSink<MessageInitShape<DescMessage>>) => () => void {
    try {
      const handler = (
        binding.streams as unknown as Record<
          string,
          (r: Message, s: StreamSink<MessageInitShape<DescMessage>>) => () => void
        >
      )[method.localName];
      if (!handler) throw this.unserved(binding, method);
      this.admit(binding, method, request, authorization, transport);
      return (sink) => handler(request, sink);
    } catch (err) {
      throw this.toConnectError(method, err);
    }
  }

  /** Compiles every request type's validation rules now (the first use costs 100+ ms). */
  warmUp(bindings: readonly ServiceBinding[]): void {
    for (const b of bindings) {
      for (const m of b.service.methods) this.rules.warmUp(m.input);
    }
  }

  private async run(
    binding: ServiceBinding,
    method: DescMethodUnary,
    request: Message,
    authorization: string | undefined,
    transport: CallTransport | undefined,
  ): Promise<CallResult> {
    const handler = (binding as AsyncServiceBinding<RevisionWrite>).asyncHandlers?.[
      method.localName
    ] as Handler | undefined;
    // Not served here: said before anything else, whatever the request holds.
    if (!handler) throw this.unserved(binding, method);
    this.admit(binding, method, request, authorization, transport);
    if (method.idempotency === MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS) {
      const init = (await handler(request, undefined)) as MessageInitShape<DescMessage>;
      return { message: create(method.output, init) };
    }
    return this.once(method, handler, request);
  }

  /** Token, request rules and sidecar identity; throws ConnectError. */
  private admit(
    binding: ServiceBinding,
    method: DescMethod,
    request: Message,
    authorization: string | undefined,
    transport: CallTransport | undefined,
  ): void {
    if (binding.admin.has(method.localName) && !this.deps.token.accepts(authorization)) {
      throw new ConnectError(
        "this is an operator action: send 'authorization: Bearer <token>' with central's token (<data-dir>/admin.token or GOVD_ADMIN_TOKEN)",
        Code.Unauthenticated,
      );
    }
    this.rules.enforce(method.input, request);
    const sidecarId = (request as { sidecarId?: unknown }).sidecarId;
    if (this.deps.identify && typeof sidecarId === "string") {
      const identity = this.deps.identify(transport);
      if (identity !== sidecarId) {
        throw new ConnectError(
          `sidecar_id ${sidecarId} does not match the connection's identity ${identity ?? "(none: no client certificate)"}: a sidecar may only speak for itself`,
          Code.PermissionDenied,
        );
      }
    }
  }

  private unserved(binding: ServiceBinding, method: DescMethod): ConnectError {
    const why = (binding as AsyncServiceBinding).unserved?.[method.localName];
    return new ConnectError(why ?? `${method.name} is not served by central`, Code.Unimplemented);
  }

  /**
   * Runs a write once per (method, correlation_id) in one transaction with its change; a
   * retry gets the first answer, another body with the same id ALREADY_EXISTS. Without an id
   * the call gets `auto-<uuid>` (recorded with its change, returned) and is not deduplicated.
   */
  private async once(
    method: DescMethodUnary,
    handler: Handler,
    request: Message,
  ): Promise<CallResult> {
    const given = (request as { correlationId?: unknown }).correlationId;
    const store = this.deps.store;
    // Without an idempotency key (SyncService.Ack) the handler writes on its own, outside a
    // write transaction of the revision log.
    if (typeof given !== "string") {
      const init = (await handler(request, undefined)) as MessageInitShape<DescMessage>;
      return { message: create(method.output, init) };
    }
    if (given === "") {
      const correlationId = `auto-${randomUUID()}`;
      const identified = { ...request, correlationId } as Message;
      return store.write(async (w) => ({
        message: answer(
          method,
          (await handler(identified, w)) as MessageInitShape<DescMessage>,
          correlationId,
        ),
      }));
    }
    const hash = sha256Hex(canonicalBytes(method.input, request));
    const scope = `${method.parent.typeName}/${method.name}`;
    return store.write(async (w) => {
      // Under the revision log's lock: a concurrent retry through another replica waits here.
      await w.lock();
      const previous = await w.trx
        .selectFrom("central_idempotency")
        .select(["request_hash", "response"])
        .where("scope", "=", scope)
        .where("correlation_id", "=", given)
        .executeTakeFirst();
      if (previous) {
        if (previous.request_hash !== hash) {
          throw new ConnectError(
            `correlation_id ${given} was already used for a different ${method.name} request: use a new id for a new request`,
            Code.AlreadyExists,
          );
        }
        const binary = Buffer.from(previous.response);
        return { message: fromBinary(method.output, binary), binary };
      }
      const init = (await handler(request, w)) as MessageInitShape<DescMessage>;
      const message = answer(method, init, given);
      const binary = encodeMessage(method.output, message);
      await w.trx
        .insertInto("central_idempotency")
        .values({
          scope,
          correlation_id: given,
          request_hash: hash,
          response: binary,
          created_ms: store.clock.now(),
        })
        .execute();
      return { message, binary };
    });
  }

  private toConnectError(method: DescMethod, err: unknown): ConnectError {
    if (err instanceof ConnectError) return err;
    if (unreachable(err)) {
      const ref = randomUUID().slice(0, 8);
      this.deps.logger.error({ err, ref, method: method.name }, "central store unreachable");
      return new ConnectError(
        `central's store is unreachable right now (ref ${ref}); retry, or call another replica`,
        Code.Unavailable,
      );
    }
    return toConnectError(
      method,
      err,
      this.deps.logger,
      describeLocation(this.deps.store.location),
    );
  }
}
