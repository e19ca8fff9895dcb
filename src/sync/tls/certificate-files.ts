/**
 * A certificate, its key and a CA bundle read from files, and read again when the files change,
 * for grpc-js (as its `experimental.CertificateProvider`) and for node:tls servers.
 *
 * Polling rests on grpc-js's own `experimental.FileWatcherCertificateProvider`, which reads the
 * three files every `refreshIntervalMs` (polling, not fs.watch, so the symlink swap of a
 * Kubernetes secret volume and a `mv` over the file are both seen). On top of it this class:
 * - reads and checks the files once, synchronously, when made: a missing file, a key that is not
 *   the certificate's, or a CA file without a certificate fails at startup with the flag named,
 *   and the first connection after `listen` already has credentials (grpc-js alone drops
 *   connections until its first asynchronous read);
 * - passes a change on only when the bytes differ and the new set is valid: a certificate written
 *   before its key (a torn rotation) is reported and the previous set kept until the pair
 *   matches, where grpc-js alone would refuse every new connection meanwhile.
 */

import { readFileSync } from "node:fs";
import type { SecureContextOptions } from "node:tls";
import { experimental } from "@grpc/grpc-js";
import {
  type CertificateSet,
  contextOptions,
  describeSet,
  type LoadedCertificates,
  same,
  setProblem,
} from "./certificate-set.js";

export type { CertificateSet, LoadedCertificates } from "./certificate-set.js";

/** The files, with the flags they came from (for messages). */
export interface CertificateFilesOptions {
  /** PEM certificate chain, leaf first (`--tls-cert`). Given with `keyFile` or not at all. */
  certFile?: string;
  /** PEM private key of the certificate (`--tls-key`). */
  keyFile?: string;
  /** PEM CA bundle (`--client-ca` on central, `--central-ca` on a sidecar). */
  caFile?: string;
  /** The CA flag's name in messages; default "--client-ca". */
  caFlag?: string;
  /** How often the files are read again; default 5000 ms. */
  refreshIntervalMs?: number;
  /** Called after a changed, valid set replaced the previous one. */
  onReload?: (loaded: LoadedCertificates) => void;
  /** Called once per distinct problem with the files (unreadable, not a pair); the last good set stays. */
  onProblem?: (message: string) => void;
}

type Listener<T> = (update: T | null) => void;

/** Files of one TLS identity and CA, followed while the process runs; `close()` stops reading. */
export class CertificateFiles implements experimental.CertificateProvider {
  #current: CertificateSet;
  #loaded: LoadedCertificates;
  readonly #o: CertificateFilesOptions;
  readonly #caListeners = new Set<Listener<experimental.CaCertificateUpdate>>();
  readonly #identityListeners = new Set<Listener<experimental.IdentityCertificateUpdate>>();
  readonly #changeListeners = new Set<(set: CertificateSet) => void>();
  readonly #watcher?: experimental.FileWatcherCertificateProvider;
  #seenIdentity: experimental.IdentityCertificateUpdate | null = null;
  #seenCa: experimental.CaCertificateUpdate | null = null;
  #pending = false;
  #lastProblem?: string;

