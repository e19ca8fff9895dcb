/**
 * The address a sidecar follows central at (`govd serve --central ADDR`): `host:port` is plaintext
 * (h2c), allowed only on loopback unless `--allow-remote`; `https://host:port` is TLS. The port is
 * always written out: central's default is 9013, not https' 443, and guessing either would hide a
 * typo.
 */
import { isIP } from "node:net";
import { isLoopback, plaintextRefusal } from "./plaintext-rule.js";

/** A parsed `--central` address. */
export interface CentralAddress {
  /** True for `https://`: the sidecar connects with TLS. */
  tls: boolean;
  /** The host as written, without brackets ("central.internal", "127.0.0.1", "::1"). */
  host: string;
  port: number;
  /** The grpc-js channel target ("central.internal:9013", "[::1]:9013"). */
  target: string;
  /** True when only this machine can be reached at `host`. */
  loopback: boolean;
}

function invalid(addr: string, why: string): Error {
  return new Error(
    `--central ${JSON.stringify(addr)} is not a central address: ${why}; write host:port for plaintext on loopback (127.0.0.1:9013) or https://host:port for TLS (https://central.internal:9013)`,
  );
}

/**
 * Parses `--central`. Throws an Error naming the flag and the accepted forms when it is none of
 * them; does not apply the plaintext rule (see {@link assertCentralAddressAllowed}).
 *
 * @example
 * parseCentralAddress("https://central.internal:9013"); // { tls: true, host: "central.internal", port: 9013, target: "central.internal:9013", loopback: false }
 * parseCentralAddress("127.0.0.1:9013");                // { tls: false, ..., loopback: true }
 */
export function parseCentralAddress(addr: string): CentralAddress {
  const text = addr.trim();
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(text)?.[1]?.toLowerCase();
  if (scheme !== undefined && scheme !== "https" && scheme !== "http") {
    throw invalid(addr, `the scheme ${scheme}:// is not served (only https:// or none)`);
  }
  const rest = scheme === undefined ? text : text.slice(scheme.length + 3);
  const m = /^(\[[^\]]+\]|[^:/[\]]+):(\d{1,5})\/?$/.exec(rest);
  if (!m) {
    const path = rest.indexOf("/");
    if (path >= 0 && path < rest.length - 1) throw invalid(addr, "it has a path");
    throw invalid(addr, "it needs a host and a port");
  }
  const bracketed = (m[1] as string).startsWith("[");
  const host = bracketed ? (m[1] as string).slice(1, -1) : (m[1] as string);
  if (bracketed && isIP(host) !== 6) throw invalid(addr, `${host} is not an IPv6 address`);
  const port = Number(m[2]);
  if (port < 1 || port > 65535) throw invalid(addr, `port ${port} is outside 1-65535`);
  return {
    tls: scheme === "https",
    host,
    port,
    target: `${isIP(host) === 6 ? `[${host}]` : host}:${port}`,
    loopback: isLoopback(host),
  };
}

/**
 * Applies the plaintext rule to a parsed address: a plaintext (`host:port` or `http://`) address
 * off loopback throws, unless `allowRemote`. TLS addresses always pass.
 *
 * @example
 * const central = parseCentralAddress(o.central);
 * assertCentralAddressAllowed(central, { allowRemote: o.allowRemote });
 */
export function assertCentralAddressAllowed(
  address: CentralAddress,
  o: { allowRemote: boolean },
): void {
  if (address.tls) return;
  const why = plaintextRefusal(address.host, { role: "connect", allowRemote: o.allowRemote });
  if (why !== undefined) throw new Error(why);
}
