/**
 * TLS and mTLS on a real grpc-js port, with certificates made at test time by openssl: who gets
 * in, which sidecar id each may act as, and certificate files replaced while the server runs.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import * as tls from "node:tls";
import * as grpc from "@grpc/grpc-js";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { listenerTls, type ServerTls, serverCredentials } from "../src/server/tls-credentials.js";
import type { LoadedCertificates } from "../src/sync/tls/certificate-files.js";
import { type CentralConnection, clientCredentials } from "../src/sync/tls/client-credentials.js";
import { grpcAck, startGrpcAck } from "./support/ack-service.js";
import {
  type CertificateWorkshop,
  certificateWorkshop,
  OPENSSL_PACKAGE,
  openSslMissing,
  replaceFile,
  type ThrowawayCa,
} from "./support/throwaway-ca.js";

const missing = openSslMissing();
const required = process.env.GOVD_REQUIRE_OPENSSL === "1";
if (missing && !required) console.warn(missing);

describe("TLS tests: openssl", () => {
  it.runIf(required)(`${OPENSSL_PACKAGE} is installed (GOVD_REQUIRE_OPENSSL=1)`, () => {
    expect(missing, `apt-get install ${OPENSSL_PACKAGE}`).toBeUndefined();
  });
});

/** Resolves with the next value `listen` is called with. */
function next<T>(): { listen: (v: T) => void; value: () => Promise<T> } {
  let waiting: ((v: T) => void) | undefined;
  const queue: T[] = [];
  return {
    listen: (v) => {
      const w = waiting;
      waiting = undefined;
      if (w) w(v);
      else queue.push(v);
    },
    value: () => {
      const v = queue.shift();
      return v !== undefined ? Promise.resolve(v) : new Promise<T>((r) => (waiting = r));
    },
  };
}

/** The serial number of the certificate a new TLS connection to the port is shown. */
function servedSerial(port: number, ca: Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect(
      { host: "127.0.0.1", port, ca, servername: "localhost", ALPNProtocols: ["h2"] },
      () => {
        const serial = socket.getPeerCertificate().serialNumber;
        socket.destroy();
        resolve(serial);
      },
    );
    socket.once("error", reject);
  });
}

