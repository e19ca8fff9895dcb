/**
 * The bytes of one TLS identity and CA (certificate-files.ts follows them in files) and the
 * checks a set passes before it serves: a whole CA bundle, a key that is the certificate's,
 * and a context node:tls accepts.
 */
import { createPrivateKey, X509Certificate } from "node:crypto";
import { createSecureContext, type SecureContextOptions } from "node:tls";

/** The bytes in force. */
export interface CertificateSet {
  certificate?: Buffer;
  privateKey?: Buffer;
  caCertificate?: Buffer;
}

/** What was loaded, for logs and tests. */
export interface LoadedCertificates {
  /** The leaf certificate's serial number (hex), subject and expiry; undefined without a certificate. */
  serialNumber?: string;
  subject?: string;
  validTo?: string;
  /** How many sets have been in force (1 after the first read). */
  generation: number;
}

/** True when two optional buffers hold the same bytes. */
export function same(a: Buffer | undefined, b: Buffer | undefined): boolean {
  return a === b || (a !== undefined && b !== undefined && a.equals(b));
}

/**
 * Why a PEM bundle is not whole, or undefined: node:tls takes a bundle cut short (a file read
 * while it was being written) without a word, so every certificate in it is parsed here.
 */
export function bundleProblem(pem: Buffer): string | undefined {
  const text = pem.toString("latin1");
  const begins = text.split("-----BEGIN CERTIFICATE-----").length - 1;
  const blocks = text.match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g) ?? [];
  if (begins === 0) return "it holds no certificate";
  if (blocks.length !== begins)
    return `it ends inside certificate ${blocks.length + 1} of ${begins} (cut short)`;
  for (const [i, block] of blocks.entries()) {
    try {
      new X509Certificate(block);
    } catch (err) {
      return `certificate ${i + 1} of ${begins} does not parse: ${(err as Error).message}`;
    }
  }
  return undefined;
}

/** A set as node:tls `createSecureContext` / `setSecureContext` options. */
export function contextOptions(set: CertificateSet): SecureContextOptions {
  return { cert: set.certificate, key: set.privateKey, ca: set.caCertificate };
}

/** The files a set came from, with the CA flag's name, for messages. */
export interface SetNames {
  certFile?: string;
  keyFile?: string;
  caFile?: string;
  caFlag: string;
}

/**
 * Why a set cannot serve, naming the flags and files, or undefined.
 *
 * @example
 * const why = setProblem({ certificate, privateKey }, { certFile: "tls.crt", keyFile: "tls.key", caFlag: "--client-ca" });
 */
export function setProblem(set: CertificateSet, n: SetNames): string | undefined {
  if (set.caCertificate !== undefined) {
    const why = bundleProblem(set.caCertificate);
    if (why !== undefined) {
      return `${n.caFlag} ${n.caFile ?? "(built-in roots)"} is not a PEM CA bundle: ${why}`;
    }
  }
  if (set.certificate === undefined || set.privateKey === undefined) return undefined;
  try {
    const leaf = new X509Certificate(set.certificate);
    if (!leaf.checkPrivateKey(createPrivateKey(set.privateKey))) {
      return `--tls-key ${n.keyFile} is not the private key of --tls-cert ${n.certFile} (${leaf.subject.replaceAll("\n", ", ")})`;
    }
    createSecureContext(contextOptions(set));
  } catch (err) {
    return `--tls-cert ${n.certFile} and --tls-key ${n.keyFile} are not a usable PEM certificate and key: ${(err as Error).message}`;
  }
  return undefined;
}

/** The leaf's serial, subject and expiry (nothing without a certificate). */
export function describeSet(set: CertificateSet): Omit<LoadedCertificates, "generation"> {
  if (set.certificate === undefined) return {};
  const leaf = new X509Certificate(set.certificate);
  return {
    serialNumber: leaf.serialNumber,
    subject: leaf.subject.replaceAll("\n", ", "),
    validTo: leaf.validTo,
  };
}
