/**
 * Go-live middleware for the HTTP stacks engines use: plain node:http, Express and Fastify.
 * Each classifies the request by the route table and decides in-process (no round trip); a
 * blocked request is answered 503 with a JSON body naming the reason:
 * `{"error":"blocked by govd","reason":"DENY_REASON_KILL_SWITCH_ENGAGED","message":"..."}`.
 * Only structural types of the frameworks are used, so neither is a dependency.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { ExecutionClass } from "../gen/governance/v1/common_pb.js";
import { denyReasonName, type Verdict } from "./execution.js";
import { RouteClassifier, type RouteTable } from "./route-table.js";

/** What decides a request: the go-live watch (or anything with its `decide`). */
export interface GoLiveDecider {
  decide(executionClass: ExecutionClass): Verdict;
}

/** The JSON body of a blocked request. */
export interface BlockedBody {
  error: string;
  reason: string;
  message: string;
}

/** The 503 body for a denial. */
export function blockedBody(verdict: Verdict): BlockedBody {
  return {
    error: "blocked by govd: this route is not allowed to run now",
    reason: denyReasonName(verdict.reason),
    message: verdict.message,
  };
}

/** The verdict for a request, or undefined when it may run. */
function denial(
  decider: GoLiveDecider,
  routes: RouteClassifier,
  method: string | undefined,
  url: string,
): Verdict | undefined {
  const verdict = decider.decide(routes.classify(method, url));
  return verdict.allowed ? undefined : verdict;
}

/**
 * For a plain node:http server: call first in the request listener; true means the request
 * was blocked and already answered.
 */
export function nodeGoLiveGuard(
  decider: GoLiveDecider,
  table: RouteTable,
): (req: IncomingMessage, res: ServerResponse) => boolean {
  const routes = new RouteClassifier(table);
  return (req, res) => {
    const verdict = denial(decider, routes, req.method, req.url ?? "/");
    if (verdict) answerBlocked(res, verdict);
    return verdict !== undefined;
  };
}

function answerBlocked(res: ServerResponse, verdict: Verdict): void {
  const body = JSON.stringify(blockedBody(verdict));
  res.writeHead(503, {
    "content-type": "application/json; charset=utf-8",
    "content-length": Buffer.byteLength(body),
  });
  res.end(body);
}

/** The part of an Express request the middleware reads. */
export interface ExpressLikeRequest extends IncomingMessage {
  originalUrl?: string;
}

/** Express middleware (`app.use(...)` before the routes). */
export function expressGoLiveGuard(
  decider: GoLiveDecider,
  table: RouteTable,
): (req: ExpressLikeRequest, res: ServerResponse, next: (err?: unknown) => void) => void {
  const routes = new RouteClassifier(table);
  return (req, res, next) => {
    // Under a mounted router, req.url is relative to the mount; originalUrl is the full path.
    const verdict = denial(decider, routes, req.method, req.originalUrl ?? req.url ?? "/");
    if (verdict) answerBlocked(res, verdict);
    else next();
  };
}

/** The part of a Fastify request the hook reads. */
export interface FastifyLikeRequest {
  method: string;
  url: string;
}

/** The part of a Fastify reply the hook uses. */
export interface FastifyLikeReply {
  code(statusCode: number): FastifyLikeReply;
  header(key: string, value: string): FastifyLikeReply;
  send(payload?: unknown): FastifyLikeReply;
}

/** A Fastify onRequest hook (`app.addHook("onRequest", ...)`). */
export function fastifyGoLiveHook(
  decider: GoLiveDecider,
  table: RouteTable,
): (request: FastifyLikeRequest, reply: FastifyLikeReply, done: () => void) => void {
  const routes = new RouteClassifier(table);
  return (request, reply, done) => {
    const verdict = denial(decider, routes, request.method, request.url);
    if (!verdict) return done();
    // A hook that replies does not call done: Fastify skips the route handler.
    reply
      .code(503)
      .header("content-type", "application/json; charset=utf-8")
      .send(JSON.stringify(blockedBody(verdict)));
  };
}
