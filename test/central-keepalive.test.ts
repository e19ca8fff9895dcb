/**
 * A sidecar behind a frozen link leaves central's fleet view, with real processes on loopback:
 * `govd central --keepalive-ms` pings every connection and closes one whose ping goes
 * unanswered, so the sidecar's Watch stream ends there and the view says it is not connected.
 * A frozen link sends no reset, and central's heartbeats still fit in the socket's buffers:
 * without the pings the sidecar looked connected and freshly heard for as long as TCP held.
 */
import { afterEach, describe, expect, it } from "vitest";
import { SyncService } from "../gen/governance/v1/sync_pb.js";
import { eventually } from "./support/eventually.js";
import {
  type FleetProcess,
  startCentral,
  startFollower,
  stopAll,
} from "./support/fleet-processes.js";
import { startTcpProxy, type TcpProxy } from "./support/tcp-proxy.js";

const proxies: TcpProxy[] = [];

afterEach(async () => {
  await stopAll();
  for (const p of proxies.splice(0)) await p.close();
});

async function row(central: FleetProcess, sidecarId: string) {
  const view = await central.grpc.call(SyncService, "listSidecars", {});
  return view.sidecars.find((s) => s.sidecarId === sidecarId);
}

describe("central's keepalive", () => {
  it("drops a sidecar behind a frozen link from the connected ones, and takes it back after", async () => {
    const central = await startCentral({ heartbeatMs: 200, args: ["--keepalive-ms", "1000"] });
    const proxy = await startTcpProxy(central.grpcAddress);
    proxies.push(proxy);
    await startFollower({ central: proxy.address, sidecarId: "frozen" });
    await eventually(
      "the sidecar connected",
      async () => (await row(central, "frozen"))?.connected,
    );

    proxy.freeze();
    const frozenAt = Date.now();
    const gone = await eventually(
      "central to count the frozen sidecar as not connected",
      async () => {
        const r = await row(central, "frozen");
        return r && !r.connected ? r : undefined;
      },
      10_000,
    );
    // Two keepalive intervals and a heartbeat's write.
    expect(Date.now() - frozenAt).toBeLessThan(6_000);
    expect(gone.replica).toBe("");

    proxy.restore();
    await eventually(
      "the sidecar connected again",
      async () => (await row(central, "frozen"))?.connected,
      15_000,
    );
  });
});
