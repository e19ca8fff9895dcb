/**
 * The route table: which execution class each of an engine's routes belongs to. Keys are
 * `"METHOD /path"` or `"/path"` (any method); a path segment `:name` matches one segment and a
 * final `*` matches the rest. The first entry that matches wins, in the order written; a route
 * no entry matches is PROD, the safe default (blocked while go-live is disabled).
 */
import { ExecutionClass } from "../gen/governance/v1/common_pb.js";
import { type ExecutionClassName, executionClassOf } from "./execution.js";

/** Routes and their classes, such as `{ "GET /health": "EXEMPT", "POST /deals/:id/execute": "PROD_EXEC" }`. */
export type RouteTable = Readonly<Record<string, ExecutionClassName>>;

interface Route {
  method: string | undefined;
  segments: string[];
  rest: boolean;
  executionClass: ExecutionClass;
}

const METHOD = /^[A-Z]+$/;

function compile(key: string, name: ExecutionClassName): Route {
  const parts = key.trim().split(/\s+/);
  const [method, path] = parts.length === 2 ? parts : [undefined, parts[0]];
  if (parts.length > 2 || !path?.startsWith("/") || (method && !METHOD.test(method))) {
    throw new TypeError(
      `route ${JSON.stringify(key)}: write "METHOD /path" or "/path" (for example "POST /deals/:id/execute")`,
    );
  }
  const segments = path.split("/").slice(1);
  const rest = segments[segments.length - 1] === "*";
  if (rest) segments.pop();
  if (segments.includes("*")) {
    throw new TypeError(`route ${JSON.stringify(key)}: "*" may only end a path`);
  }
  return { method, segments, rest, executionClass: executionClassOf(name) };
}

/** Classifies requests by a route table; unclassified routes are PROD. */
export class RouteClassifier {
  private readonly routes: Route[];

  constructor(table: RouteTable) {
    this.routes = Object.entries(table).map(([key, name]) => compile(key, name));
  }

  /** The class of a request, from its method and URL (a query string is ignored). */
  classify(method: string | undefined, url: string): ExecutionClass {
    const q = url.indexOf("?");
    const segments = (q < 0 ? url : url.slice(0, q)).split("/");
    // segments[0] is the empty string before the leading slash.
    for (const route of this.routes) {
      if (route.method !== undefined && route.method !== method) continue;
      if (matches(route, segments)) return route.executionClass;
    }
    return ExecutionClass.PROD;
  }
}

function matches(route: Route, segments: string[]): boolean {
  const n = route.segments.length;
  const have = segments.length - 1;
  if (route.rest ? have < n : have !== n) return false;
  for (let i = 0; i < n; i++) {
    const want = route.segments[i] as string;
    const got = segments[i + 1] as string;
    if (want.startsWith(":") ? got === "" : want !== got) return false;
  }
  return true;
}