describe.skipIf(missing !== undefined)("gRPC port with TLS (openssl certificates)", () => {
  let shop: CertificateWorkshop;
  let fleet: ThrowawayCa;
  let other: ThrowawayCa;
  const open: { close(): void }[] = [];
  const servers: { stop(): Promise<void> }[] = [];

  beforeAll(() => {
    shop = certificateWorkshop();
    fleet = shop.ca("fleet");
    other = shop.ca("other");
    fleet.issueServer("central");
    fleet.issueSidecar("wholesale-1");
    fleet.issueSidecar("capital-1");
    other.issueSidecar("wholesale-1", "intruder-wholesale-1");
    fleet.issue("no-identity", { commonName: "wholesale-1", usage: ["clientAuth"] });
  });
  afterEach(async () => {
    for (const s of servers.splice(0)) await s.stop();
    for (const o of open.splice(0)) o.close();
  });
  afterAll(() => shop.remove());

  const file = (name: string) => join(shop.dir, name);

  async function central(
    o: { mtls: boolean; caFile?: string } & Partial<Parameters<typeof serverCredentials>[0]>,
  ) {
    const { mtls, caFile, ...rest } = o;
    const t: ServerTls = serverCredentials({
      certFile: file("central.crt"),
      keyFile: file("central.key"),
      clientCaFile: mtls ? (caFile ?? fleet.caFile) : undefined,
      ...rest,
    });
    open.push(t);
    const server = await startGrpcAck(t);
    servers.push(server);
    return server;
  }

  function sidecar(
    port: number,
    certName?: string,
    extra: Partial<Parameters<typeof clientCredentials>[0]> = {},
  ): CentralConnection {
    const c = clientCredentials({
      central: `https://127.0.0.1:${port}`,
      allowRemote: false,
      centralCaFile: fleet.caFile,
      certFile: certName && file(`${certName}.crt`),
      keyFile: certName && file(`${certName}.key`),
      ...extra,
    });
    open.push(c);
    return c;
  }

  it("serves TLS that a client trusting the CA reaches; without mTLS any sidecar id is accepted", async () => {
    const s = await central({ mtls: false });
    expect(await grpcAck(sidecar(s.port), "wholesale-1", 3n)).toEqual({});
    expect(s.acks.get("wholesale-1")).toBe(3n);
    expect(s.identities).toEqual([undefined]);
    // A client trusting only the system's roots does not trust the throwaway CA.
    const untrusting = sidecar(s.port, undefined, { centralCaFile: undefined });
    expect((await grpcAck(untrusting, "capital-1")).code).toBe(grpc.status.UNAVAILABLE);
    expect([...s.acks.keys()]).toEqual(["wholesale-1"]);
  });

  it("with mTLS, lets a sidecar act as the id in its certificate, and peerIdentity returns that id", async () => {
    const s = await central({ mtls: true });
    expect(await grpcAck(sidecar(s.port, "sidecar-wholesale-1"), "wholesale-1", 7n)).toEqual({});
    expect(s.identities).toEqual(["wholesale-1"]);
    expect(s.acks).toEqual(new Map([["wholesale-1", 7n]]));
  });

  it("with mTLS, refuses a sidecar without a certificate, or with one from another CA, and writes nothing", async () => {
    const s = await central({ mtls: true });
    const bare = await grpcAck(sidecar(s.port), "wholesale-1");
    const foreign = await grpcAck(sidecar(s.port, "intruder-wholesale-1"), "wholesale-1");
    expect(bare.code).toBe(grpc.status.UNAVAILABLE);
    expect(foreign.code).toBe(grpc.status.UNAVAILABLE);
    // Refused in the handshake: the handler never ran.
    expect(s.identities).toEqual([]);
    expect(s.acks.size).toBe(0);
  });

  it("with mTLS, refuses a sidecar claiming another sidecar's id, or a certificate naming none, and writes nothing", async () => {
    const s = await central({ mtls: true });
    const claim = await grpcAck(sidecar(s.port, "sidecar-wholesale-1"), "capital-1");
    expect(claim.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(claim.details).toMatch(
      /certificate is for sidecar "wholesale-1".*--sidecar-id wholesale-1/,
    );
    const nameless = await grpcAck(sidecar(s.port, "no-identity"), "wholesale-1");
    expect(nameless.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(nameless.details).toMatch(/govd-sidecar:\/\/wholesale-1/);
    expect(s.identities).toEqual(["wholesale-1", undefined]);
    expect(s.acks.size).toBe(0);
  });

  it("lets central listen off loopback with TLS, and refuses a key that is not the certificate's at startup", () => {
    const t = listenerTls({
      hosts: ["0.0.0.0"],
      allowRemote: false,
      certFile: file("central.crt"),
      keyFile: file("central.key"),
      clientCaFile: fleet.caFile,
    });
    expect(t?.mtls).toBe(true);
    t?.close();
    expect(() =>
      serverCredentials({ certFile: file("central.crt"), keyFile: file("sidecar-capital-1.key") }),
    ).toThrow(
      /--tls-key .*sidecar-capital-1\.key is not the private key of --tls-cert .*central\.crt/,
    );
    // node:tls would take a CA bundle cut short without a word.
    const torn = file("torn-ca.crt");
    writeFileSync(torn, Buffer.concat([other.ca, fleet.ca.subarray(0, 200)]));
    expect(() =>
      serverCredentials({
        certFile: file("central.crt"),
        keyFile: file("central.key"),
        clientCaFile: torn,
      }),
    ).toThrow(
      /--client-ca .*torn-ca\.crt is not a PEM CA bundle: it ends inside certificate 2 of 2/,
    );
  });

  it("refuses at startup a client certificate for another id than --sidecar-id", () => {
    expect(() => sidecar(1, "sidecar-wholesale-1", { sidecarId: "capital-1" })).toThrow(
      /is for sidecar wholesale-1, not --sidecar-id capital-1/,
    );
  });

  it("serves a replaced certificate to new connections without a restart, and keeps the old one while the new key does not match", async () => {
    const reloads = next<LoadedCertificates>();
    const problems = next<string>();
    const first = fleet.issueServer("rotating", "central-1");
    const s = await central({
      mtls: true,
      certFile: first.certFile,
      keyFile: first.keyFile,
      refreshIntervalMs: 10,
      onReload: reloads.listen,
      onProblem: problems.listen,
    });
    expect(await servedSerial(s.port, fleet.ca)).toBe(first.serialNumber);
    // A torn rotation: a key that is not the certificate's.
    replaceFile(file("central.key"), first.keyFile);
    expect(await problems.value()).toMatch(
      /--tls-key .*rotating\.key is not the private key of --tls-cert/,
    );
    expect(await servedSerial(s.port, fleet.ca)).toBe(first.serialNumber);
    const second = fleet.issueServer("rotating", "central-2");
    expect((await reloads.value()).serialNumber).toBe(second.serialNumber);
    expect(await servedSerial(s.port, fleet.ca)).toBe(second.serialNumber);
    expect(await grpcAck(sidecar(s.port, "sidecar-wholesale-1"), "wholesale-1")).toEqual({});
    // The new certificate did not loosen mTLS.
    expect((await grpcAck(sidecar(s.port), "wholesale-1")).code).toBe(grpc.status.UNAVAILABLE);
  });

  it("follows a replaced client CA: sidecars of the new CA get in, those of the old one no longer do", async () => {
    const reloads = next<LoadedCertificates>();
    const clientCa = file("client-ca.crt");
    replaceFile(fleet.caFile, clientCa);
    const s = await central({
      mtls: true,
      caFile: clientCa,
      refreshIntervalMs: 10,
      onReload: reloads.listen,
    });
    expect(await grpcAck(sidecar(s.port, "intruder-wholesale-1"), "wholesale-1")).toMatchObject({
      code: grpc.status.UNAVAILABLE,
    });
    replaceFile(other.caFile, clientCa);
    await reloads.value();
    expect(await grpcAck(sidecar(s.port, "intruder-wholesale-1"), "wholesale-1", 2n)).toEqual({});
    expect(await grpcAck(sidecar(s.port, "sidecar-capital-1"), "capital-1")).toMatchObject({
      code: grpc.status.UNAVAILABLE,
    });
    expect(s.acks).toEqual(new Map([["wholesale-1", 2n]]));
  });

  it("a sidecar's new connections present its replaced client certificate", async () => {
    const reloads = next<LoadedCertificates>();
    fleet.issueSidecar("wholesale-1", "rotating-sidecar");
    const s = await central({ mtls: true });
    const c = sidecar(s.port, "rotating-sidecar", {
      refreshIntervalMs: 10,
      onReload: reloads.listen,
    });
    expect(await grpcAck(c, "wholesale-1")).toEqual({});
    const renewed = fleet.issueSidecar("wholesale-2", "rotating-sidecar");
    expect((await reloads.value()).serialNumber).toBe(renewed.serialNumber);
    expect(await grpcAck(c, "wholesale-2")).toEqual({});
    expect(s.identities).toEqual(["wholesale-1", "wholesale-2"]);
  });
});
