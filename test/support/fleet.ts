/**
 * A fleet for tests: `govd central` as a real process (from dist/, as the README starts it),
 * and stand-in sidecars that follow central over a real Watch stream, check each change's
 * digest against the one before, and ack (or not) what they applied.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { launcherNodeFlags } from "../../bench/processes.js";
import { SyncService, type WatchResponse } from "../../gen/governance/v1/sync_pb.js";
import { changeEntityBytes, revisionDigest } from "../../src/sync/revision-digest.js";
import { type Caller, grpcCaller } from "./callers.js";
import { watch } from "./central.js";
import { freePort, type Program, startProgram, waitForOk } from "./program.js";
import { TOKEN } from "./sidecar.js";

/** A `govd central` process on free loopback ports. */
export interface CentralProcess {
  program: Program;
  grpcAddress: string;
  httpUrl: string;
  dataDir: string;
  caller: Caller;
}

/** Starts `node dist/src/cli/govd.js central` on `store` (default: SQLite in its data dir). */
export async function startCentralProcess(
  options: { store?: string; replica?: string; heartbeatMs?: number; dataDir?: string } = {},
): Promise<CentralProcess> {
  const [grpcPort, httpPort] = [await freePort(), await freePort()];
  const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), "govd-central-proc-"));
  const program = startProgram(
    "node",
    [...launcherNodeFlags("central"), "dist/src/cli/govd.js", "central"],
    {
      GOVD_DATA_DIR: dataDir,
      GOVD_GRPC_PORT: String(grpcPort),
      GOVD_HTTP_PORT: String(httpPort),
      GOVD_ADMIN_TOKEN: TOKEN,
      GOVD_LOG_LEVEL: "warn",
      GOVD_HEARTBEAT_MS: String(options.heartbeatMs ?? 200),
      ...(options.store ? { GOVD_STORE: options.store } : {}),
      ...(options.replica ? { GOVD_REPLICA_ID: options.replica } : {}),
    },
  );
  const httpUrl = `http://127.0.0.1:${httpPort}`;
  try {
    await waitForOk(`${httpUrl}/readyz`, 30_000, program);
  } catch (err) {
    program.signal("SIGKILL");
    throw err;
  }
  const grpcAddress = `127.0.0.1:${grpcPort}`;
  return { program, grpcAddress, httpUrl, dataDir, caller: grpcCaller(grpcAddress) };
}

/** A stand-in sidecar following central. */
export interface Follower {
  /** The revision and digest it applied last. */
  applied: () => { revision: bigint; digest: string };
  /** Every message it received, in order. */
  seen: WatchResponse[];
  /** Digest mismatches it found (a correct central leaves this empty). */
  problems: string[];
  /** Resolves once it has applied `revision` (or a later one). */
  reached(revision: bigint, timeoutMs?: number): Promise<void>;
  /** Closes its stream; with `reconnectTo`, follows central at that address from what it applied. */
  moveTo(address: string): void;
  stop(): void;
}

/** Follows central at `address` as `sidecarId`; acks what it applies unless `ack` is false. */
export function follow(
  address: string,
  sidecarId: string,
  options: { ack?: boolean; engines?: string[] } = {},
): Follower {
  let applied = { revision: 0n, digest: "" };
  const seen: WatchResponse[] = [];
  const problems: string[] = [];
  const waiters: (() => void)[] = [];
  let stream: ReturnType<typeof watch> | undefined;
  let caller: Caller | undefined;
  let stopped = false;
  // Acks go one after another, in revision order, as a sidecar's do (on its AckStream).
  let acking: Promise<unknown> = Promise.resolve();
  const ackIt = (revision: bigint, digest: string) => {
    const c = caller;
    if (options.ack === false || !c) return;
    acking = acking.then(() =>
      c.call(SyncService, "ack", { sidecarId, revision, digest }).catch((err: unknown) => {
        if (!(err instanceof ConnectError && err.code === Code.Unavailable))
          problems.push(`ack ${revision}: ${String(err)}`);
      }),
    );
  };
  const run = (to: string) => {
    caller?.close();
    caller = grpcCaller(to);
    const w = watch(to, {
      sidecarId,
      appliedRevision: applied.revision,
      appliedDigest: applied.digest,
      engines: options.engines ?? [],
    });
    stream = w;
    (async () => {
      for (;;) {
        const m = await w.next(60_000);
        seen.push(m);
        if (m.message.case === "snapshot") {
          applied = { revision: m.message.value.revision, digest: m.message.value.digest };
        } else if (m.message.case === "change") {
          const c = m.message.value;
          if (c.revision !== applied.revision + 1n)
            problems.push(`change ${c.revision} after ${applied.revision}`);
          const expected = revisionDigest(applied.digest, changeEntityBytes(c));
          if (expected !== c.digest) problems.push(`digest of ${c.revision} does not chain`);
          applied = { revision: c.revision, digest: c.digest };
        } else continue;
        ackIt(applied.revision, applied.digest);
        for (const wake of waiters.splice(0)) wake();
      }
    })().catch(() => {
      // the stream ended (cancelled, or central went away)
    });
  };
  run(address);
  return {
    applied: () => applied,
    seen,
    problems,
    async reached(revision, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      while (applied.revision < revision) {
        if (Date.now() > deadline)
          throw new Error(
            `${sidecarId} did not reach revision ${revision} (at ${applied.revision})`,
          );
        await new Promise<void>((resolve) => {
          waiters.push(resolve);
          setTimeout(resolve, 100);
        });
      }
    },
    moveTo(to) {
      stream?.cancel();
      if (!stopped) run(to);
    },
    stop() {
      stopped = true;
      stream?.cancel();
      caller?.close();
    },
  };
}
