/**
 * Central nodes for tests: in-process on port 0 over SQLite or a PostgreSQL database made for
 * the test (dropped after), a Watch client over real gRPC framing, and the PostgreSQL check.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import pg from "pg";
import {
  type WatchRequest,
  WatchRequestSchema,
  type WatchResponse,
  WatchResponseSchema,
} from "../../gen/governance/v1/sync_pb.js";
import { systemClock } from "../../src/clock.js";
import { type Central, createCentral } from "../../src/server/central.js";
import type { SidecarIdentity } from "../../src/server/central-pipeline.js";
import { seedCentral } from "../../src/sync/central/central-entities.js";
import { CentralStore } from "../../src/sync/central/central-store.js";
import { type Caller, grpcCaller } from "./callers.js";
import { TOKEN } from "./sidecar.js";

const PG_USER = process.env.PGUSER || "postgres";
/** The server's maintenance database the tests create their own databases from. */
export const PG_ADMIN_URL = `postgres://${PG_USER}@127.0.0.1:5432/test`;

/** Whether PostgreSQL answers at 127.0.0.1:5432; with GOVD_REQUIRE_POSTGRES=1 it must. */
export async function postgresReachable(): Promise<boolean> {
  const client = new pg.Client({ connectionString: PG_ADMIN_URL, connectionTimeoutMillis: 2000 });
  try {
    await client.connect();
    await client.end();
    return true;
  } catch (err) {
    if (process.env.GOVD_REQUIRE_POSTGRES === "1") {
      throw new Error(
        `GOVD_REQUIRE_POSTGRES=1 but PostgreSQL at ${PG_ADMIN_URL} is unreachable: ${(err as Error).message}`,
      );
    }
    console.log(
      `PostgreSQL tests skipped: nothing answers at ${PG_ADMIN_URL} (${(err as Error).message})`,
    );
    return false;
  }
}

/** A database of its own for one test; `drop` removes it. */
export async function tempPostgres(): Promise<{ url: string; drop: () => Promise<void> }> {
  const name = `govd_test_${randomBytes(6).toString("hex")}`;
  const admin = new pg.Client({ connectionString: PG_ADMIN_URL });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  return {
    url: `postgres://${PG_USER}@127.0.0.1:5432/${name}`,
    drop: async () => {
      const c = new pg.Client({ connectionString: PG_ADMIN_URL });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    },
  };
}

