/**
 * SyncService.AckStream over real gRPC, on SQLite and on PostgreSQL: acks on one long-lived
 * stream are recorded as the Ack call records them; a refused or malformed message ends the
 * stream with the Ack call's error and changes nothing; the sidecar's client opens a new stream
 * for its next ack; the identity check holds per message; the Connect port does not serve it.
 */
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { describe, expect, it } from "vitest";
import {
  AckStreamRequestSchema,
  AckStreamResponseSchema,
  SyncService,
} from "../gen/governance/v1/sync_pb.js";
import { SyncClient } from "../src/sync/follower/sync-client.js";
import { clientCredentials } from "../src/sync/tls/client-credentials.js";
import {
  grpcCallsAre,
  type RunningCentral,
  startCentral,
  tempSqlite,
  watch,
} from "./support/central.js";
import { centralFixture, SEED_REVISIONS, storeEngines } from "./support/central-fixture.js";
import { eventually } from "./support/eventually.js";

const engines = await storeEngines();

/** A raw AckStream: writes the given messages (bytes as sent), then ends it; resolves the answer. */
function rawAckStream(
  address: string,
  messages: Uint8Array[],
): Promise<{ err: grpc.ServiceError | null; acks?: bigint }> {
  const client = new grpc.Client(address, grpc.credentials.createInsecure());
  return new Promise((resolve) => {
    const call = client.makeClientStreamRequest(
      `/${SyncService.typeName}/AckStream`,
      (b: Uint8Array) => Buffer.from(b),
      (b: Buffer) => fromBinary(AckStreamResponseSchema, b),
      new grpc.Metadata(),
      (err, value) => {
        client.close();
        resolve({ err, acks: value?.acks });
      },
    );
    for (const m of messages) call.write(m);
    call.end();
  });
}

const ackBytes = (sidecarId: string, revision: bigint, digest: string) =>
  toBinary(
    AckStreamRequestSchema,
    create(AckStreamRequestSchema, { ack: { sidecarId, revision, digest } }),
  );

