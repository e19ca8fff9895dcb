/**
 * TLS for central's ports (`govd central --tls-cert --tls-key [--client-ca]`) and the identity of
 * a call's peer. One set of followed files (certificate-files.ts) serves both ports:
 * - gRPC: grpc-js's `experimental.createCertificateProviderServerCredentials` over those files.
 *   grpc-js calls `setSecureContext` on its http2 server whenever the provider reports a change,
 *   so new connections get the new certificate (and client CA) without a restart; open
 *   connections keep theirs. With `--client-ca` a client certificate from that CA is required
 *   in the handshake (requestCert and rejectUnauthorized).
 * - HTTP (connect-node, probes, /metrics): a node:https server made from the same files, told
 *   about each change with `setSecureContext`. It asks for a client certificate but does not
 *   require one, so kubelet probes and `curl --cacert` work; a SyncService call there without a
 *   verified certificate has no identity and is refused by `assertSidecarIdentity`.
 */
import type * as http from "node:http";
import type * as https from "node:https";
import { type PeerCertificate, TLSSocket, type Server as TlsServer } from "node:tls";
import {
  type ContextValues,
  createContextKey,
  createContextValues,
  type HandlerContext,
} from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { CertificateFiles, type LoadedCertificates } from "../sync/tls/certificate-files.js";
import { assertPlaintextAllowed } from "../sync/tls/plaintext-rule.js";
import { sidecarIdOfCertificate } from "../sync/tls/sidecar-identity.js";

/** `govd central`'s TLS flags. */
export interface ServerTlsOptions {
  /** `--tls-cert`: PEM chain, leaf first, with central's names (DNS and/or IP SANs). */
  certFile: string;
  /** `--tls-key`: its private key. */
  keyFile: string;
  /** `--client-ca`: PEM CA bundle; given, sidecars must present a certificate from it (mTLS). */
  clientCaFile?: string;
  /** How often the files are read again; default 5000 ms. */
  refreshIntervalMs?: number;
  /** Called after a changed, valid set of files took effect (for the log). */
  onReload?: (loaded: LoadedCertificates) => void;
  /** Called once per distinct problem with changed files; the previous set stays in force. */
  onProblem?: (message: string) => void;
}

/** Central's TLS: credentials for the gRPC port, options and reload for the HTTP port. */
export interface ServerTls {
  /** For `bindGrpc(server, address, tls.credentials)`. */
  credentials: grpc.ServerCredentials;
  /** True with `--client-ca`: pass to `assertSidecarIdentity`. */
  mtls: boolean;
  files: CertificateFiles;
  /** node:https server options for the HTTP port, from the files in force now. */
  httpsOptions(): https.ServerOptions;
  /** Makes a node:tls/https server take every reload (`setSecureContext`); returns how to stop. */
  follow(server: TlsServer): () => void;
  /** Stops reading the files (call after the ports closed). */
  close(): void;
}

/**
 * Reads and checks the files (throwing an Error naming the flag when one is unusable) and
 * follows them until `close()`.
 *
 * @example
 * const tls = serverCredentials({ certFile: o.tlsCert, keyFile: o.tlsKey, clientCaFile: o.clientCa,
 *   onReload: (l) => logger.info(l, "TLS certificate reloaded"), onProblem: (m) => logger.error(m) });
 * await bindGrpc(grpcServer, "0.0.0.0:9013", tls.credentials);
 * const httpServer = createHttpServer(bindings, pipeline, { ...options, tls });
 * // ... after both ports closed: tls.close();
 */
export function serverCredentials(o: ServerTlsOptions): ServerTls {
  const files = new CertificateFiles({
    certFile: o.certFile,
    keyFile: o.keyFile,
    caFile: o.clientCaFile,
    caFlag: "--client-ca",
    refreshIntervalMs: o.refreshIntervalMs,
    onReload: o.onReload,
    onProblem: o.onProblem,
  });
  const mtls = o.clientCaFile !== undefined;
  // grpc-js 1.14's declaration names the first parameter the CA provider, but its runtime uses
  // the first as the identity (certificate and key) provider and the second, nullable one as
  // the CA provider (build/src/server-credentials.js); the files are both when mTLS is on.
  const credentials = grpc.experimental.createCertificateProviderServerCredentials(
    files,
    mtls ? files : null,
    mtls,
  );
  return {
    credentials,
    mtls,
    files,
    httpsOptions: () => ({
      ...files.secureContextOptions(),
      requestCert: mtls,
      rejectUnauthorized: false,
    }),
    follow(server) {
      return files.onChange(() => server.setSecureContext(files.secureContextOptions()));
    },
    close: () => files.close(),
  };
}

