/**
 * The runtime's ceiling: a bare node:http2 server that reads each request body and answers a
 * fixed gRPC response with the same framing as the sidecar (headers, one length-prefixed message,
 * grpc-status 0 in trailers). Run as its own process; prints {"port": N} once listening.
 * With `--grpc-js`, a grpc-js server with one method answering the same fixed bytes instead
 * (what the sidecar's gRPC library costs before any govd code runs).
 */

import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { create, toBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { CheckGoLiveResponseSchema } from "../gen/governance/v1/golive_pb.js";
import { grpcFrame } from "./stats.js";

/** The fixed answer: an allowed CheckGoLive response, as the sidecar would send it. */
export const FIXED_RESPONSE = toBinary(
  CheckGoLiveResponseSchema,
  create(CheckGoLiveResponseSchema, {
    allowed: true,
    policyRevision: 12n,
    goLiveEnabled: true,
  }),
);

function bareHttp2(): Promise<number> {
  const frame = grpcFrame(FIXED_RESPONSE);
  const server = http2.createServer();
  server.on("stream", (stream) => {
    stream.on("data", () => {});
    stream.on("end", () => {
      stream.respond(
        { ":status": 200, "content-type": "application/grpc" },
        { waitForTrailers: true },
      );
      stream.on("wantTrailers", () =>
        stream.sendTrailers({ "grpc-status": "0", "grpc-message": "" }),
      );
      stream.end(frame);
    });
  });
  return new Promise((resolve) => {
    server.listen(0, "127.0.0.1", () => resolve((server.address() as AddressInfo).port));
  });
}

function grpcJsEcho(): Promise<number> {
  // As govd's own gRPC port (src/server/grpc-server.ts): no channelz records, which nothing reads.
  const server = new grpc.Server({ "grpc.enable_channelz": 0 });
  const identity = (b: Buffer) => b;
  const response = Buffer.from(FIXED_RESPONSE);
  server.addService(
    {
      checkGoLive: {
        path: "/governance.v1.GoLiveService/CheckGoLive",
        requestStream: false,
        responseStream: false,
        requestSerialize: identity,
        requestDeserialize: identity,
        responseSerialize: identity,
        responseDeserialize: identity,
      },
    },
    {
      checkGoLive: (_call: unknown, callback: grpc.sendUnaryData<Buffer>) =>
        callback(null, response),
    },
  );
  return new Promise((resolve, reject) => {
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, port) =>
      err ? reject(err) : resolve(port),
    );
  });
}

const port = await (process.argv.includes("--grpc-js") ? grpcJsEcho() : bareHttp2());
process.stdout.write(`${JSON.stringify({ port })}\n`);
process.on("SIGTERM", () => process.exit(0));