describe.each(engines)("AckStream on $name", (engine) => {
  const { skip } = engine;
  const { start, open, engage } = centralFixture(engine);
  /** Opens a Watch stream for `sidecarId` (closed after the test); its first snapshot. */
  const snapshotFor = async (c: RunningCentral, sidecarId: string) => {
    const snap = await open(c, { sidecarId, engines: ["CAPITAL"] }).next();
    if (snap.message.case !== "snapshot") throw new Error("expected a snapshot");
    return snap.message.value;
  };

  it.skipIf(skip)(
    "records acks in order, refuses what Ack refuses (ending the stream), and counts what it recorded",
    async () => {
      const c = await start();
      const head = await snapshotFor(c, "sc-1");
      const applied = async () =>
        (await c.caller.call(SyncService, "listSidecars", {})).sidecars[0]?.appliedRevision;

      // Two acks on one stream: both recorded, in order; the answer counts them.
      const change = (await engage(c, "stream test")).state?.revision ?? 0n;
      expect(change).toBe(BigInt(SEED_REVISIONS + 1));
      const row = (await c.store.changesAfter(Number(head.revision), 1))[0];
      const ok = await rawAckStream(c.grpcAddress, [
        ackBytes("sc-1", head.revision, head.digest),
        ackBytes("sc-1", change, row?.digest ?? ""),
      ]);
      expect(ok.err).toBeNull();
      expect(ok.acks).toBe(2n);
      expect(await applied()).toBe(change);

      // An older revision, after a good one: the stream ends FAILED_PRECONDITION, as Ack does.
      const older = await rawAckStream(c.grpcAddress, [
        ackBytes("sc-1", head.revision, head.digest),
      ]);
      expect(older.err?.code).toBe(Code.FailedPrecondition);
      expect(older.err?.details).toMatch(/older than revision/);
      // A sidecar without a Watch stream, and a message without an ack: refused, nothing kept.
      const unknown = await rawAckStream(c.grpcAddress, [
        ackBytes("sc-never", head.revision, head.digest),
      ]);
      expect(unknown.err?.code).toBe(Code.FailedPrecondition);
      expect(unknown.err?.details).toMatch(/has no Watch stream/);
      const empty = await rawAckStream(c.grpcAddress, [
        toBinary(AckStreamRequestSchema, create(AckStreamRequestSchema, {})),
      ]);
      expect(empty.err?.code).toBe(Code.InvalidArgument);
      const garbage = await rawAckStream(c.grpcAddress, [new Uint8Array([0xff, 0xff, 0xff])]);
      expect(garbage.err?.code).toBe(Code.InvalidArgument);
      expect(await applied()).toBe(change);
      const view = await c.caller.call(SyncService, "listSidecars", {});
      expect(view.sidecars.map((s) => s.sidecarId)).toEqual(["sc-1"]);
    },
  );

  it.skipIf(skip)(
    "the sidecar's client acks on the stream, and opens a new one after a refusal",
    async () => {
      const c = await start();
      const head = await snapshotFor(c, "sc-2");
      const connection = clientCredentials({ central: c.grpcAddress, allowRemote: false });
      const client = new SyncClient(connection);
      const refused: Error[] = [];
      try {
        client.ackOnStream(
          { sidecarId: "sc-2", revision: head.revision, digest: head.digest },
          (e) => refused.push(e),
        );
        const applied = async () =>
          (await c.caller.call(SyncService, "listSidecars", {})).sidecars[0]?.appliedRevision;
        await eventually("the ack recorded", async () => (await applied()) === head.revision);
        // A digest that is not central's: refused, told, the stream ends.
        client.ackOnStream(
          { sidecarId: "sc-2", revision: head.revision, digest: "0".repeat(64) },
          (e) => refused.push(e),
        );
        await eventually("the refusal told", () => refused.length === 1);
        expect(refused[0]?.message).toMatch(/does not match central's/);
        // The next ack goes on a new stream and is recorded.
        const change = (await engage(c, "after refusal")).state?.revision ?? 0n;
        const row = (await c.store.changesAfter(Number(head.revision), 1))[0];
        client.ackOnStream(
          { sidecarId: "sc-2", revision: change, digest: row?.digest ?? "" },
          (e) => refused.push(e),
        );
        await eventually(
          "the ack on a new stream recorded",
          async () => (await applied()) === change,
        );
        expect(refused).toHaveLength(1);
      } finally {
        client.close();
        connection.close();
      }
    },
  );
});

describe("AckStream when central goes away", () => {
  it("ends the stream UNAVAILABLE at shutdown, and the client sends its newest ack again by the call", async () => {
    const db = tempSqlite();
    const c = await startCentral(db.url);
    const connection = clientCredentials({ central: c.grpcAddress, allowRemote: false });
    const client = new SyncClient(connection);
    const told: { code?: number; revision?: bigint }[] = [];
    try {
      const w = watch(c.grpcAddress, { sidecarId: "sc-3" });
      const snap = await w.next();
      if (snap.message.case !== "snapshot") throw new Error("expected a snapshot");
      const { revision, digest } = snap.message.value;
      client.ackOnStream({ sidecarId: "sc-3", revision, digest }, (err, ack) =>
        told.push({ code: (err as { code?: number }).code, revision: ack.revision }),
      );
      await eventually("the ack recorded", async () => {
        const view = await c.caller.call(SyncService, "listSidecars", {});
        return view.sidecars[0]?.appliedRevision === revision;
      });
      w.cancel();
      // Central shuts down with the ack stream open: the stream ends UNAVAILABLE, the client
      // sends the newest ack again by the Ack call, which cannot reach it either: it says so.
      await c.close();
      await eventually("the failed re-send told", () => told.length === 1, 10_000);
      expect(told[0]).toEqual({ code: Code.Unavailable, revision });
    } finally {
      client.close();
      connection.close();
      await db.drop();
    }
  });
});

describe("AckStream with a sidecar identity check", () => {
  it("refuses a message whose sidecar_id is not the connection's identity", async () => {
    const db = tempSqlite();
    const c = await startCentral(db.url, { identify: grpcCallsAre("sc-cert") });
    try {
      const mine = watch(c.grpcAddress, { sidecarId: "sc-cert" });
      const snap = await mine.next();
      if (snap.message.case !== "snapshot") throw new Error("expected a snapshot");
      mine.cancel();
      const { revision, digest } = snap.message.value;
      const other = await rawAckStream(c.grpcAddress, [ackBytes("sc-other", revision, digest)]);
      expect(other.err?.code).toBe(Code.PermissionDenied);
      expect(other.err?.details).toMatch(/may only speak for itself/);
      const own = await rawAckStream(c.grpcAddress, [ackBytes("sc-cert", revision, digest)]);
      expect(own.err).toBeNull();
      expect(own.acks).toBe(1n);
    } finally {
      await c.close();
      await db.drop();
    }
  });

  it("is not served on the Connect port (HTTP/1.1): sidecars use the gRPC port", async () => {
    const db = tempSqlite();
    const c = await startCentral(db.url);
    try {
      const res = await fetch(`${c.httpUrl}/${SyncService.typeName}/AckStream`, {
        method: "POST",
        headers: { "content-type": "application/connect+json" },
        body: new Uint8Array(0),
      });
      // Connect's streaming protocol ends the stream with the error.
      expect(await res.text()).toMatch(/"code":"unimplemented"/);
    } finally {
      await c.close();
      await db.drop();
    }
  });
});
