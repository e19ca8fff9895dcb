/** Real clients for both ports: grpc-js over h2c, and fetch speaking Connect JSON. */
import {
  create,
  type DescMethodUnary,
  type DescService,
  fromBinary,
  fromJson,
  type JsonValue,
  type MessageInitShape,
  type MessageShape,
  toBinary,
  toJson,
} from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";

/** Options of one call. */
export interface CallOptions {
  token?: string;
}

/** A client that can call any unary method of any service on one port. */
export interface Caller {
  name: string;
  call<S extends DescService, K extends keyof S["method"] & string>(
    service: S,
    method: K,
    request: S["method"][K] extends DescMethodUnary<infer I, infer _O>
      ? MessageInitShape<I>
      : never,
    options?: CallOptions,
  ): Promise<S["method"][K] extends DescMethodUnary<infer _I, infer O> ? MessageShape<O> : never>;
  close(): void;
}

function methodOf(service: DescService, name: string): DescMethodUnary {
  const m = service.method[name];
  if (m?.methodKind !== "unary") throw new Error(`no unary method ${name}`);
  return m as DescMethodUnary;
}

/**
 * A grpc-js client over plaintext HTTP/2 (or `credentials`, for TLS); failures reject with
 * ConnectError of the status.
 */
export function grpcCaller(
  address: string,
  credentials: grpc.ChannelCredentials = grpc.credentials.createInsecure(),
): Caller {
  const client = new grpc.Client(address, credentials);
  return {
    name: "grpc",
    call(service, name, request, options = {}) {
      const method = methodOf(service, name);
      const metadata = new grpc.Metadata();
      if (options.token) metadata.set("authorization", `Bearer ${options.token}`);
      return new Promise((resolve, reject) => {
        client.makeUnaryRequest(
          `/${service.typeName}/${method.name}`,
          (m: object) => Buffer.from(toBinary(method.input, create(method.input, m as never))),
          (b: Buffer) => fromBinary(method.output, b),
          request as object,
          metadata,
          (err, value) => {
            if (err) reject(new ConnectError(err.details, err.code as number as Code));
            else resolve(value as never);
          },
        );
      });
    },
    close: () => client.close(),
  };
}

/** fetch speaking the Connect protocol with JSON bodies. */
export function connectJsonCaller(baseUrl: string): Caller {
  return {
    name: "connect-json",
    async call(service, name, request, options = {}) {
      const method = methodOf(service, name);
      const headers: Record<string, string> = { "content-type": "application/json" };
      if (options.token) headers.authorization = `Bearer ${options.token}`;
      const body = JSON.stringify(toJson(method.input, create(method.input, request as never)));
      const res = await fetch(`${baseUrl}/${service.typeName}/${method.name}`, {
        method: "POST",
        headers,
        body,
      });
      const json = (await res.json()) as JsonValue & { code?: string; message?: string };
      if (!res.ok) {
        const code = Object.entries(Code).find(
          ([k]) => k.replace(/([a-z])([A-Z])/g, "$1_$2").toLowerCase() === json.code,
        )?.[1] as Code | undefined;
        throw new ConnectError(json.message ?? "", code ?? Code.Unknown);
      }
      return fromJson(method.output, json) as never;
    },
    close: () => {},
  };
}
