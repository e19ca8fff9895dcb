/**
 * govctl's connection to a govd node (a sidecar today, a central node later): grpc-js over
 * plaintext HTTP/2, the operator token for admin writes, and failures turned into one-line
 * errors with the exit code a script can rely on.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import {
  create,
  type DescMethodUnary,
  type DescService,
  fromBinary,
  type MessageInitShape,
  type MessageShape,
  toBinary,
} from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { type CentralConnection, clientCredentials } from "../../sync/tls/client-credentials.js";

/** govctl's exit codes. */
export const Exit = {
  OK: 0,
  /** The node refused the call or failed it (invalid value, precondition, internal error). */
  FAILED: 1,
  /** The command line is wrong (unknown command, missing or malformed option). */
  USAGE: 2,
  /** No govd answers at --addr. */
  UNREACHABLE: 3,
  /** No operator token, or the node rejected it. */
  UNAUTHENTICATED: 4,
  /** `govctl review`: at least one section needs attention. */
  ATTENTION: 5,
} as const;

/** An error govctl reports as one line, exiting with `exitCode`. */
export class GovctlError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}

/** Where to reach govd and how to find the operator token. */
export interface ConnectionOptions {
  addr: string;
  dataDir: string;
  tokenFile?: string;
  timeoutMs: number;
  /** TLS (`--addr https://...`): the CA the node's certificate is checked against. */
  centralCaFile?: string;
  /** A client certificate and its key, for a node that asks for one (central with --client-ca). */
  certFile?: string;
  keyFile?: string;
}

/** Reads the operator token: --token-file, else GOVD_ADMIN_TOKEN, else <data-dir>/admin.token. */
export function readToken(o: ConnectionOptions): string {
  const fromFile = (file: string, hint: string) => {
    if (!existsSync(file)) {
      throw new GovctlError(
        `no operator token: ${file} does not exist (${hint})`,
        Exit.UNAUTHENTICATED,
      );
    }
    const token = readFileSync(file, "utf8").trim();
    if (token === "")
      throw new GovctlError(`no operator token: ${file} is empty`, Exit.UNAUTHENTICATED);
    return token;
  };
  if (o.tokenFile) return fromFile(o.tokenFile, "check --token-file");
  const env = process.env.GOVD_ADMIN_TOKEN?.trim();
  if (env) return env;
  return fromFile(
    join(o.dataDir, "admin.token"),
    "pass --data-dir or GOVD_DATA_DIR of the sidecar, --token-file, or set GOVD_ADMIN_TOKEN",
  );
}

type Input<S extends DescService, K extends keyof S["method"]> =
  S["method"][K] extends DescMethodUnary<infer I, infer _O> ? MessageInitShape<I> : never;
type Output<S extends DescService, K extends keyof S["method"]> =
  S["method"][K] extends DescMethodUnary<infer _I, infer O> ? MessageShape<O> : never;

/** A govd admin client: unary calls by service descriptor and method name. */
export class GovdClient {
  private readonly client: grpc.Client;
  private readonly connection: CentralConnection;
  private connected = false;

  constructor(private readonly o: ConnectionOptions) {
    // An operator's tool may reach a node anywhere; TLS when --addr starts with https://.
    try {
      this.connection = clientCredentials({
        central: o.addr,
        allowRemote: true,
        centralCaFile: o.centralCaFile,
        certFile: o.certFile,
        keyFile: o.keyFile,
      });
    } catch (err) {
      throw new GovctlError((err as Error).message.replace(/--central\b/g, "--addr"), Exit.USAGE);
    }
    this.client = new grpc.Client(this.connection.target, this.connection.credentials);
  }

  private async connect(): Promise<void> {
    if (this.connected) return;
    await new Promise<void>((resolve, reject) =>
      this.client.waitForReady(Date.now() + this.o.timeoutMs, (err) =>
        err
          ? reject(
              new GovctlError(
                `server unreachable: no govd answers at ${this.o.addr} (is the sidecar running? check --addr)`,
                Exit.UNREACHABLE,
              ),
            )
          : resolve(),
      ),
    );
    this.connected = true;
  }

  /**
   * Every policy of a lever: ListPolicies answers in pages that stay under the message limit,
   * so this reads on with each page's next_page_token until the last.
   */
  async listAllPolicies<S extends DescService & { method: { listPolicies: DescMethodUnary } }>(
    service: S,
  ): Promise<Output<S, "listPolicies">> {
    type Page = { policies: unknown[]; nextPageToken: string };
    const list = (pageToken: string) =>
      this.call(service, "listPolicies", { pageToken } as never) as unknown as Promise<Page>;
    const first = await list("");
    for (let token = first.nextPageToken; token !== ""; ) {
      const more = await list(token);
      first.policies.push(...more.policies);
      token = more.nextPageToken;
    }
    first.nextPageToken = "";
    return first as unknown as Output<S, "listPolicies">;
  }

  /** Calls `service.method`; `admin` sends the operator token. */
  async call<S extends DescService, K extends keyof S["method"] & string>(
    service: S,
    name: K,
    request: Input<S, K>,
    admin = false,
    timeoutMs = this.o.timeoutMs,
  ): Promise<Output<S, K>> {
    const method = service.method[name] as unknown as DescMethodUnary;
    const metadata = new grpc.Metadata();
    if (admin) metadata.set("authorization", `Bearer ${readToken(this.o)}`);
    await this.connect();
    return new Promise((resolve, reject) => {
      this.client.makeUnaryRequest(
        `/${service.typeName}/${method.name}`,
        (m: object) => Buffer.from(toBinary(method.input, create(method.input, m as never))),
        (b: Buffer) => fromBinary(method.output, b),
        request as object,
        metadata,
        { deadline: Date.now() + timeoutMs },
        (err, value) => (err ? reject(this.explain(err, method)) : resolve(value as never)),
      );
    });
  }

  private explain(err: grpc.ServiceError, method: DescMethodUnary): GovctlError {
    const code = grpc.status[err.code] ?? String(err.code);
    if (err.code === grpc.status.UNAUTHENTICATED) {
      return new GovctlError(
        `not authenticated: ${this.o.addr} rejected the operator token (use the sidecar's <data-dir>/admin.token: --data-dir, --token-file or GOVD_ADMIN_TOKEN)`,
        Exit.UNAUTHENTICATED,
      );
    }
    if (err.code === grpc.status.UNAVAILABLE && /connect|No connection/i.test(err.details)) {
      return new GovctlError(
        `server unreachable: ${this.o.addr}: ${err.details}`,
        Exit.UNREACHABLE,
      );
    }
    const what = err.code === grpc.status.INVALID_ARGUMENT ? "invalid value" : "refused";
    return new GovctlError(`${method.name} ${what} (${code}): ${err.details}`, Exit.FAILED);
  }

  /** Closes the connection. */
  close(): void {
    this.client.close();
    this.connection.close();
  }
}
