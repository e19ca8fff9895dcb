/** A grpc-js client of grpc.health.v1 (Check and Watch), over plaintext HTTP/2. */
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { healthProtocol } from "../../src/server/standard/protocols.js";

const health = healthProtocol();
const Req = health.message("HealthCheckRequest");
const Res = health.message("HealthCheckResponse");

/** Check and Watch of one server's health service; statuses as numbers (1 SERVING, 2 NOT_SERVING). */
export function healthClient(address: string) {
  const client = new grpc.Client(address, grpc.credentials.createInsecure());
  const ser = (m: { service: string }) => Buffer.from(toBinary(Req, create(Req, m as never)));
  const de = (b: Buffer) => (fromBinary(Res, b) as unknown as { status: number }).status;
  return {
    client,
    check(service: string): Promise<number> {
      return new Promise((resolve, reject) =>
        client.makeUnaryRequest(
          "/grpc.health.v1.Health/Check",
          ser,
          de,
          { service },
          (err, status) => (err ? reject(err) : resolve(status as number)),
        ),
      );
    },
    watch(service: string) {
      return client.makeServerStreamRequest("/grpc.health.v1.Health/Watch", ser, de, { service });
    },
  };
}
