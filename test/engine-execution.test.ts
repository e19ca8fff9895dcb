/**
 * The engine library decides go-live with a copy of the sidecar's rule (it cannot import the
 * sidecar's code without its SQLite dependency): both must agree on every input. And the
 * route table: patterns, first match wins, unclassified routes are PROD, bad keys are refused.
 */
import { describe, expect, it } from "vitest";
import { DenyReason, ExecutionClass } from "../gen/governance/v1/common_pb.js";
import {
  DenyReason as EngineDenyReason,
  ExecutionClass as EngineExecutionClass,
  decideExecution as engineRule,
  RouteClassifier,
} from "../packages/engine/src/index.js";
import { decideExecution as sidecarRule } from "../src/levers/golive/rules.js";

describe("the engine's execution rule", () => {
  it("agrees with the sidecar's on every class and switch setting", () => {
    const classes = Object.values(ExecutionClass).filter((v) => typeof v === "number");
    expect(classes).toHaveLength(4);
    for (const cls of [...classes, 99] as ExecutionClass[]) {
      for (const goLiveEnabled of [false, true]) {
        for (const killSwitchEngaged of [false, true]) {
          const flags = { goLiveEnabled, killSwitchEngaged };
          expect(engineRule(cls as number, flags), JSON.stringify({ cls, ...flags })).toEqual(
            sidecarRule(cls, flags),
          );
        }
      }
    }
  });

  it("uses the same enum values as the sidecar's contract", () => {
    expect({ ...EngineDenyReason }).toEqual({ ...DenyReason });
    expect({ ...EngineExecutionClass }).toEqual({ ...ExecutionClass });
  });
});

describe("route table", () => {
  const routes = new RouteClassifier({
    "GET /health": "EXEMPT",
    "/metrics": "EXEMPT",
    "POST /deals/:id/execute": "PROD_EXEC",
    "POST /deals/*": "PROD",
    "/sandbox/*": "EXEMPT",
  });

  it.each([
    ["GET", "/health", ExecutionClass.EXEMPT],
    ["GET", "/health?verbose=1", ExecutionClass.EXEMPT],
    ["POST", "/health", ExecutionClass.PROD],
    ["GET", "/metrics", ExecutionClass.EXEMPT],
    ["POST", "/deals/d-7/execute", ExecutionClass.PROD_EXEC],
    ["POST", "/deals//execute", ExecutionClass.PROD],
    ["POST", "/deals/d-7/execute/now", ExecutionClass.PROD],
    ["POST", "/deals/d-7", ExecutionClass.PROD],
    ["GET", "/sandbox", ExecutionClass.EXEMPT],
    ["GET", "/sandbox/a/b", ExecutionClass.EXEMPT],
    ["GET", "/unknown", ExecutionClass.PROD],
    ["GET", "/", ExecutionClass.PROD],
  ])("%s %s is class %i", (method, url, cls) => {
    expect(routes.classify(method, url)).toBe(cls);
  });

  it("takes the first matching entry, in the order written", () => {
    const r = new RouteClassifier({ "/deals/*": "EXEMPT", "POST /deals/:id": "PROD_EXEC" });
    expect(r.classify("POST", "/deals/d-1")).toBe(ExecutionClass.EXEMPT);
  });

  it.each([
    ["deals", /write "METHOD \/path"/],
    ["post /deals", /write "METHOD \/path"/],
    ["/a/*/b", /may only end a path/],
  ])("refuses the key %s", (key, message) => {
    expect(() => new RouteClassifier({ [key]: "PROD" })).toThrow(message);
  });

  it("refuses an unknown class", () => {
    expect(() => new RouteClassifier({ "/x": "LIVE" as never })).toThrow(
      /EXEMPT, PROD or PROD_EXEC/,
    );
  });
});
