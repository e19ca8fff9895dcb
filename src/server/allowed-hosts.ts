/**
 * Which `Host` headers the HTTP port answers: a guard against DNS rebinding, where a web page
 * in a browser on the same machine points a name it controls at 127.0.0.1 and calls the port.
 * Engine calls there need no token and can trip a KILL_SWITCH wire, so only hosts that cannot
 * be such a name are served: IP literals, `localhost`, and the names an operator allows.
 */
import { isIP } from "node:net";

/** The host name of a Host header, without its port, lower case ("[::1]:8014" -> "::1"). */
export function hostName(header: string): string {
  const h = header.trim().toLowerCase();
  if (h.startsWith("[")) return h.slice(1, h.indexOf("]") < 0 ? undefined : h.indexOf("]"));
  const colon = h.lastIndexOf(":");
  return colon < 0 ? h : h.slice(0, colon);
}

/** Decides whether a request's Host header may be served. */
export function hostAllowed(header: string | undefined, allowed: ReadonlySet<string>): boolean {
  // Browsers always send Host; a client without one is not a browser being rebound.
  if (header === undefined || header === "") return true;
  const name = hostName(header);
  if (isIP(name) !== 0) return true;
  const bare = name.endsWith(".") ? name.slice(0, -1) : name;
  return bare === "localhost" || bare.endsWith(".localhost") || allowed.has(bare);
}

/** The names an operator allows, from a comma-separated list ("govd.internal, sidecar"). */
export function parseAllowedHosts(list: string | undefined): ReadonlySet<string> {
  return new Set(
    (list ?? "")
      .split(",")
      .map((n) => n.trim().toLowerCase())
      .filter((n) => n !== ""),
  );
}
