/**
 * What central's tests on each store engine share: the engines (SQLite always, PostgreSQL when
 * it answers), fresh centrals on port 0, Watch clients, an operator's kill switch, and the
 * cleanup of all of them after each test.
 */
import { afterEach } from "vitest";
import { GoLiveService } from "../../gen/governance/v1/golive_pb.js";
import {
  postgresReachable,
  type RunningCentral,
  startCentral,
  tempPostgres,
  tempSqlite,
  type WatchClient,
  watch,
} from "./central.js";
import { TOKEN } from "./sidecar.js";

/** The revisions a fresh central store is seeded with (go-live and the 12 seed policies). */
export const SEED_REVISIONS = 13;

/** A store engine central's tests run on; `skip` when it cannot run here. */
export interface StoreEngine {
  name: string;
  make: () => Promise<{ url: string; drop: () => Promise<void> }>;
  skip: boolean;
}

/** SQLite, and PostgreSQL unless it is unreachable (mandatory with GOVD_REQUIRE_POSTGRES=1). */
export async function storeEngines(): Promise<StoreEngine[]> {
  const pgUp = await postgresReachable();
  return [
    { name: "sqlite", make: async () => tempSqlite(), skip: false },
    { name: "postgres", make: tempPostgres, skip: !pgUp },
  ];
}

/** Starts centrals and Watch clients on `engine`, each closed after the test that made it. */
export function centralFixture(engine: StoreEngine) {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });
  return {
    /** A central on a fresh store of the engine. */
    async start(): Promise<RunningCentral> {
      const db = await engine.make();
      cleanups.push(db.drop);
      const c = await startCentral(db.url);
      cleanups.push(() => c.close());
      return c;
    },
    /** A Watch stream on `c`, cancelled after the test. */
    open(c: RunningCentral, request: Parameters<typeof watch>[1]): WatchClient {
      const w = watch(c.grpcAddress, request);
      cleanups.push(async () => w.cancel());
      return w;
    },
    /** Engages the kill switch on `c` with the operator token. */
    engage(c: RunningCentral, reason: string, correlationId = "") {
      return c.caller.call(
        GoLiveService,
        "engageKillSwitch",
        { actor: "ops", reason, correlationId },
        { token: TOKEN },
      );
    },
  };
}
