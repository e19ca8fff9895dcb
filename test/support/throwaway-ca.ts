/**
 * Certificate authorities and certificates made at test time with `openssl` (Debian's package
 * `openssl`): Node 20's crypto can make keys but cannot sign an X.509 certificate. Everything
 * lives in one temporary folder, removed by `remove()`. Keys are P-256, certificates valid one
 * day, serial numbers random (so a reissued certificate is told apart by its serial).
 *
 * Without openssl, `openSslMissing()` says so in one line; tests skip with it, unless
 * GOVD_REQUIRE_OPENSSL=1 (as .ci/run sets), which turns its absence into a failure.
 */
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import {
  copyFileSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** The Debian package that provides the command. */
export const OPENSSL_PACKAGE = "openssl";

/** Why the certificate tests cannot run here, or undefined when `openssl` runs. */
export function openSslMissing(): string | undefined {
  try {
    execFileSync("openssl", ["version"], { stdio: "ignore" });
    return undefined;
  } catch {
    return `skipped: the TLS tests make certificates with openssl (install: sudo apt-get update && sudo apt-get install -y ${OPENSSL_PACKAGE})`;
  }
}

/** A certificate and its key, as files and as PEM bytes. */
export interface IssuedCertificate {
  certFile: string;
  keyFile: string;
  cert: Buffer;
  key: Buffer;
  /** Upper-case hex, as node:tls reports `serialNumber`. */
  serialNumber: string;
}

/** What to put in a certificate. */
export interface CertificateRequest {
  /** The subject's CN. */
  commonName: string;
  /** subjectAltName entries, e.g. ["DNS:localhost", "IP:127.0.0.1"] or ["URI:govd-sidecar://a"]. */
  altNames?: string[];
  /** "serverAuth", "clientAuth" or both. */
  usage: ("serverAuth" | "clientAuth")[];
}

/** A throwaway CA in its own folder. */
export interface ThrowawayCa {
  name: string;
  /** The CA's certificate (PEM file) and bytes: what `--client-ca` and `--central-ca` take. */
  caFile: string;
  ca: Buffer;
  /** Signs a new key; the files are written under `fileName` (.crt/.key) in the folder. */
  issue(fileName: string, request: CertificateRequest): IssuedCertificate;
  /** A server certificate for 127.0.0.1, ::1 and localhost. */
  issueServer(fileName: string, commonName?: string): IssuedCertificate;
  /** A client certificate for sidecar `id` (SAN URI govd-sidecar://id, CN id). */
  issueSidecar(id: string, fileName?: string): IssuedCertificate;
}

/**
 * Replaces `dest` with a copy of `src` in one step (a copy beside it, renamed over it), as a
 * careful rotation does: a reader never sees a half-written file.
 */
export function replaceFile(src: string, dest: string): void {
  copyFileSync(src, `${dest}.new`);
  renameSync(`${dest}.new`, dest);
}

/** A folder of throwaway CAs; `remove()` deletes it. */
export interface CertificateWorkshop {
  dir: string;
  ca(name: string): ThrowawayCa;
  remove(): void;
}

function openssl(args: string[], cwd: string): void {
  execFileSync("openssl", args, { cwd, stdio: ["ignore", "ignore", "pipe"] });
}

function newKeyArgs(keyFile: string): string[] {
  return [
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
    "-keyout",
    keyFile,
  ];
}

/**
 * Opens a folder for certificates.
 *
 * @example
 * const shop = certificateWorkshop();
 * const ca = shop.ca("fleet");
 * const server = ca.issueServer("central");
 * const sidecar = ca.issueSidecar("wholesale-1");
 * shop.remove();
 */
export function certificateWorkshop(): CertificateWorkshop {
  const dir = mkdtempSync(join(tmpdir(), "govd-tls-"));
  return {
    dir,
    remove: () => rmSync(dir, { recursive: true, force: true }),
    ca(name) {
      const caFile = join(dir, `${name}-ca.crt`);
      const caKey = join(dir, `${name}-ca.key`);
      openssl(
        [
          "req",
          "-x509",
          ...newKeyArgs(caKey),
          "-out",
          caFile,
          "-days",
          "1",
          "-subj",
          `/CN=govd test CA ${name}`,
          "-addext",
          "basicConstraints=critical,CA:TRUE",
          "-addext",
          "keyUsage=critical,keyCertSign,cRLSign",
        ],
        dir,
      );
      const issue = (fileName: string, r: CertificateRequest): IssuedCertificate => {
        const base = join(dir, fileName);
        // A positive serial without a leading zero, printed as node:tls prints it.
        const serial = `${1 + ((randomBytes(1)[0] as number) % 7)}${randomBytes(8).toString("hex").toUpperCase().slice(1)}`;
        const ext = `${base}.ext`;
        writeFileSync(
          ext,
          [
            "basicConstraints=CA:FALSE",
            "keyUsage=critical,digitalSignature",
            `extendedKeyUsage=${r.usage.join(",")}`,
            ...(r.altNames?.length ? [`subjectAltName=${r.altNames.join(",")}`] : []),
          ].join("\n"),
        );
        // Written beside the final files and renamed over them: a reissue replaces them whole.
        openssl(
          [
            "req",
            "-new",
            ...newKeyArgs(`${base}.key.new`),
            "-out",
            `${base}.csr`,
            "-subj",
            `/CN=${r.commonName}`,
          ],
          dir,
        );
        openssl(
          [
            "x509",
            "-req",
            "-in",
            `${base}.csr`,
            "-CA",
            caFile,
            "-CAkey",
            caKey,
            "-set_serial",
            `0x${serial}`,
            "-days",
            "1",
            "-extfile",
            ext,
            "-out",
            `${base}.crt.new`,
          ],
          dir,
        );
        renameSync(`${base}.key.new`, `${base}.key`);
        renameSync(`${base}.crt.new`, `${base}.crt`);
        return {
          certFile: `${base}.crt`,
          keyFile: `${base}.key`,
          cert: readFileSync(`${base}.crt`),
          key: readFileSync(`${base}.key`),
          serialNumber: serial,
        };
      };
      return {
        name,
        caFile,
        ca: readFileSync(caFile),
        issue,
        issueServer: (fileName, commonName = "central") =>
          issue(fileName, {
            commonName,
            altNames: ["DNS:localhost", "IP:127.0.0.1", "IP:::1"],
            usage: ["serverAuth"],
          }),
        issueSidecar: (id, fileName = `sidecar-${id}`) =>
          issue(fileName, {
            commonName: id,
            altNames: [`URI:govd-sidecar://${id}`],
            usage: ["clientAuth"],
          }),
      };
    },
  };
}
