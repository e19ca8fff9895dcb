/**
 * Central when its PostgreSQL goes away and comes back (a TCP proxy cut between them): /readyz
 * says not ready and why, writes are refused as UNAVAILABLE with what to do, an open Watch
 * stream stays open; once the database is back, central is ready again, its LISTEN connection
 * has come back, and a change reaches the watcher.
 */
import { Code } from "@connectrpc/connect";
import { afterAll, describe, expect, it } from "vitest";
import { GoLiveService } from "../gen/governance/v1/golive_pb.js";
import {
  nextChange,
  postgresReachable,
  type RunningCentral,
  startCentral,
  tempPostgres,
  watch,
} from "./support/central.js";
import { rejects } from "./support/expect-error.js";
import { TOKEN } from "./support/sidecar.js";
import { startTcpProxy, type TcpProxy } from "./support/tcp-proxy.js";

const pgUp = await postgresReachable();
const cleanups: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

/** Polls /readyz until its status is `status`; returns the body. */
async function readyz(c: RunningCentral, status: number): Promise<string> {
  for (let i = 0; i < 100; i++) {
    const res = await fetch(`${c.httpUrl}/readyz`);
    const body = await res.text();
    if (res.status === status) return body;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`/readyz never answered ${status}`);
}

describe.skipIf(!pgUp)("central when its PostgreSQL goes away", () => {
  it("is not ready and refuses writes as UNAVAILABLE, then recovers and streams again", async () => {
    const db = await tempPostgres();
    cleanups.push(db.drop);
    const proxy: TcpProxy = await startTcpProxy("127.0.0.1:5432");
    cleanups.push(() => proxy.close());
    const viaProxy = db.url.replace("127.0.0.1:5432", proxy.address);
    const c = await startCentral(viaProxy, { heartbeatMs: 100 });
    cleanups.push(() => c.close());
    const w = watch(c.grpcAddress, { sidecarId: "sc-1" });
    cleanups.push(async () => w.cancel());
    expect((await w.next()).message.case).toBe("snapshot");
    expect(await readyz(c, 200)).toBe("ready\n");

    proxy.cut();
    expect(await readyz(c, 503)).toMatch(/^not ready: central's store is unreachable/);
    await rejects(
      c.caller.call(
        GoLiveService,
        "engageKillSwitch",
        { actor: "ops", reason: "x" },
        { token: TOKEN },
      ),
      Code.Unavailable,
      /central's store is unreachable right now \(ref [0-9a-f]{8}\); retry, or call another replica/,
    );

    proxy.restore();
    expect(await readyz(c, 200)).toBe("ready\n");
    const engaged = await c.caller.call(
      GoLiveService,
      "engageKillSwitch",
      { actor: "ops", reason: "after the outage" },
      { token: TOKEN },
    );
    const m = await nextChange(w);
    expect(m.message.case).toBe("change");
    if (m.message.case === "change") expect(m.message.value.revision).toBe(engaged.state?.revision);
  });
});
