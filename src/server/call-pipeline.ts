/**
 * What runs around every handler on both ports: operator token, protovalidate rules,
 * idempotency by correlation_id in the same transaction as the handler's writes, and error
 * mapping. On the ports, calls that arrive together share one commit (see GroupCommit).
 */
import {
  create,
  type DescMessage,
  type DescMethod,
  type DescMethodServerStreaming,
  type DescMethodUnary,
  type Message,
  type MessageInitShape,
} from "@bufbuild/protobuf";
import { MethodOptions_IdempotencyLevel } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Logger } from "pino";
import type { Clock } from "../clock.js";
import type { ServiceBinding, StreamSink } from "../levers/service-binding.js";
import type { Db } from "../store/database.js";
import type { DiskSpace } from "../store/disk-space.js";
import { GroupCommit } from "../store/group-commit.js";
import { DEFAULT_KEY_RETENTION_MS, type IdempotencyKeys } from "../store/idempotency-keys.js";
import { decisionOf, toConnectError } from "./call-answers.js";
import { type AnyHandler, IdempotentCalls } from "./idempotent-calls.js";
import type { OperatorToken } from "./operator-token.js";
import { RequestRules } from "./request-rules.js";
// protobuf-es encodes strings through Node's Buffer pool from here on (see wire-text.ts).
import "./wire-text.js";

type AnyStreamHandler = (
  request: Message,
  sink: StreamSink<MessageInitShape<DescMessage>>,
) => () => void;

/** The answer of one call: a message of the method's output type, and its encoding when made. */
export interface CallResult {
  message: Message;
  /** The message encoded, when the pipeline already encoded it (to remember it): send as is. */
  binary?: Buffer;
}

/** The work of one accepted call, and whether it writes (then it runs in a transaction). */
interface PreparedCall {
  writes: boolean;
  work: () => CallResult;
}

/** Told about every call once it is answered: for metrics. */
export type CallObserver = (
  service: string,
  rpc: string,
  seconds: number,
  response: Message | undefined,
  code: Code | undefined,
) => void;

interface Deps {
  db: Db;
  clock: Clock;
  token: OperatorToken;
  logger: Logger;
  storeFile: string;
  observe?: CallObserver;
  /** Told of store errors; while it says the disk is full, writes are refused up front. */
  space?: DiskSpace;
  /**
   * Set on a sidecar that follows central: operator writes are refused (FAILED_PRECONDITION)
   * with this message, since central holds the policy.
   */
  adminRefusal?: string;
  /** How long a correlation_id is answered with its first answer (default 7 days). */
  keyRetentionMs?: number;
}

/** Runs calls through token check, validation, idempotency and error mapping. */
export class CallPipeline {
  private readonly rules = new RequestRules();
  /** The idempotency keys of the store (the sidecar's sweep and fold use the same). */
  readonly keys: IdempotencyKeys;
  private readonly idempotent: IdempotentCalls;
  /** The commits `submit` shares between concurrent calls. */
  readonly groupCommit: GroupCommit;

  constructor(private readonly deps: Deps) {
    this.idempotent = new IdempotentCalls(
      deps.db,
      deps.clock,
      deps.keyRetentionMs ?? DEFAULT_KEY_RETENTION_MS,
    );
    this.keys = this.idempotent.keys;
    this.groupCommit = new GroupCommit(deps.db);
  }

  /**
   * Answers a call now, in a transaction of its own (for engines that embed govd). Throws
   * ConnectError on refusal or fault.
   */
  invoke(
    binding: ServiceBinding,
    method: DescMethodUnary,
    request: Message,
    authorization: string | undefined,
  ): CallResult {
    const start = performance.now();
    let result: CallResult | undefined;
    let code: Code | undefined;
    try {
      const call = this.prepare(binding, method, request, authorization);
      // Writes of other calls still waiting for their group commit are committed first, so
      // this answer neither sees nor joins writes that are not durable yet.
      if (call.writes) result = this.groupCommit.runDecision(call.work);
      else {
        this.groupCommit.commit();
        result = call.work();
      }
      return result;
    } catch (err) {
      const e = this.toConnectError(method, err);
      code = e.code;
      throw e;
    } finally {
      this.finish(binding, method, request, start, result, code);
    }
  }

  /**
   * Answers a call once what it wrote is committed: calls that arrive in the same turn of the
   * event loop share one commit (see GroupCommit), and the answer is a promise. A read while no
   * batch is open is answered at once, as a value (no promise on the CheckGoLive path); a read
   * while one is open may see its writes, so it waits for their commit. Refusals and faults are
   * thrown (or rejected) as ConnectError.
   */
  submit(
    binding: ServiceBinding,
    method: DescMethodUnary,
    request: Message,
    authorization: string | undefined,
  ): CallResult | Promise<CallResult> {
    const start = performance.now();
    const failed = (err: unknown): never => {
      const e = this.toConnectError(method, err);
      this.finish(binding, method, request, start, undefined, e.code);
      throw e;
    };
    let pending: Promise<CallResult>;
    try {
      const call = this.prepare(binding, method, request, authorization);
      if (!call.writes && !this.groupCommit.open) {
        const result = call.work();
        this.finish(binding, method, request, start, result, undefined);
        return result;
      }
      pending = this.groupCommit.run(call.work);
    } catch (err) {
      return failed(err);
    }
    return pending.then((result) => {
      this.finish(binding, method, request, start, result, undefined);
      return result;
    }, failed);
  }

