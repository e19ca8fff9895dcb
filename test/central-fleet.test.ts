/**
 * `govctl fleet` and `--wait` through the real CLI against a real `govd central` process (SQLite):
 * a wait names the sidecars that did not ack and exits 1; once every connected sidecar acks it
 * prints "N/N acked in X ms" and exits 0. /healthz, /readyz, /metrics and Connect JSON on its
 * HTTP port; SIGTERM ends the Watch streams and the process.
 */
import { execFile } from "node:child_process";
import { rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, describe, expect, it } from "vitest";
import { GoLiveService } from "../gen/governance/v1/golive_pb.js";
import { SyncService } from "../gen/governance/v1/sync_pb.js";
import { connectJsonCaller } from "./support/callers.js";
import {
  type CentralProcess,
  type Follower,
  follow,
  startCentralProcess,
} from "./support/fleet.js";
import { govctl } from "./support/govctl.js";
import { TOKEN } from "./support/sidecar.js";

const run = promisify(execFile);
const processes: CentralProcess[] = [];
const followers: Follower[] = [];
afterAll(() => {
  for (const f of followers) f.stop();
  for (const p of processes) {
    p.caller.close();
    p.program.signal("SIGKILL");
    rmSync(p.dataDir, { recursive: true, force: true });
  }
});

describe("govctl against govd central", () => {
  it("waits for acks, names the sidecars that did not ack, and shows the fleet", async () => {
    const central = await startCentralProcess();
    processes.push(central);
    const run = (...args: string[]) =>
      govctl(["--addr", central.grpcAddress, "--actor", "test-ops", ...args], {
        GOVD_ADMIN_TOKEN: TOKEN,
      });
    const fast = follow(central.grpcAddress, "sc-fast", { engines: ["WHOLESALE"] });
    const slow = follow(central.grpcAddress, "sc-slow", { ack: false, engines: ["CAPITAL"] });
    followers.push(fast, slow);
    await fast.reached(13n);
    await slow.reached(13n);

    const engaged = await run("killswitch", "engage", "--reason", "bad deals", "--wait", "1s");
    expect(engaged.code).toBe(1);
    expect(engaged.stdout).toMatch(/kill switch:\s+ENGAGED/);
    expect(engaged.stdout).toMatch(/1\/2 acked in \d+ ms \(revision 14\)/);
    expect(engaged.stdout).toMatch(/sc-fast\s+acked\s+\d+ ms\s+14/);
    expect(engaged.stdout).toMatch(/sc-slow\s+NOT ACKED/);
    expect(engaged.stderr).toMatch(
      /1 of 2 connected sidecars did not ack revision 14 within 1000 ms: sc-slow/,
    );

    slow.stop();
    const fleetAfterStop = async () =>
      JSON.parse((await run("--json", "fleet")).stdout) as {
        sidecars: { sidecarId: string; connected: boolean }[];
      };
    for (
      let i = 0;
      i < 50 && (await fleetAfterStop()).sidecars.find((s) => s.sidecarId === "sc-slow")?.connected;
      i++
    ) {
      await new Promise((r) => setTimeout(r, 100));
    }
    const released = await run("killswitch", "release", "--reason", "fixed", "--wait", "5s");
    expect(released.stderr).toBe("");
    expect(released.code).toBe(0);
    expect(released.stdout).toMatch(/1\/1 acked in \d+ ms \(revision 15\)/);

    const upsert = await run(
      "risk",
      "upsert",
      "CAPITAL",
      "--max-daily-loss",
      "100",
      "--reason",
      "tighten",
      "--wait",
      "5s",
    );
    expect(upsert.code).toBe(0);
    expect(upsert.stdout).toMatch(/policy revision 16/);
    expect(upsert.stdout).toMatch(/1\/1 acked/);

    const fleet = await run("fleet");
    expect(fleet.code).toBe(0);
    expect(fleet.stdout).toMatch(/sc-fast\s+WHOLESALE\s+16\s+0\s+yes/);
    expect(fleet.stdout).toMatch(/sc-slow\s+CAPITAL\s+0\s+16\s+no/);
    expect(fleet.stdout).toMatch(/central revision: 16; 1 of 2 sidecars connected/);
    expect(fast.problems).toEqual([]);
  });

  it("serves probes, metrics, Connect JSON, Watch over Connect and reflection, and refuses decisions", async () => {
    const central = await startCentralProcess();
    processes.push(central);
    expect((await fetch(`${central.httpUrl}/healthz`)).status).toBe(200);
    // Its default store, readable by its owner only.
    expect(statSync(join(central.dataDir, "central.db")).mode & 0o777).toBe(0o600);
    expect(await (await fetch(`${central.httpUrl}/readyz`)).text()).toBe("ready\n");
    const json = connectJsonCaller(central.httpUrl);
    const state = await json.call(GoLiveService, "getState", {});
    expect(state.state?.revision).toBe(1n);
    const refused = await json.call(GoLiveService, "checkGoLive", {}).catch((e: Error) => e);
    expect(String(refused)).toMatch(/served by the sidecars/);
    // Watch over the Connect protocol on the HTTP port (connect-node's client, real framing).
    const sync = createClient(
      SyncService,
      createConnectTransport({ baseUrl: central.httpUrl, httpVersion: "1.1" }),
    );
    const abort = new AbortController();
    for await (const m of sync.watch({ sidecarId: "sc-connect" }, { signal: abort.signal })) {
      expect(m.message.case).toBe("snapshot");
      break;
    }
    abort.abort();
    // Reflection: buf curl finds SyncService and calls it without the .proto files.
    const { stdout: listed } = await run(
      "npx",
      [
        "buf",
        "curl",
        "--protocol",
        "grpc",
        "--http2-prior-knowledge",
        "--list-services",
        `http://${central.grpcAddress}`,
      ],
      { timeout: 30_000 },
    );
    expect(listed).toContain("governance.v1.SyncService");
    const { stdout: fleet } = await run(
      "npx",
      [
        "buf",
        "curl",
        "--protocol",
        "grpc",
        "--http2-prior-knowledge",
        `http://${central.grpcAddress}/governance.v1.SyncService/ListSidecars`,
      ],
      { timeout: 30_000 },
    );
    expect(JSON.parse(fleet).revision).toBe("13");
    const metrics = await (await fetch(`${central.httpUrl}/metrics`)).text();
    expect(metrics).toMatch(/govd_central_revision 13/);
    expect(metrics).toMatch(/govd_rpc_calls_total\{.*GetState/);
  });

  it("ends its Watch streams on SIGTERM and exits 0", async () => {
    const central = await startCentralProcess();
    processes.push(central);
    const f = follow(central.grpcAddress, "sc-1");
    followers.push(f);
    await f.reached(13n);
    central.program.signal("SIGTERM");
    expect(await central.program.exited).toBe(0);
  });
});
