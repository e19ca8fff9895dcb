/**
 * The engine library's go-live middleware in real Express, Fastify and node:http apps, fed by
 * a real sidecar's WatchGoLive stream: each route class is blocked and allowed as an operator
 * enables go-live and engages and releases the kill switch, and the middleware sees each change
 * within 50 ms of the operator's call returning.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GoLiveService } from "../gen/governance/v1/golive_pb.js";
import { createEngine, type Engine } from "../packages/engine/src/index.js";
import { type EngineApp, expressApp, fastifyApp, nodeApp } from "./support/engine-apps.js";
import { type RunningSidecar, startSidecar, TOKEN } from "./support/sidecar.js";

/** Status and deny reason of each route: [health, deals, execute]. */
async function statuses(app: EngineApp): Promise<string[]> {
  const ask = async (method: string, path: string) => {
    const res = await fetch(`${app.url}${path}`, { method });
    const body = (await res.json()) as { reason?: string; message?: string; error?: string };
    if (res.status === 503) {
      expect(res.headers.get("content-type")).toMatch(/^application\/json/);
      expect(body.error).toMatch(/blocked by govd/);
      expect(body.message).not.toBe("");
      return `503 ${body.reason}`;
    }
    return String(res.status);
  };
  return [
    await ask("GET", "/health"),
    await ask("GET", "/deals?page=2"),
    await ask("POST", "/deals/d-7/execute"),
  ];
}

/** Milliseconds from the operator's call returning until the engine's verdict is `allowed`. */
async function seenWithin(govd: Engine, cls: "PROD" | "PROD_EXEC", allowed: boolean) {
  const start = performance.now();
  while (govd.decide(cls).allowed !== allowed) {
    if (performance.now() - start > 1_000) throw new Error(`${cls} never became ${allowed}`);
    await new Promise((r) => setImmediate(r));
  }
  return performance.now() - start;
}

describe.each([
  ["express", expressApp],
  ["fastify", fastifyApp],
  ["node:http", nodeApp],
] as const)("go-live middleware in %s", (_name, startApp) => {
  let s: RunningSidecar;
  let govd: Engine;
  let app: EngineApp;
  beforeAll(async () => {
    s = await startSidecar();
    govd = createEngine({ address: s.grpcAddress, engine: "WHOLESALE" });
    await govd.ready();
    app = await startApp(govd);
  });
  afterAll(async () => {
    await app.close();
    govd.close();
    await s.stop();
  });

  const operator = (method: "enable" | "engageKillSwitch" | "releaseKillSwitch" | "disable") =>
    s.grpc.call(GoLiveService, method, { actor: "ops", reason: "test" }, { token: TOKEN });

  it("blocks PROD and PROD_EXEC until go-live, PROD_EXEC under the kill switch", async () => {
    const disabled = "503 DENY_REASON_GO_LIVE_DISABLED";
    expect(await statuses(app)).toEqual(["200", disabled, disabled]);

    await operator("enable");
    expect(await seenWithin(govd, "PROD", true)).toBeLessThan(50);
    expect(await statuses(app)).toEqual(["200", "200", "200"]);

    await operator("engageKillSwitch");
    expect(await seenWithin(govd, "PROD_EXEC", false)).toBeLessThan(50);
    expect(await statuses(app)).toEqual(["200", "200", "503 DENY_REASON_KILL_SWITCH_ENGAGED"]);

    await operator("releaseKillSwitch");
    expect(await seenWithin(govd, "PROD_EXEC", true)).toBeLessThan(50);
    expect(await statuses(app)).toEqual(["200", "200", "200"]);

    await operator("disable");
    expect(await seenWithin(govd, "PROD", false)).toBeLessThan(50);
    expect(await statuses(app)).toEqual(["200", disabled, disabled]);
  });
});
