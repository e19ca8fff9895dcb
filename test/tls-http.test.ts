/**
 * The HTTP port over HTTPS (connect-node on node:https) with certificates made at test time by
 * openssl: probes and Connect calls reach it as `curl --cacert` would, a connect-node handler
 * finds the peer's sidecar id, and a replaced certificate reaches new connections.
 */
import * as https from "node:https";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import type { TLSSocket } from "node:tls";
import { pino } from "pino";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { ManualClock } from "../src/clock.js";
import { createLeverContext } from "../src/levers/context.js";
import { goLiveService } from "../src/levers/golive/service.js";
import { CallPipeline } from "../src/server/call-pipeline.js";
import { createHttpServer } from "../src/server/http-server.js";
import { OperatorToken } from "../src/server/operator-token.js";
import { OpenStreams } from "../src/server/server-streams.js";
import { type ServerTls, serverCredentials } from "../src/server/tls-credentials.js";
import type { LoadedCertificates } from "../src/sync/tls/certificate-files.js";
import { startHttpsAck } from "./support/ack-service.js";
import { openTempStore, type TempStore } from "./support/temp-store.js";
import {
  type CertificateWorkshop,
  certificateWorkshop,
  openSslMissing,
  type ThrowawayCa,
} from "./support/throwaway-ca.js";

// The one-line notice and the GOVD_REQUIRE_OPENSSL check are in tls-grpc.test.ts.
const missing = openSslMissing();

interface Answer {
  status: number;
  body: string;
  /** The serial number of the certificate the server showed. */
  serial: string;
}

/** One request on a new connection, trusting `ca`, with a client certificate when given. */
function request(
  port: number,
  path: string,
  o: { ca: Buffer; cert?: Buffer; key?: Buffer; json?: unknown },
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const body = o.json === undefined ? undefined : JSON.stringify(o.json);
    const req = https.request(
      {
        host: "127.0.0.1",
        port,
        path,
        method: body === undefined ? "GET" : "POST",
        headers: body === undefined ? {} : { "content-type": "application/json" },
        ca: o.ca,
        cert: o.cert,
        key: o.key,
        agent: false,
      },
      (res) => {
        const serial = (res.socket as TLSSocket).getPeerCertificate().serialNumber;
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => {
          text += chunk;
        });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: text, serial }));
      },
    );
    req.once("error", reject);
    req.end(body);
  });
}

describe.skipIf(missing !== undefined)("HTTP port over HTTPS (openssl certificates)", () => {
  let shop: CertificateWorkshop;
  let fleet: ThrowawayCa;
  let other: ThrowawayCa;
  let store: TempStore;
  const cleanups: (() => Promise<void> | void)[] = [];

  beforeAll(() => {
    shop = certificateWorkshop();
    fleet = shop.ca("fleet");
    other = shop.ca("other");
    fleet.issueServer("central");
    store = openTempStore();
  });
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });
  afterAll(() => {
    store.remove();
    shop.remove();
  });

  function centralTls(extra: Partial<Parameters<typeof serverCredentials>[0]> = {}): ServerTls {
    const t = serverCredentials({
      certFile: join(shop.dir, "central.crt"),
      keyFile: join(shop.dir, "central.key"),
      clientCaFile: fleet.caFile,
      ...extra,
    });
    cleanups.push(() => t.close());
    return t;
  }

  it("serves the probes and Connect JSON over HTTPS to a client without a certificate (kubelet, curl --cacert)", async () => {
    const clock = new ManualClock(Date.UTC(2026, 2, 2, 10));
    const binding = goLiveService(createLeverContext(store.db, clock));
    const pipeline = new CallPipeline({
      db: store.db,
      clock,
      token: new OperatorToken("test-operator-token"),
      logger: pino({ level: "silent" }),
      storeFile: store.db.name,
    });
    const server = createHttpServer([binding], pipeline, {
      maxMessageBytes: 1 << 20,
      notReadyBecause: () => undefined,
      idleTimeoutMs: 5_000,
      streams: new OpenStreams(),
      tls: centralTls(),
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const port = (server.address() as AddressInfo).port;
    expect(await request(port, "/healthz", { ca: fleet.ca })).toMatchObject({
      status: 200,
      body: "ok\n",
    });
    const state = await request(port, "/governance.v1.GoLiveService/GetState", {
      ca: fleet.ca,
      json: {},
    });
    expect(state.status).toBe(200);
    expect(JSON.parse(state.body)).toMatchObject({ state: { goLiveEnabled: false } });
  });

  it("gives connect-node handlers the sidecar id of a verified certificate, and none to others", async () => {
    const s = await startHttpsAck(centralTls());
    cleanups.push(() => s.stop());
    const own = fleet.issueSidecar("wholesale-1");
    const foreign = other.issueSidecar("wholesale-1", "intruder");
    const ack = (sidecarId: string, c?: { cert: Buffer; key: Buffer }) =>
      request(s.port, "/governance.v1.SyncService/Ack", {
        ca: fleet.ca,
        ...c,
        json: { sidecarId, revision: "4" },
      });

    expect((await ack("wholesale-1", own)).status).toBe(200);
    const claim = await ack("capital-1", own);
    const bare = await ack("wholesale-1");
    const intruder = await ack("wholesale-1", foreign);
    for (const refused of [claim, bare, intruder]) {
      expect(refused.status).toBe(403);
      expect(JSON.parse(refused.body)).toMatchObject({ code: "permission_denied" });
    }
    expect(JSON.parse(claim.body).message).toMatch(/certificate is for sidecar "wholesale-1"/);
    expect(s.identities).toEqual(["wholesale-1", "wholesale-1", undefined, undefined]);
    expect(s.acks).toEqual(new Map([["wholesale-1", 4n]]));
  });

  it("shows new connections a replaced certificate without a restart", async () => {
    let reloaded: (l: LoadedCertificates) => void = () => undefined;
    const reload = new Promise<LoadedCertificates>((resolve) => {
      reloaded = resolve;
    });
    const first = fleet.issueServer("rotating-http", "central-1");
    const s = await startHttpsAck(
      centralTls({
        certFile: first.certFile,
        keyFile: first.keyFile,
        refreshIntervalMs: 10,
        onReload: (l) => reloaded(l),
      }),
    );
    cleanups.push(() => s.stop());
    expect((await request(s.port, "/", { ca: fleet.ca })).serial).toBe(first.serialNumber);
    const second = fleet.issueServer("rotating-http", "central-2");
    expect((await reload).serialNumber).toBe(second.serialNumber);
    expect((await request(s.port, "/", { ca: fleet.ca })).serial).toBe(second.serialNumber);
  });
});
