/**
 * The plaintext rule, one for every port and every connection: plaintext (h2c, HTTP/1.1 without
 * TLS) is allowed only on loopback, where no other machine can read or forge it, unless the
 * operator says `--allow-remote` (GOVD_ALLOW_REMOTE=1), for instance because a service mesh
 * encrypts the hop. A listener (`govd serve`, `govd central`) and a sidecar connecting to central
 * apply the same rule; only the wording of the refusal differs.
 */

/** True for addresses only this machine can reach (`localhost`, 127.0.0.0/8, `::1`). */
export function isLoopback(host: string): boolean {
  return (
    host === "localhost" || host === "::1" || host === "[::1]" || /^127\.\d+\.\d+\.\d+$/.test(host)
  );
}

/** Which side of a connection the rule is applied to. */
export type PlaintextRole =
  /** A port this process listens on (`--grpc-host`, `--http-host`). */
  | "listen"
  /** The central node a sidecar connects to (`--central`). */
  | "connect";

/** What the rule needs to know besides the host. */
export interface PlaintextChoice {
  role: PlaintextRole;
  /** `--allow-remote` (GOVD_ALLOW_REMOTE=1): the operator accepts plaintext off loopback. */
  allowRemote: boolean;
  /** For a listener that can serve TLS: its flags, named in the refusal ("--tls-cert and --tls-key"). */
  tlsFlags?: string;
}

/**
 * Why plaintext on `host` is refused, or undefined when it is allowed (loopback, or
 * `allowRemote`). Pure: callers decide whether to throw, log or print it.
 *
 * @example
 * const why = plaintextRefusal("0.0.0.0", { role: "listen", allowRemote: false });
 * if (why) throw new Error(why);
 */
export function plaintextRefusal(host: string, o: PlaintextChoice): string | undefined {
  if (isLoopback(host) || o.allowRemote) return undefined;
  if (o.role === "listen") {
    const tls = o.tlsFlags ? `serve TLS there (${o.tlsFlags}), or ` : "";
    return `refusing to listen on ${host} in plaintext: it is not a loopback address; ${tls}pass --allow-remote (GOVD_ALLOW_REMOTE=1) if you mean it`;
  }
  return `refusing to connect to central at ${host} in plaintext: it is not a loopback address; write the address as https://${host.includes(":") ? `[${host}]` : host}:PORT (with --central-ca if central's certificate is not from a public CA), or pass --allow-remote (GOVD_ALLOW_REMOTE=1) if something else encrypts the hop`;
}

/**
 * Throws the refusal of {@link plaintextRefusal} as an Error, or returns when plaintext is allowed.
 *
 * @example
 * for (const host of [o.grpcHost, o.httpHost]) assertPlaintextAllowed(host, { role: "listen", allowRemote: o.allowRemote });
 */
export function assertPlaintextAllowed(host: string, o: PlaintextChoice): void {
  const why = plaintextRefusal(host, o);
  if (why !== undefined) throw new Error(why);
}
