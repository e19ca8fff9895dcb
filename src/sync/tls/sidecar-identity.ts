/**
 * Which sidecar a verified client certificate speaks for. The identity is the certificate's
 * subjectAltName URI `govd-sidecar://ID`, where ID is a sidecar id (`govd serve --sidecar-id`,
 * `^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`). Exactly one such URI makes an identity; none, several,
 * or one with an invalid id make none. The subject's CN is not read: a CA shared with other
 * services (a central or operator certificate, a mesh's workload certificates) issues CNs
 * freely, while a URI in this scheme is an explicit grant. Make one with openssl:
 *
 *     openssl req -new -key wholesale-1.key -subj "/CN=wholesale-1" \
 *       -addext "subjectAltName=URI:govd-sidecar://wholesale-1" ...
 */
import { Code, ConnectError } from "@connectrpc/connect";

/** The scheme of the SAN URI that names a sidecar. */
export const SIDECAR_URI_SCHEME = "govd-sidecar://";

/** What a sidecar id looks like (as WatchRequest.sidecar_id in sync.proto). */
export const SIDECAR_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/**
 * The SAN URI a certificate for sidecar `id` carries.
 *
 * @example
 * sidecarUri("wholesale-1"); // "govd-sidecar://wholesale-1"
 */
export function sidecarUri(id: string): string {
  return `${SIDECAR_URI_SCHEME}${id}`;
}

/**
 * The sidecar id a peer certificate names, from its `subjectaltname` as node:tls reports it
 * ("URI:govd-sidecar://wholesale-1, DNS:pod-7"); undefined when it names none or more than one.
 * Call it only on a certificate the TLS layer verified (see the server's `peerIdentity`).
 *
 * @example
 * sidecarIdOfCertificate(socket.getPeerCertificate()); // "wholesale-1"
 */
export function sidecarIdOfCertificate(
  certificate: { subjectaltname?: string } | undefined,
): string | undefined {
  const ids = new Set<string>();
  // Node quotes (JSON) any entry with a separator or a quote in it; no valid id needs quoting,
  // so a quoted entry can never be a sidecar URI and is skipped by the prefix test.
  for (const entry of (certificate?.subjectaltname ?? "").split(", ")) {
    const uri = entry.startsWith("URI:") ? entry.slice(4) : undefined;
    if (uri === undefined || !uri.startsWith(SIDECAR_URI_SCHEME)) continue;
    ids.add(uri.slice(SIDECAR_URI_SCHEME.length));
  }
  if (ids.size !== 1) return undefined;
  const [id] = [...ids];
  return id !== undefined && SIDECAR_ID_PATTERN.test(id) ? id : undefined;
}

/**
 * The rule central's SyncService handlers apply before a sidecar watches, acks or reports: with
 * mTLS (`govd central --client-ca`), the sidecar_id a call names must be the identity of its
 * verified client certificate. Throws PERMISSION_DENIED, saying what to change, when it is not,
 * or when mTLS is on and the connection has no identity; without mTLS it accepts any id
 * (plaintext on loopback, or TLS without client certificates).
 *
 * @example
 * // in Watch, Ack and ReportTrip, before anything is read or written:
 * assertSidecarIdentity(peerIdentity(call), request.sidecarId, { mtls: central.mtls });
 */
export function assertSidecarIdentity(
  identity: string | undefined,
  sidecarId: string,
  o: { mtls: boolean },
): void {
  if (!o.mtls) return;
  if (identity === undefined) {
    throw new ConnectError(
      `sidecar ${JSON.stringify(sidecarId)} is refused: central requires a client certificate from its --client-ca naming the sidecar (subjectAltName URI ${sidecarUri(sidecarId)}), and this connection presented none, or one without exactly one such name`,
      Code.PermissionDenied,
    );
  }
  if (identity !== sidecarId) {
    throw new ConnectError(
      `sidecar ${JSON.stringify(sidecarId)} is refused: this connection's client certificate is for sidecar ${JSON.stringify(identity)} (${sidecarUri(identity)}); start the sidecar with --sidecar-id ${identity}, or give it a certificate for ${sidecarUri(sidecarId)}`,
      Code.PermissionDenied,
    );
  }
}