  /**
   * Reads the files now (throwing an Error that names the flag and file when one is unusable)
   * and follows them from then on. `fixedCa` is the CA used when no `caFile` is given (a
   * sidecar trusting Node's default roots).
   *
   * @example
   * const files = new CertificateFiles({ certFile: "central.crt", keyFile: "central.key", caFile: "sidecars-ca.crt" });
   * // ... files.current(), files.onChange(...), or hand it to grpc-js; then on shutdown:
   * files.close();
   */
  constructor(options: CertificateFilesOptions, fixedCa?: Buffer) {
    this.#o = options;
    if ((options.certFile === undefined) !== (options.keyFile === undefined)) {
      throw new Error(
        options.certFile === undefined
          ? `--tls-key ${options.keyFile} needs --tls-cert, the certificate it belongs to`
          : `--tls-cert ${options.certFile} needs --tls-key, its private key`,
      );
    }
    const read = (flag: string, file: string | undefined): Buffer | undefined => {
      if (file === undefined) return undefined;
      try {
        return readFileSync(file);
      } catch (err) {
        throw new Error(`cannot read ${flag} ${file}: ${(err as Error).message}`);
      }
    };
    const first: CertificateSet = {
      certificate: read("--tls-cert", options.certFile),
      privateKey: read("--tls-key", options.keyFile),
      caCertificate: read(this.#caFlag, options.caFile) ?? fixedCa,
    };
    const problem = this.#problemOf(first);
    if (problem !== undefined) throw new Error(problem);
    this.#current = first;
    this.#loaded = { ...describeSet(first), generation: 1 };
    if (options.certFile === undefined && options.caFile === undefined) return;
    this.#watcher = new experimental.FileWatcherCertificateProvider({
      certificateFile: options.certFile,
      privateKeyFile: options.keyFile,
      caCertificateFile: options.caFile,
      refreshIntervalMs: options.refreshIntervalMs ?? 5_000,
    });
    this.#watcher.addIdentityCertificateListener(this.#onIdentityRead);
    this.#watcher.addCaCertificateListener(this.#onCaRead);
  }

  /** The set in force now. */
  current(): CertificateSet {
    return this.#current;
  }

  /** The set in force now, as node:tls `createSecureContext` / `setSecureContext` options. */
  secureContextOptions(): SecureContextOptions {
    return contextOptions(this.#current);
  }

  /** What is loaded now (serial, subject, expiry, generation). */
  loaded(): LoadedCertificates {
    return this.#loaded;
  }

  /** Calls `listener` after every reload; returns how to stop. */
  onChange(listener: (set: CertificateSet) => void): () => void {
    this.#changeListeners.add(listener);
    return () => this.#changeListeners.delete(listener);
  }

  /** Stops reading the files; the set in force stays in force. */
  close(): void {
    this.#watcher?.removeIdentityCertificateListener(this.#onIdentityRead);
    this.#watcher?.removeCaCertificateListener(this.#onCaRead);
    this.#changeListeners.clear();
  }

  /** grpc-js CertificateProvider: the CA bundle, now and after each reload. */
  addCaCertificateListener(listener: Listener<experimental.CaCertificateUpdate>): void {
    this.#caListeners.add(listener);
    const ca = this.#current.caCertificate;
    process.nextTick(listener, ca ? { caCertificate: ca } : null);
  }

  /** grpc-js CertificateProvider. */
  removeCaCertificateListener(listener: Listener<experimental.CaCertificateUpdate>): void {
    this.#caListeners.delete(listener);
  }

  /** grpc-js CertificateProvider: the certificate and key, now and after each reload. */
  addIdentityCertificateListener(listener: Listener<experimental.IdentityCertificateUpdate>): void {
    this.#identityListeners.add(listener);
    const { certificate, privateKey } = this.#current;
    process.nextTick(listener, certificate && privateKey ? { certificate, privateKey } : null);
  }

  /** grpc-js CertificateProvider. */
  removeIdentityCertificateListener(
    listener: Listener<experimental.IdentityCertificateUpdate>,
  ): void {
    this.#identityListeners.delete(listener);
  }

  get #caFlag(): string {
    return this.#o.caFlag ?? "--client-ca";
  }

  readonly #onIdentityRead = (update: experimental.IdentityCertificateUpdate | null) => {
    this.#seenIdentity = update;
    this.#schedule();
  };

  readonly #onCaRead = (update: experimental.CaCertificateUpdate | null) => {
    this.#seenCa = update;
    this.#schedule();
  };

  /** One evaluation per read of the files (the watcher reports identity and CA one after the other). */
  #schedule(): void {
    if (this.#pending) return;
    this.#pending = true;
    queueMicrotask(() => {
      this.#pending = false;
      this.#evaluate();
    });
  }

  #evaluate(): void {
    const o = this.#o;
    if (o.certFile !== undefined && this.#seenIdentity === null) {
      this.#report(`cannot read --tls-cert ${o.certFile} or --tls-key ${o.keyFile}`);
      return;
    }
    if (o.caFile !== undefined && this.#seenCa === null) {
      this.#report(`cannot read ${this.#caFlag} ${o.caFile}`);
      return;
    }
    const next: CertificateSet = {
      certificate: this.#seenIdentity?.certificate,
      privateKey: this.#seenIdentity?.privateKey,
      caCertificate: this.#seenCa?.caCertificate ?? this.#current.caCertificate,
    };
    const c = this.#current;
    const identityChanged =
      !same(next.certificate, c.certificate) || !same(next.privateKey, c.privateKey);
    const caChanged = !same(next.caCertificate, c.caCertificate);
    if (!identityChanged && !caChanged) {
      this.#lastProblem = undefined;
      return;
    }
    const problem = this.#problemOf(next);
    if (problem !== undefined) {
      this.#report(`${problem}; the previous files stay in force`);
      return;
    }
    this.#lastProblem = undefined;
    this.#current = next;
    this.#loaded = { ...describeSet(next), generation: this.#loaded.generation + 1 };
    const { certificate, privateKey, caCertificate } = next;
    if (identityChanged && certificate && privateKey) {
      for (const l of this.#identityListeners) l({ certificate, privateKey });
    }
    if (caChanged && caCertificate) for (const l of this.#caListeners) l({ caCertificate });
    for (const l of this.#changeListeners) l(next);
    o.onReload?.(this.#loaded);
  }

  #report(message: string): void {
    if (message === this.#lastProblem) return;
    this.#lastProblem = message;
    this.#o.onProblem?.(message);
  }

  /** Why a set cannot serve, or undefined. */
  #problemOf(set: CertificateSet): string | undefined {
    return setProblem(set, { ...this.#o, caFlag: this.#caFlag });
  }
}
