/** What every govctl command gets: the client, the printer, the actor and fresh correlation ids. */
import { randomUUID } from "node:crypto";
import { userInfo } from "node:os";
import type { DescMessage, Message } from "@bufbuild/protobuf";
import { type Command, InvalidArgumentError } from "commander";
import { Exit, GovctlError, GovdClient } from "./client.js";
import { type Printer, stdoutPrinter } from "./output.js";

/** The global options, from flags or environment variables. */
export interface GlobalOptions {
  addr: string;
  dataDir: string;
  tokenFile?: string;
  json: boolean;
  timeout: number;
  actor?: string;
  correlationId?: string;
  centralCa?: string;
  tlsCert?: string;
  tlsKey?: string;
}

/** A command's view of govctl. */
export interface Ctx {
  client: GovdClient;
  out: Printer;
  actor: string;
  /** The --correlation-id given, else a new one (`govctl-<what>-<uuid>`). */
  correlationId(what: string): string;
}

function defaultActor(): string {
  try {
    return userInfo().username || "govctl";
  } catch {
    return "govctl";
  }
}

/** Wraps a command action: builds the context from the global options and closes the client. */
export function withCtx<A extends unknown[]>(
  run: (ctx: Ctx, ...args: A) => Promise<void>,
): (...args: unknown[]) => Promise<void> {
  return async (...args: unknown[]) => {
    const command = args[args.length - 1] as Command;
    const g = command.optsWithGlobals<GlobalOptions>();
    const client = new GovdClient({
      addr: g.addr,
      dataDir: g.dataDir,
      tokenFile: g.tokenFile,
      timeoutMs: g.timeout * 1000,
      centralCaFile: g.centralCa,
      certFile: g.tlsCert,
      keyFile: g.tlsKey,
    });
    const ctx: Ctx = {
      client,
      out: stdoutPrinter(g.json),
      actor: g.actor ?? defaultActor(),
      correlationId: (what) => g.correlationId ?? `govctl-${what}-${randomUUID()}`,
    };
    try {
      await run(ctx, ...(args.slice(0, -1) as A));
    } finally {
      client.close();
    }
  };
}

/** Parses a decimal money string as the contract wants it ("150.25"), naming the option. */
export function money(name: string) {
  return (value: string): string => {
    if (!/^(0|[1-9][0-9]{0,8})(\.[0-9]{1,6})?$/.test(value)) {
      throw new InvalidArgumentError(
        `${name} must be a decimal such as 150.25 (at most 6 fraction digits, no sign)`,
      );
    }
    return value;
  };
}

/** Parses a whole number >= 0, naming the option. */
export function whole(name: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!/^\d+$/.test(value) || !Number.isSafeInteger(n)) {
      throw new InvalidArgumentError(`${name} must be a whole number`);
    }
    return n;
  };
}

/** Parses a number in [0, 1], naming the option. */
export function fraction(name: string) {
  return (value: string): number => {
    const n = Number(value);
    if (value.trim() === "" || !Number.isFinite(n) || n < 0 || n > 1) {
      throw new InvalidArgumentError(`${name} must be a number between 0 and 1`);
    }
    return n;
  };
}

/**
 * An upsert request from the stored policy (when there is one) with `changes` on top, so an
 * operator names only what changes. Fields are copied generically by name, so fields added to
 * the contract later are kept as they are.
 */
export function upsertFrom(
  requestSchema: DescMessage,
  existing: Message | undefined,
  changes: Record<string, unknown>,
  required: readonly string[],
  what: string,
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (existing) {
    const names = new Set(requestSchema.fields.map((f) => f.localName));
    for (const [k, v] of Object.entries(existing)) if (names.has(k)) out[k] = v;
  } else {
    const missing = required.filter((k) => changes[k] === undefined);
    if (missing.length > 0) {
      throw new GovctlError(
        `${what} has no policy yet: give ${missing.map((k) => `--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`).join(", ")}`,
        Exit.USAGE,
      );
    }
  }
  for (const [k, v] of Object.entries(changes)) if (v !== undefined) out[k] = v;
  return out;
}

/** Parses one of `choices` (case-insensitive) into the value of a protobuf enum, naming the option. */
export function enumOption(name: string, values: object, choices: readonly string[]) {
  return (value: string): number => {
    const key = value.toLowerCase().replace(/-/g, "_");
    const n = (values as Record<string, unknown>)[key.toUpperCase()];
    if (!choices.includes(key) || typeof n !== "number") {
      throw new InvalidArgumentError(`${name} must be one of ${choices.join(", ")}`);
    }
    return n;
  };
}
