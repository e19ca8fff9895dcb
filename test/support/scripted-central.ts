/**
 * A SyncService on a real grpc-js server whose messages the test writes by hand: what a
 * misbehaving or partitioned central would send (changes out of order, replayed, with another
 * history, or silence), which the real central never does. It records every Watch request,
 * Ack and ReportTrip it receives.
 */
import {
  create,
  type DescMessage,
  fromBinary,
  type MessageInitShape,
  toBinary,
} from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import {
  type AckRequest,
  AckRequestSchema,
  AckResponseSchema,
  type PolicyChange,
  PolicyChangeSchema,
  type ReportTripRequest,
  ReportTripRequestSchema,
  ReportTripResponseSchema,
  type WatchRequest,
  WatchRequestSchema,
  WatchResponseSchema,
} from "../../gen/governance/v1/sync_pb.js";
import { changeEntityBytes, revisionDigest } from "../../src/sync/revision-digest.js";

const method = (name: string, input: DescMessage, output: DescMessage, stream: boolean) => ({
  path: `/governance.v1.SyncService/${name}`,
  requestStream: false,
  responseStream: stream,
  requestSerialize: (m: never) => Buffer.from(toBinary(input, m)),
  requestDeserialize: (b: Buffer) => fromBinary(input, b),
  responseSerialize: (m: never) => Buffer.from(toBinary(output, create(output, m))),
  responseDeserialize: (b: Buffer) => fromBinary(output, b),
});

/** The scripted central and what it heard. */
export interface ScriptedCentral {
  address: string;
  watches: WatchRequest[];
  acks: AckRequest[];
  reports: ReportTripRequest[];
  /** The revision ReportTrip answers with next. */
  reportRevision: bigint;
  /** While set, ReportTrip records each report at once and answers once this resolves. */
  reportAnswer?: Promise<void>;
  /** Sends a message on every open Watch stream. */
  send(message: MessageInitShape<typeof WatchResponseSchema>["message"]): void;
  /** Ends every open Watch stream (as a central going away). */
  dropStreams(): void;
  openStreams(): number;
  close(): Promise<void>;
}

/** Starts it on 127.0.0.1:0. */
export async function startScriptedCentral(): Promise<ScriptedCentral> {
  const server = new grpc.Server();
  const streams = new Set<grpc.ServerWritableStream<WatchRequest, unknown>>();
  const central: ScriptedCentral = {
    address: "",
    watches: [],
    acks: [],
    reports: [],
    reportRevision: 100n,
    send(message) {
      for (const s of streams) s.write({ message });
    },
    dropStreams() {
      for (const s of streams) s.end();
      streams.clear();
    },
    openStreams: () => streams.size,
    close: async () => {
      for (const s of streams) s.end();
      // Calls still open (a ReportTrip held by `reportAnswer`) are cut, not waited for.
      server.forceShutdown();
    },
  };
  server.addService(
    {
      Watch: method("Watch", WatchRequestSchema, WatchResponseSchema, true),
      Ack: method("Ack", AckRequestSchema, AckResponseSchema, false),
      ReportTrip: method("ReportTrip", ReportTripRequestSchema, ReportTripResponseSchema, false),
    } as unknown as grpc.ServiceDefinition,
    {
      Watch: (call: grpc.ServerWritableStream<WatchRequest, unknown>) => {
        central.watches.push(call.request);
        streams.add(call);
        call.on("cancelled", () => streams.delete(call));
      },
      Ack: (call: grpc.ServerUnaryCall<AckRequest, unknown>, done: grpc.sendUnaryData<unknown>) => {
        central.acks.push(call.request);
        done(null, {});
      },
      ReportTrip: (
        call: grpc.ServerUnaryCall<ReportTripRequest, unknown>,
        done: grpc.sendUnaryData<unknown>,
      ) => {
        central.reports.push(call.request);
        const revision = central.reportRevision;
        if (central.reportAnswer) void central.reportAnswer.then(() => done(null, { revision }));
        else done(null, { revision });
      },
    },
  );
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  );
  central.address = `127.0.0.1:${port}`;
  return central;
}

/** A change at `revision` chained from `previousDigest`, as central makes it. */
export function chainedChange(
  previousDigest: string,
  revision: bigint,
  entity: MessageInitShape<typeof PolicyChangeSchema>["entity"],
): PolicyChange {
  const change = create(PolicyChangeSchema, { revision, entity });
  change.digest = revisionDigest(previousDigest, changeEntityBytes(change));
  return change;
}
