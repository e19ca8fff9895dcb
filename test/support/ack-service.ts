/**
 * SyncService.Ack served the way central guards it, on a real grpc-js port and a real node:https
 * port with connect-node: the handler takes the peer's identity, applies assertSidecarIdentity
 * before anything is written, and records the ack in a table the tests read. Enough of central
 * to show the security layer refusing, and changing nothing when it refuses.
 */
import * as https from "node:https";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { ConnectError } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import {
  type AckRequest,
  AckRequestSchema,
  type AckResponse,
  AckResponseSchema,
  SyncService,
} from "../../gen/governance/v1/sync_pb.js";
import { connectListener } from "../../src/server/connect-adapter.js";
import { bindGrpc } from "../../src/server/grpc-server.js";
import {
  connectPeerIdentity,
  peerIdentity,
  peerIdentityValues,
  type ServerTls,
} from "../../src/server/tls-credentials.js";
import type { CentralConnection } from "../../src/sync/tls/client-credentials.js";
import { assertSidecarIdentity } from "../../src/sync/tls/sidecar-identity.js";

const ACK_PATH = `/${SyncService.typeName}/${SyncService.method.ack.name}`;

/** What the guarded Ack saw and wrote. */
export interface AckTable {
  /** sidecar id -> last acked revision: written only by calls the rule let through. */
  acks: Map<string, bigint>;
  /** The peer identity of every call that reached the handler, in order. */
  identities: (string | undefined)[];
}

/** The guarded handler, shared by both ports. */
function guardedAck(table: AckTable, mtls: boolean, identity: string | undefined, r: AckRequest) {
  table.identities.push(identity);
  assertSidecarIdentity(identity, r.sidecarId, { mtls });
  table.acks.set(r.sidecarId, r.revision);
  return create(AckResponseSchema);
}

/** A grpc-js server with the guarded Ack on 127.0.0.1, TLS when `tls` is given. */
export async function startGrpcAck(
  tls: ServerTls | undefined,
): Promise<AckTable & { port: number; stop(): Promise<void> }> {
  const table: AckTable = { acks: new Map(), identities: [] };
  const server = new grpc.Server();
  server.addService(
    {
      ack: {
        path: ACK_PATH,
        requestStream: false,
        responseStream: false,
        requestSerialize: (m: AckRequest) => Buffer.from(toBinary(AckRequestSchema, m)),
        requestDeserialize: (b: Buffer) => fromBinary(AckRequestSchema, b),
        responseSerialize: (m: AckResponse) => Buffer.from(toBinary(AckResponseSchema, m)),
        responseDeserialize: (b: Buffer) => fromBinary(AckResponseSchema, b),
      },
    },
    {
      ack: (
        call: grpc.ServerUnaryCall<AckRequest, AckResponse>,
        done: grpc.sendUnaryData<AckResponse>,
      ) => {
        try {
          done(null, guardedAck(table, tls?.mtls ?? false, peerIdentity(call), call.request));
        } catch (err) {
          const e = ConnectError.from(err);
          done({ code: e.code as number, details: e.rawMessage });
        }
      },
    },
  );
  const port = await bindGrpc(server, "127.0.0.1:0", tls?.credentials);
  return {
    ...table,
    port,
    stop: () => new Promise<void>((resolve) => server.tryShutdown(() => resolve())),
  };
}

/** A node:https server (connect-node) with the guarded Ack on 127.0.0.1, following `tls`. */
export async function startHttpsAck(
  tls: ServerTls,
): Promise<AckTable & { port: number; server: https.Server; stop(): Promise<void> }> {
  const table: AckTable = { acks: new Map(), identities: [] };
  const listener = connectListener({
    routes: (router) =>
      router.service(SyncService, {
        ack: (req, ctx) => guardedAck(table, tls.mtls, connectPeerIdentity(ctx), req),
      }),
    contextValues: peerIdentityValues,
  });
  const server = https.createServer(tls.httpsOptions(), listener);
  const unfollow = tls.follow(server);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  return {
    ...table,
    port: typeof address === "object" && address ? address.port : 0,
    server,
    stop: () =>
      new Promise<void>((resolve) => {
        unfollow();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** The outcome of one call: ok, or the gRPC status code and details. */
export interface CallOutcome {
  code?: grpc.status;
  details?: string;
}

/** One Ack as `sidecarId` over a new channel (its own connection), closed after the answer. */
export function grpcAck(
  conn: CentralConnection,
  sidecarId: string,
  revision = 1n,
): Promise<CallOutcome> {
  const client = new grpc.Client(conn.target, conn.credentials, {
    // A connection of its own, never one another test's channel made with older files.
    "grpc.use_local_subchannel_pool": 1,
  });
  return new Promise((resolve) => {
    client.makeUnaryRequest(
      ACK_PATH,
      (m: AckRequest) => Buffer.from(toBinary(AckRequestSchema, m)),
      (b: Buffer) => fromBinary(AckResponseSchema, b),
      create(AckRequestSchema, { sidecarId, revision }),
      (err) => {
        client.close();
        resolve(err ? { code: err.code, details: err.details } : {});
      },
    );
  });
}
