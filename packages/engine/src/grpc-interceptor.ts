/**
 * Go-live for an engine's own grpc-js services: a server interceptor
 * (`new grpc.Server({ interceptors: [grpcGoLiveInterceptor(govd.goLive, table)] })`) that
 * classifies each call by its path `/<package.Service>/<Method>` in the route table and refuses
 * a blocked one with UNAVAILABLE before the handler runs: the reason in the details and in the
 * `govd-deny-reason` trailer. grpc-js is already this library's dependency.
 */
import * as grpc from "@grpc/grpc-js";
import { denyReasonName } from "./execution.js";
import type { GoLiveDecider } from "./http-middleware.js";
import { RouteClassifier, type RouteTable } from "./route-table.js";

/** A grpc-js server interceptor deciding each call in-process from the pushed state. */
export function grpcGoLiveInterceptor(
  decider: GoLiveDecider,
  table: RouteTable,
): grpc.ServerInterceptor {
  const routes = new RouteClassifier(table);
  return (method, call) => {
    const verdict = decider.decide(routes.classify("POST", method.path));
    if (verdict.allowed) return new grpc.ServerInterceptingCall(call);
    const reason = denyReasonName(verdict.reason);
    return new grpc.ServerInterceptingCall(call, {
      start: (next) => {
        next({
          // Refused once the caller's metadata is in, before any message reaches the handler.
          onReceiveMetadata: () => {
            const trailer = new grpc.Metadata();
            trailer.set("govd-deny-reason", reason);
            call.sendStatus({
              code: grpc.status.UNAVAILABLE,
              details: `blocked by govd (${reason}): ${verdict.message}`,
              metadata: trailer,
            });
          },
        });
      },
    });
  };
}
