/**
 * grpc.health.v1.Health on the grpc-js port. It agrees with /readyz: SERVING once the sidecar
 * listens and is ready, NOT_SERVING before that and from the moment shutdown begins. The empty
 * service name and each govd service answer the same status; other names are unknown.
 *
 * Not the `grpc-health-check` package, though it can follow the same readiness (measured,
 * v2.1.0 on this grpc-js): it parses health.proto with protobufjs through its own copy of
 * @grpc/proto-loader at start (+70 ms, +2.5 MB RSS, against a 120 MB bound the sidecar keeps
 * with 6 MB to spare), and it never ends a Watch stream, nor exposes its watchers, so an open
 * Watch holds grpc-js's tryShutdown forever unless each call is wrapped and tracked here anyway.
 * With that wrapper written, the package would save the Check handler and a status map; this
 * file serves both from the readiness itself, on the descriptors reflection already needs.
 */
import { EventEmitter } from "node:events";
import { create, type DescService, fromBinary, type Message, toBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { healthProtocol } from "./protocols.js";

/** The ServingStatus values of grpc.health.v1. */
export const ServingStatus = {
  UNKNOWN: 0,
  SERVING: 1,
  NOT_SERVING: 2,
  SERVICE_UNKNOWN: 3,
} as const;

/** Readiness shared by /readyz and the health service; watchers hear every change. */
export class Readiness extends EventEmitter {
  private ready = false;
  private closing = false;
  private storeFull = false;
  private policyStale: (() => string | undefined) | undefined;

  /** True while the sidecar serves decisions, and can write them. */
  isReady(): boolean {
    return this.notReadyBecause() === undefined;
  }

  /** Why the sidecar is not ready, for /readyz; undefined when it is. */
  notReadyBecause(): string | undefined {
    if (this.closing) return "shutting down";
    if (!this.ready) return "starting";
    if (this.storeFull) return "the store's disk is full: writes are refused, reads go on";
    return this.policyStale?.();
  }

  /**
   * Makes readiness follow the policy's freshness (a sidecar following central): not ready
   * while `staleBecause` says why, decided by the same function decisions use. Call
   * `policyFreshnessChanged()` when it flips, so health watchers hear of it.
   */
  followPolicy(staleBecause: () => string | undefined): void {
    this.policyStale = staleBecause;
    this.emit("change");
  }

  /** Tells health watchers the policy's freshness flipped. */
  policyFreshnessChanged(): void {
    this.emit("change");
  }

  /** Marks the store full (not serving for writes) or writable again. */
  markStoreFull(full: boolean): void {
    if (this.storeFull === full) return;
    this.storeFull = full;
    this.emit("change");
  }

  /** Marks the sidecar ready (after listen). */
  markReady(): void {
    this.ready = true;
    this.emit("change");
  }

  /** Marks shutdown begun: not ready from now on, and watch streams end. */
  markClosing(): void {
    this.closing = true;
    this.emit("change");
    this.emit("closing");
  }

  /** True once shutdown has begun. */
  isClosing(): boolean {
    return this.closing;
  }
}

interface HealthRequest extends Message {
  service: string;
}

/** Adds grpc.health.v1.Health (Check and Watch) over `readiness`; returns its descriptor. */
export function addHealth(
  server: grpc.Server,
  readiness: Readiness,
  serviceNames: readonly string[],
): DescService {
  const protocol = healthProtocol();
  const input = protocol.message("HealthCheckRequest");
  const output = protocol.message("HealthCheckResponse");
  const known = new Set(["", ...serviceNames]);
  const statusOf = (service: string): number => {
    if (!known.has(service)) return ServingStatus.SERVICE_UNKNOWN;
    return readiness.isReady() ? ServingStatus.SERVING : ServingStatus.NOT_SERVING;
  };
  const reply = (status: number) => create(output, { status } as never);
  const codec = {
    requestSerialize: (m: Message) => Buffer.from(toBinary(input, m)),
    requestDeserialize: (b: Buffer) => fromBinary(input, b),
    responseSerialize: (m: Message) => Buffer.from(toBinary(output, m)),
    responseDeserialize: (b: Buffer) => fromBinary(output, b),
  };
  const path = (name: string) => `/${protocol.service.typeName}/${name}`;
  server.addService(
    {
      check: { path: path("Check"), requestStream: false, responseStream: false, ...codec },
      watch: { path: path("Watch"), requestStream: false, responseStream: true, ...codec },
    },
    {
      check: (
        call: grpc.ServerUnaryCall<HealthRequest, Message>,
        callback: grpc.sendUnaryData<Message>,
      ) => {
        const status = statusOf(call.request.service);
        if (status === ServingStatus.SERVICE_UNKNOWN) {
          callback({
            code: grpc.status.NOT_FOUND,
            details: `unknown service ${call.request.service}: ask for "" or one of ${serviceNames.join(", ")}`,
          });
          return;
        }
        callback(null, reply(status));
      },
      watch: (call: grpc.ServerWritableStream<HealthRequest, Message>) => {
        let last = -1;
        const send = () => {
          const status = statusOf(call.request.service);
          if (status !== last) call.write(reply(status));
          last = status;
        };
        const end = () => {
          send();
          stop();
          call.end();
        };
        const stop = () => {
          readiness.off("change", send);
          readiness.off("closing", end);
        };
        send();
        if (readiness.isClosing()) return end();
        readiness.on("change", send);
        readiness.on("closing", end);
        call.on("cancelled", stop);
      },
    },
  );
  return protocol.service;
}
