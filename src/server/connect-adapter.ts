/**
 * The Connect and gRPC-Web request listener of the HTTP port: connect-node's adapter, with one
 * answer changed. connect-es reports a request body that is not valid protobuf binary as
 * `internal` (HTTP 500), the code it uses when a client cannot read a server's answer; on a
 * server the fault is the caller's, and the gRPC port says INVALID_ARGUMENT for the same bytes.
 * This listener says so too, and leaves every other answer as connect-node made it.
 */
import type * as http from "node:http";
import {
  Code,
  ConnectError,
  type ConnectRouter,
  type ConnectRouterOptions,
  type ContextValues,
  createConnectRouter,
} from "@connectrpc/connect";
import { readAllBytes, type UniversalServerResponse } from "@connectrpc/connect/protocol";
import {
  compressionBrotli,
  compressionGzip,
  universalRequestFromNodeRequest,
  universalResponseToNodeResponse,
} from "@connectrpc/connect-node";

/** What the listener serves, with connect-node's handler options. */
export interface ConnectListenerOptions extends ConnectRouterOptions {
  routes: (router: ConnectRouter) => void;
  /** Values handlers read from `ctx.values` (the peer's identity, see tls-credentials.ts). */
  contextValues?: (req: http.IncomingMessage) => ContextValues;
}

/** connect-es's wording for a request body that protobuf binary cannot decode. */
const PARSE_BINARY = "parse binary: ";

/** A Connect unary error answer as the protocol writes it: JSON with a code and a message. */
function connectError(status: number, code: string, message: string): UniversalServerResponse {
  const body = new TextEncoder().encode(JSON.stringify({ code, message }));
  return {
    status,
    header: new Headers({ "content-type": "application/json" }),
    body: (async function* () {
      yield body;
    })(),
  };
}

/** The answer, with a binary body that did not decode reported as the caller's INVALID_ARGUMENT. */
async function callerFault(
  res: UniversalServerResponse,
  inputType: string,
): Promise<UniversalServerResponse> {
  const json = res.header?.get("content-type")?.startsWith("application/json");
  if (res.status !== 500 || !json || res.header?.has("content-encoding") || !res.body) return res;
  const bytes = await readAllBytes(res.body, Number.MAX_SAFE_INTEGER);
  let parsed: { code?: unknown; message?: unknown } = {};
  try {
    parsed = JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    // not a Connect error body: passed on as it was
  }
  const message = typeof parsed.message === "string" ? parsed.message : "";
  if (parsed.code === "internal" && message.startsWith(PARSE_BINARY)) {
    return connectError(
      400,
      "invalid_argument",
      `invalid request: the body is not a valid ${inputType} in protobuf binary (${message.slice(PARSE_BINARY.length)})`,
    );
  }
  return {
    ...res,
    body: (async function* () {
      yield bytes;
    })(),
  };
}

/** A node:http request listener for the routes (404 for any other path). */
export function connectListener(
  options: ConnectListenerOptions,
): (req: http.IncomingMessage, res: http.ServerResponse) => void {
  const router = createConnectRouter({
    acceptCompression: [compressionGzip, compressionBrotli],
    ...options,
  });
  options.routes(router);
  const handlers = new Map(router.handlers.map((h) => [h.requestPath, h]));
  return (req, res) => {
    const handler = handlers.get((req.url ?? "").split("?", 2)[0] ?? "");
    if (!handler) {
      res.writeHead(404);
      res.end();
      return;
    }
    handler(universalRequestFromNodeRequest(req, res, undefined, options.contextValues?.(req)))
      .then((answer) => callerFault(answer, handler.method.input.typeName))
      .then((answer) => universalResponseToNodeResponse(answer, res))
      .catch((reason: unknown) => {
        if (ConnectError.from(reason).code === Code.Aborted) return;
        console.error(
          `handler for rpc ${handler.method.name} of ${handler.service.typeName} failed`,
          reason,
        );
      });
  };
}
