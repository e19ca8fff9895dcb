/**
 * Go-live for an engine's own Connect (or gRPC through connect-node) services: an interceptor
 * that classifies each call by `/<service>/<Method>` in the route table and refuses a blocked
 * one with UNAVAILABLE (HTTP 503 in the Connect protocol), the reason in the message and in the
 * `govd-deny-reason` response header. Imported as `@govd/engine/connect`: only engines serving
 * Connect need @connectrpc/connect (an optional peer dependency).
 */
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { denyReasonName } from "./execution.js";
import type { GoLiveDecider } from "./http-middleware.js";
import { RouteClassifier, type RouteTable } from "./route-table.js";

/** An interceptor for createConnectRouter / connectNodeAdapter ({ interceptors: [...] }). */
export function goLiveInterceptor(decider: GoLiveDecider, table: RouteTable): Interceptor {
  const routes = new RouteClassifier(table);
  return (next) => async (req) => {
    const path = `/${req.service.typeName}/${req.method.name}`;
    const verdict = decider.decide(routes.classify("POST", path));
    if (verdict.allowed) return next(req);
    const reason = denyReasonName(verdict.reason);
    throw new ConnectError(`blocked by govd (${reason}): ${verdict.message}`, Code.Unavailable, {
      "govd-deny-reason": reason,
    });
  };
}