/** A temporary SQLite location; `drop` removes its folder. */
export function tempSqlite(): { url: string; dir: string; drop: () => Promise<void> } {
  const dir = mkdtempSync(join(tmpdir(), "govd-central-"));
  return {
    url: `sqlite:${join(dir, "central.db")}`,
    dir,
    drop: async () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** A central node listening on loopback port 0. */
export interface RunningCentral {
  central: Central;
  store: CentralStore;
  grpcAddress: string;
  httpUrl: string;
  caller: Caller;
  close(): Promise<void>;
}

/**
 * A sidecar identity check for tests: every call on the gRPC port comes from `id` (the identity
 * comes from the port's call object, where grpc-js keeps a peer certificate); Connect calls
 * have none.
 */
export function grpcCallsAre(id: string): SidecarIdentity {
  return (t) =>
    typeof (t as { getPeer?: unknown } | undefined)?.getPeer === "function" ? id : undefined;
}

/** Opens, migrates and seeds the store at `location` and serves central on it. */
export async function startCentral(
  location: string,
  options: {
    replica?: string;
    heartbeatMs?: number;
    evidenceCheckMs?: number;
    identify?: SidecarIdentity;
    maxConcurrentStreams?: number;
  } = {},
): Promise<RunningCentral> {
  const { store } = await CentralStore.open(location, systemClock);
  await seedCentral(store);
  const central = createCentral({
    store,
    token: TOKEN,
    replica: options.replica ?? "replica-a",
    heartbeatMs: options.heartbeatMs ?? 200,
    evidenceCheckMs: options.evidenceCheckMs,
    identify: options.identify,
    maxConcurrentStreams: options.maxConcurrentStreams,
  });
  const bound = await central.listen();
  const grpcAddress = `127.0.0.1:${bound.grpcPort}`;
  const caller = grpcCaller(grpcAddress);
  return {
    central,
    store,
    grpcAddress,
    httpUrl: `http://127.0.0.1:${bound.httpPort}`,
    caller,
    async close() {
      caller.close();
      await central.close();
      await store.close();
    },
  };
}

/** A Watch stream read message by message. */
export interface WatchClient {
  /** The next message, or an error when none comes within `timeoutMs` or the stream fails. */
  next(timeoutMs?: number): Promise<WatchResponse>;
  /** Resolves with the status the stream ended with. */
  ended: Promise<grpc.StatusObject>;
  cancel(): void;
}

/**
 * Opens SyncService.Watch over real gRPC framing (a grpc-js generic client). Fleet evidence
 * messages (not revisions) are left out unless `evidence` is set.
 */
export function watch(
  address: string,
  request: MessageInitShape<typeof WatchRequestSchema>,
  options: { evidence?: boolean } = {},
): WatchClient {
  const client = new grpc.Client(address, grpc.credentials.createInsecure());
  const call = client.makeServerStreamRequest(
    "/governance.v1.SyncService/Watch",
    (m: WatchRequest) => Buffer.from(toBinary(WatchRequestSchema, m)),
    (b: Buffer) => fromBinary(WatchResponseSchema, b),
    create(WatchRequestSchema, request),
    new grpc.Metadata(),
  );
  const queue: WatchResponse[] = [];
  const waiters: ((m: WatchResponse | Error) => void)[] = [];
  let failure: Error | undefined;
  call.on("data", (m: WatchResponse) => {
    if (m.message.case === "fleetEvidence" && !options.evidence) return;
    const w = waiters.shift();
    if (w) w(m);
    else queue.push(m);
  });
  const ended = new Promise<grpc.StatusObject>((resolve) => call.on("status", resolve));
  call.on("error", (err: Error) => {
    failure = err;
    for (const w of waiters.splice(0)) w(err);
  });
  ended.then((s) => {
    failure ??= new Error(`stream ended: ${s.code} ${s.details}`);
    for (const w of waiters.splice(0)) w(failure);
  });
  return {
    next(timeoutMs = 5000) {
      const m = queue.shift();
      if (m) return Promise.resolve(m);
      if (failure) return Promise.reject(failure);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.splice(waiters.indexOf(done), 1);
          reject(new Error(`no Watch message within ${timeoutMs} ms`));
        }, timeoutMs);
        const done = (x: WatchResponse | Error) => {
          clearTimeout(timer);
          if (x instanceof Error) reject(x);
          else resolve(x);
        };
        waiters.push(done);
      });
    },
    ended,
    cancel() {
      call.cancel();
      client.close();
    },
  };
}

/** Reads Watch messages until one is a change (skipping heartbeats); returns it. */
export async function nextChange(w: WatchClient, timeoutMs = 5000): Promise<WatchResponse> {
  for (;;) {
    const m = await w.next(timeoutMs);
    if (m.message.case !== "heartbeat") return m;
  }
}

/**
 * The stores an in-process central runs on in tests: a temporary SQLite file, and a database
 * of its own on PostgreSQL (`up` false when it is unreachable).
 */
export function inProcessCentralStores(pgUp: boolean) {
  return [
    { name: "SQLite", up: true, location: async () => tempSqlite() },
    { name: "PostgreSQL", up: pgUp, location: async () => tempPostgres() },
  ];
}

/**
 * Where a central process keeps its store, for fleet tests: SQLite in its data dir (no
 * `--store`), or a database of its own on PostgreSQL (`up` false when it is unreachable), whose
 * drop is pushed on `drops` for the test's cleanup.
 */
export function centralStores(pgUp: boolean, drops: (() => Promise<void>)[]) {
  return [
    { name: "SQLite", up: true, store: async (): Promise<string | undefined> => undefined },
    {
      name: "PostgreSQL",
      up: pgUp,
      store: async (): Promise<string | undefined> => {
        const db = await tempPostgres();
        drops.push(db.drop);
        return db.url;
      },
    },
  ];
}