/** `govd central`'s listening flags, TLS ones optional. */
export interface ListenerTlsOptions extends Partial<ServerTlsOptions> {
  /** The hosts the ports listen on (`--grpc-host`, `--http-host`). */
  hosts: readonly string[];
  /** `--allow-remote`. */
  allowRemote: boolean;
}

/**
 * Central's start-up decision in one call: TLS when `--tls-cert` and `--tls-key` are given
 * (see {@link serverCredentials}); otherwise plaintext, which the plaintext rule allows only on
 * loopback hosts or with `--allow-remote`. Throws an Error naming the flags to change, also for
 * `--client-ca` or a key without a certificate.
 *
 * @example
 * const tls = listenerTls({ hosts: [o.grpcHost, o.httpHost], allowRemote: o.allowRemote,
 *   certFile: o.tlsCert, keyFile: o.tlsKey, clientCaFile: o.clientCa }); // undefined: plaintext
 * await bindGrpc(grpcServer, `${o.grpcHost}:${o.grpcPort}`, tls?.credentials);
 */
export function listenerTls(o: ListenerTlsOptions): ServerTls | undefined {
  const { hosts, allowRemote, certFile, keyFile, ...rest } = o;
  if (certFile !== undefined && keyFile !== undefined) {
    return serverCredentials({ certFile, keyFile, ...rest });
  }
  if (certFile !== undefined || keyFile !== undefined) {
    throw new Error(
      certFile === undefined
        ? `--tls-key ${keyFile} needs --tls-cert, the certificate it belongs to`
        : `--tls-cert ${certFile} needs --tls-key, its private key`,
    );
  }
  if (o.clientCaFile !== undefined) {
    throw new Error(
      `--client-ca ${o.clientCaFile} checks sidecars' certificates over TLS: also give central's own certificate with --tls-cert and --tls-key`,
    );
  }
  for (const host of hosts) {
    assertPlaintextAllowed(host, {
      role: "listen",
      allowRemote,
      tlsFlags: "--tls-cert and --tls-key",
    });
  }
  return undefined;
}

/** Any grpc-js server call (unary, streaming): they all expose the connection's auth context. */
export interface CallWithAuthContext {
  getAuthContext(): { sslPeerCertificate?: PeerCertificate } | null;
}

/**
 * The sidecar id of a gRPC call's verified client certificate (its SAN URI
 * `govd-sidecar://ID`), or undefined: plaintext, no certificate, or none naming one sidecar.
 * Rests on grpc-js's `call.getAuthContext()`, which reports a peer certificate only when the
 * TLS handshake verified it.
 *
 * @example
 * // in central's Watch handler (grpc-js):
 * assertSidecarIdentity(peerIdentity(call), request.sidecarId, { mtls: tls.mtls });
 */
export function peerIdentity(call: CallWithAuthContext): string | undefined {
  return sidecarIdOfCertificate(call.getAuthContext()?.sslPeerCertificate);
}

/**
 * The sidecar id of an HTTP request's verified client certificate, or undefined (plaintext, no
 * certificate, a certificate the client CA did not verify, or none naming one sidecar).
 *
 * @example
 * const id = peerIdentityOfRequest(req); // in a node:https request listener
 */
export function peerIdentityOfRequest(req: http.IncomingMessage): string | undefined {
  const socket = req.socket;
  if (!(socket instanceof TLSSocket) || !socket.authorized) return undefined;
  return sidecarIdOfCertificate(socket.getPeerCertificate());
}

/** Where the HTTP port puts the peer's sidecar id for connect-node handlers. */
export const peerIdentityKey = createContextKey<string | undefined>(undefined, {
  description: "sidecar id of the verified client certificate",
});

/**
 * connect-node's `contextValues` for a request: its peer identity under {@link peerIdentityKey}.
 *
 * @example
 * universalRequestFromNodeRequest(req, res, undefined, peerIdentityValues(req));
 */
export function peerIdentityValues(req: http.IncomingMessage): ContextValues {
  return createContextValues().set(peerIdentityKey, peerIdentityOfRequest(req));
}

/**
 * The sidecar id of a connect-node call on the HTTP port (from {@link peerIdentityValues}).
 *
 * @example
 * // in central's Watch handler (connect-node):
 * assertSidecarIdentity(connectPeerIdentity(ctx), request.sidecarId, { mtls: tls.mtls });
 */
export function connectPeerIdentity(ctx: HandlerContext): string | undefined {
  return ctx.values.get(peerIdentityKey);
}
