/** A real sidecar on port 0 over a temporary store, with a manual clock. */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ManualClock } from "../../src/clock.js";
import type { LeverSettings } from "../../src/levers/context.js";
import { createSidecar, type Sidecar, type SidecarOptions } from "../../src/server/sidecar.js";
import { type Db, migrateTo, openDatabase } from "../../src/store/database.js";
import { type Caller, connectJsonCaller, grpcCaller } from "./callers.js";

/** The operator token test sidecars use. */
export const TOKEN = "test-operator-token";

/** 2026-03-02T10:00:00Z, a Monday. */
export const T0 = Date.UTC(2026, 2, 2, 10, 0, 0);

/** A running sidecar and what a test needs to drive it. */
export interface RunningSidecar {
  sidecar: Sidecar;
  db: Db;
  clock: ManualClock;
  dir: string;
  grpcAddress: string;
  httpUrl: string;
  grpc: Caller;
  connect: Caller;
  callers: Caller[];
  stop(): Promise<void>;
}

/** Starts a sidecar on free loopback ports over a fresh, migrated, seeded store. */
export async function startSidecar(
  options: {
    maxMessageBytes?: number;
    warmUp?: boolean;
    checkpointIntervalMs?: number;
    httpAllowedHosts?: ReadonlySet<string>;
    idleTimeoutMs?: number;
    settings?: Partial<LeverSettings>;
    /** Also serve gRPC on this unix socket, a file name inside the store's folder. */
    grpcSocket?: string;
    /** Follow a central node. */
    follow?: SidecarOptions["follow"];
    /** Writes to the migrated store before the sidecar opens it (state left by an earlier run). */
    storeBefore?: (db: Db) => void;
  } = {},
): Promise<RunningSidecar> {
  const dir = mkdtempSync(join(tmpdir(), "govd-test-"));
  const file = join(dir, "sidecar.db");
  const db = openDatabase(file);
  migrateTo(db);
  options.storeBefore?.(db);
  const clock = new ManualClock(T0);
  const sidecar = createSidecar({
    db,
    clock,
    token: TOKEN,
    storeFile: file,
    maxMessageBytes: options.maxMessageBytes,
    warmUp: options.warmUp,
    sweepIntervalMs: 3_600_000,
    checkpointIntervalMs: options.checkpointIntervalMs,
    httpAllowedHosts: options.httpAllowedHosts,
    idleTimeoutMs: options.idleTimeoutMs,
    settings: options.settings,
    follow: options.follow,
  });
  const bound = await sidecar.listen({
    grpcPort: 0,
    httpPort: 0,
    grpcSocket: options.grpcSocket ? join(dir, options.grpcSocket) : undefined,
  });
  const grpcAddress = `127.0.0.1:${bound.grpcPort}`;
  const httpUrl = `http://127.0.0.1:${bound.httpPort}`;
  const grpc = grpcCaller(grpcAddress);
  const connect = connectJsonCaller(httpUrl);
  return {
    sidecar,
    db,
    clock,
    dir,
    grpcAddress,
    httpUrl,
    grpc,
    connect,
    callers: [grpc, connect],
    async stop() {
      grpc.close();
      await sidecar.close();
      db.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Enables go-live with the operator token (the seed store passes the checklist). */
export async function enableGoLive(caller: Caller): Promise<void> {
  const { GoLiveService } = await import("../../gen/governance/v1/golive_pb.js");
  await caller.call(
    GoLiveService,
    "enable",
    { actor: "ops", reason: "test go-live", correlationId: `enable-${Math.random()}` },
    { token: TOKEN },
  );
}
