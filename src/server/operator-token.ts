/** The operator token that admin writes must present as `authorization: Bearer TOKEN`. */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { chmodSync, existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/** Where a sidecar keeps its token: `<data-dir>/admin.token`. */
export function tokenPath(dataDir: string): string {
  return join(dataDir, "admin.token");
}

/**
 * Returns the operator token: the one given, else the one in the data dir, else a new random
 * one written there with mode 0600. A token file others can read is refused unless
 * `allowReadable` (then `warn` is told).
 */
export function loadOrCreateToken(
  dataDir: string,
  given?: string,
  options: { allowReadable?: boolean; warn?: (message: string) => void } = {},
): string {
  if (given && given.trim() !== "") return given.trim();
  const file = tokenPath(dataDir);
  if (existsSync(file)) {
    const mode = statSync(file).mode & 0o777;
    if (mode & 0o077) {
      const problem = `${file} can be read by other users (mode ${mode.toString(8).padStart(4, "0")})`;
      if (!options.allowReadable) {
        throw new Error(
          `${problem}: anyone who reads it can change policies; run 'chmod 600 ${file}', or start with --allow-readable-token to accept it`,
        );
      }
      options.warn?.(`${problem}; accepted because of --allow-readable-token`);
    }
    const token = readFileSync(file, "utf8").trim();
    if (token === "") throw new Error(`${file} is empty: delete it to have a new token made`);
    return token;
  }
  const token = randomBytes(32).toString("base64url");
  writeFileSync(file, `${token}\n`, { mode: 0o600, flag: "wx" });
  chmodSync(file, 0o600);
  return token;
}

function digest(text: string): Buffer {
  return createHash("sha256").update(text).digest();
}

/** Checks `authorization` header values against the token in constant time. */
export class OperatorToken {
  private readonly expected: Buffer;

  constructor(token: string) {
    this.expected = digest(token);
  }

  /** True when the header is `Bearer <the token>`. */
  accepts(authorization: string | undefined): boolean {
    if (!authorization) return false;
    const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
    if (!match?.[1]) return false;
    return timingSafeEqual(digest(match[1]), this.expected);
  }
}
