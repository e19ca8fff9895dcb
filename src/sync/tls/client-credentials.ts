/**
 * How a sidecar's follower connects to central (`govd serve --central ADDR --sidecar-id ID`):
 * the grpc-js channel target and credentials from `--central`, `--central-ca`, `--tls-cert` and
 * `--tls-key`. Over TLS the files are followed (see certificate-files.ts) and grpc-js builds each
 * new connection's TLS context from the set in force at that moment
 * (`experimental.createCertificateProviderChannelCredentials`): a rotated client certificate is
 * used from the next reconnection on, without restarting the sidecar; open connections keep
 * the certificate they were made with.
 */
import { X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { rootCertificates } from "node:tls";
import * as grpc from "@grpc/grpc-js";
import {
  assertCentralAddressAllowed,
  type CentralAddress,
  parseCentralAddress,
} from "./central-address.js";
import { CertificateFiles, type LoadedCertificates } from "./certificate-files.js";
import { sidecarIdOfCertificate, sidecarUri } from "./sidecar-identity.js";

/** The sidecar's flags about central. */
export interface CentralClientOptions {
  /** `--central`: `127.0.0.1:9013` (plaintext, loopback only) or `https://central:9013`. */
  central: string;
  /** `--allow-remote`: also allows plaintext to a non-loopback central (a mesh encrypts it). */
  allowRemote: boolean;
  /** `--sidecar-id`: checked against the client certificate's identity at startup. */
  sidecarId?: string;
  /**
   * `--central-ca`: PEM CA bundle central's certificate is checked against; default Node's
   * bundled roots and the file NODE_EXTRA_CA_CERTS names, as for any Node TLS client.
   */
  centralCaFile?: string;
  /** `--tls-cert` and `--tls-key`: the client certificate (needed when central has `--client-ca`). */
  certFile?: string;
  keyFile?: string;
  /** How often the files are read again; default 5000 ms. */
  refreshIntervalMs?: number;
  onReload?: (loaded: LoadedCertificates) => void;
  onProblem?: (message: string) => void;
}

/**
 * The CAs a Node TLS client trusts by default. grpc-js's certificate-provider credentials need
 * the CA as bytes, so Node's default (its bundled roots, plus NODE_EXTRA_CA_CERTS) is spelled out.
 */
function defaultRoots(): Buffer {
  const extra = process.env.NODE_EXTRA_CA_CERTS;
  let pem = rootCertificates.join("\n");
  if (extra) {
    try {
      pem += `\n${readFileSync(extra, "utf8")}`;
    } catch {
      // Node itself warns at start-up about an unreadable NODE_EXTRA_CA_CERTS.
    }
  }
  return Buffer.from(pem);
}

/** Everything a grpc-js client of central needs; `close()` stops following the files. */
export interface CentralConnection {
  address: CentralAddress;
  /** For `new grpc.Client(target, credentials)`. */
  target: string;
  credentials: grpc.ChannelCredentials;
  /** The followed files over TLS; undefined for plaintext. */
  files?: CertificateFiles;
  close(): void;
}

/**
 * Parses `--central`, applies the plaintext rule, reads and checks the certificate files, and
 * returns the channel target and credentials. Throws an Error naming the flag to change: a
 * plaintext address off loopback without `--allow-remote`, TLS files given for a plaintext
 * address, a certificate without its key, a client certificate for another sidecar id.
 *
 * @example
 * const c = clientCredentials({ central: "https://central:9013", allowRemote: false, sidecarId: "wholesale-1",
 *   centralCaFile: "/etc/govd/central-ca.crt", certFile: "/etc/govd/tls.crt", keyFile: "/etc/govd/tls.key" });
 * const client = new grpc.Client(c.target, c.credentials);
 * // ... on shutdown: client.close(); c.close();
 */
export function clientCredentials(o: CentralClientOptions): CentralConnection {
  const address = parseCentralAddress(o.central);
  assertCentralAddressAllowed(address, o);
  if (!address.tls) {
    const given = [
      o.centralCaFile && "--central-ca",
      o.certFile && "--tls-cert",
      o.keyFile && "--tls-key",
    ].filter((f): f is string => typeof f === "string");
    if (given.length > 0) {
      throw new Error(
        `${given.join(", ")} ${given.length > 1 ? "are" : "is"} for TLS, but --central ${o.central} is plaintext: write it as https://${address.target}`,
      );
    }
    return {
      address,
      target: address.target,
      credentials: grpc.credentials.createInsecure(),
      close: () => undefined,
    };
  }
  const files = new CertificateFiles(
    {
      certFile: o.certFile,
      keyFile: o.keyFile,
      caFile: o.centralCaFile,
      caFlag: "--central-ca",
      refreshIntervalMs: o.refreshIntervalMs,
      onReload: o.onReload,
      onProblem: o.onProblem,
    },
    o.centralCaFile === undefined ? defaultRoots() : undefined,
  );
  const certificate = files.current().certificate;
  if (o.sidecarId !== undefined && certificate !== undefined) {
    const named = sidecarIdOfCertificate({
      subjectaltname: new X509Certificate(certificate).subjectAltName,
    });
    if (named !== o.sidecarId) {
      files.close();
      throw new Error(
        named === undefined
          ? `--tls-cert ${o.certFile} names no sidecar: central would refuse --sidecar-id ${o.sidecarId}; issue it with subjectAltName URI ${sidecarUri(o.sidecarId)}`
          : `--tls-cert ${o.certFile} is for sidecar ${named}, not --sidecar-id ${o.sidecarId}: central would refuse it; pass --sidecar-id ${named} or a certificate for ${sidecarUri(o.sidecarId)}`,
      );
    }
  }
  const credentials = grpc.experimental.createCertificateProviderChannelCredentials(
    files,
    certificate === undefined ? null : files,
  );
  return { address, target: address.target, credentials, files, close: () => files.close() };
}