  /**
   * Accepts a server-streaming call: checks the token and the request rules, commits any open
   * batch (so the first message is committed state) and returns the start of the handler.
   * Refusals are thrown as ConnectError.
   */
  openStream(
    binding: ServiceBinding,
    method: DescMethodServerStreaming,
    request: Message,
    authorization: string | undefined,
  ): (sink: StreamSink<MessageInitShape<DescMessage>>) => () => void {
    try {
      this.authorize(binding, method.localName, authorization);
      this.rules.enforce(method.input, request);
      const handler = (binding.streams as unknown as Record<string, AnyStreamHandler>)[
        method.localName
      ];
      if (!handler) throw new ConnectError(`${method.name} is not implemented`, Code.Unimplemented);
      this.groupCommit.commit();
      return (sink) => handler(request, sink);
    } catch (err) {
      throw this.toConnectError(method, err);
    }
  }

  private authorize(binding: ServiceBinding, name: string, authorization?: string): void {
    if (binding.admin.has(name) && !this.deps.token.accepts(authorization)) {
      throw new ConnectError(
        "this is an operator action: send 'authorization: Bearer <token>' with the token from <data-dir>/admin.token",
        Code.Unauthenticated,
      );
    }
    if (this.deps.adminRefusal !== undefined && binding.admin.has(name)) {
      throw new ConnectError(this.deps.adminRefusal, Code.FailedPrecondition);
    }
  }

  /** Checks the token and the request rules; returns the handler's work for this request. */
  private prepare(
    binding: ServiceBinding,
    method: DescMethodUnary,
    request: Message,
    authorization: string | undefined,
  ): PreparedCall {
    this.authorize(binding, method.localName, authorization);
    this.rules.enforce(method.input, request);
    const handler = (binding.handlers as unknown as Record<string, AnyHandler>)[method.localName];
    if (!handler) throw new ConnectError(`${method.name} is not implemented`, Code.Unimplemented);
    if (method.idempotency === MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS) {
      return { writes: false, work: () => ({ message: create(method.output, handler(request)) }) };
    }
    if (this.deps.space?.full) {
      // Each write tried on a full disk regrows the WAL into the space an operator frees.
      throw new ConnectError(
        `store ${this.deps.storeFile}: the disk is full, so writes are refused until space is freed (the sidecar checks every second and resumes by itself); reads go on`,
        Code.Unavailable,
      );
    }
    return { writes: true, work: () => this.idempotent.run(method, handler, request) };
  }

  /** Metrics and the debug log line of an answered call. */
  private finish(
    binding: ServiceBinding,
    method: DescMethodUnary,
    request: Message,
    start: number,
    result: CallResult | undefined,
    code: Code | undefined,
  ): void {
    const seconds = (performance.now() - start) / 1000;
    const response = result?.message;
    this.deps.observe?.(binding.service.typeName, method.name, seconds, response, code);
    if (this.deps.logger.isLevelEnabled("debug")) {
      const r = request as { correlationId?: unknown; actor?: unknown };
      // An id the sidecar assigned is only in the answer.
      const id =
        r.correlationId || (response as { correlationId?: unknown } | undefined)?.correlationId;
      this.deps.logger.debug(
        {
          rpc: `${binding.service.typeName}/${method.name}`,
          correlation_id: typeof id === "string" && id !== "" ? id : undefined,
          actor: typeof r.actor === "string" ? r.actor : undefined,
          decision: decisionOf(response, code),
          duration_us: Math.round(seconds * 1e6),
        },
        "call",
      );
    }
  }

  /**
   * Compiles the validation rules of every request type now: protovalidate compiles a type's
   * CEL rules on its first use, which costs the first call of each method 100+ ms otherwise.
   */
  warmUp(bindings: readonly ServiceBinding[]): void {
    for (const b of bindings) {
      for (const m of b.service.methods) this.rules.warmUp(m.input);
    }
  }

  /** How many request types had their rules first compiled during a call (100+ ms each). */
  get rulesCompiledOnCall(): number {
    return this.rules.compiledOnCall;
  }

  private toConnectError(method: DescMethod, err: unknown): ConnectError {
    // A full disk stops writes until the store recovers (see DiskSpace).
    this.deps.space?.noteError(err);
    return toConnectError(method, err, this.deps.logger, this.deps.storeFile);
  }
}
