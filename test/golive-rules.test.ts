import { describe, expect, it } from "vitest";
import { DenyReason, ExecutionClass } from "../gen/governance/v1/common_pb.js";
import {
  ALLOW,
  buildChecklist,
  type ChecklistInputs,
  decideExecution,
} from "../src/levers/golive/rules.js";

const { EXEMPT, PROD, PROD_EXEC } = ExecutionClass;
const NONE = DenyReason.UNSPECIFIED;
const OFF = DenyReason.GO_LIVE_DISABLED;
const KILL = DenyReason.KILL_SWITCH_ENGAGED;

describe("decideExecution", () => {
  // [class, go-live enabled, kill switch engaged, expected reason (UNSPECIFIED = allowed)]
  const matrix: [ExecutionClass, boolean, boolean, DenyReason][] = [
    [EXEMPT, false, false, NONE],
    [EXEMPT, false, true, NONE],
    [EXEMPT, true, false, NONE],
    [EXEMPT, true, true, NONE],
    [PROD, false, false, OFF],
    [PROD, false, true, OFF],
    [PROD, true, false, NONE],
    [PROD, true, true, NONE],
    [PROD_EXEC, false, false, OFF],
    [PROD_EXEC, false, true, OFF],
    [PROD_EXEC, true, false, NONE],
    [PROD_EXEC, true, true, KILL],
  ];

  it.each(matrix)(
    "class %s, go-live %s, kill switch %s -> reason %s",
    (cls, goLiveEnabled, killSwitchEngaged, reason) => {
      const v = decideExecution(cls, { goLiveEnabled, killSwitchEngaged });
      expect(v.reason).toBe(reason);
      expect(v.allowed).toBe(reason === NONE);
      if (reason === NONE) {
        expect(v).toEqual(ALLOW);
      } else {
        expect(v.message).toMatch(reason === OFF ? /go-live is disabled/ : /kill switch/);
      }
    },
  );

  it("ALLOW is frozen so no caller can turn it into a denial", () => {
    expect(Object.isFrozen(ALLOW)).toBe(true);
    expect(ALLOW.allowed).toBe(true);
    expect(ALLOW.reason).toBe(DenyReason.UNSPECIFIED);
  });
});

const READY: ChecklistInputs = {
  schemaVersion: 2,
  latestSchemaVersion: 2,
  globalRiskPolicy: { present: true, enabled: true },
  policyCounts: { risk: 4, heimdall: 4, regression: 4 },
  trippedWires: [],
  killSwitchEngaged: false,
};

const NAMES = [
  "store_migrated",
  "global_risk_policy",
  "policies_seeded",
  "no_tripwire_triggered",
  "kill_switch_released",
  "policy_fresh",
];

function failing(i: ChecklistInputs): string[] {
  return buildChecklist(i)
    .filter((c) => !c.ok)
    .map((c) => c.name);
}

function check(i: ChecklistInputs, name: string) {
  const c = buildChecklist(i).find((x) => x.name === name);
  if (!c) throw new Error(`no check named ${name}`);
  return c;
}

describe("buildChecklist", () => {
  it("lists every named check in order, all passing on a ready standalone sidecar", () => {
    const checks = buildChecklist(READY);
    expect(checks.map((c) => c.name)).toEqual(NAMES);
    expect(checks.every((c) => c.ok)).toBe(true);
    expect(check(READY, "policy_fresh").detail).toMatch(/standalone/);
  });

  it.each<[string, Partial<ChecklistInputs>]>([
    ["store_migrated", { schemaVersion: 1 }],
    ["store_migrated", { schemaVersion: 0 }],
    ["store_migrated", { schemaVersion: 3 }],
    ["global_risk_policy", { globalRiskPolicy: { present: false, enabled: false } }],
    ["global_risk_policy", { globalRiskPolicy: { present: true, enabled: false } }],
    ["policies_seeded", { policyCounts: { risk: 0, heimdall: 4, regression: 4 } }],
    ["policies_seeded", { policyCounts: { risk: 4, heimdall: 0, regression: 4 } }],
    ["policies_seeded", { policyCounts: { risk: 4, heimdall: 4, regression: 0 } }],
    ["no_tripwire_triggered", { trippedWires: ["WHOLESALE/contract_rate"] }],
    ["kill_switch_released", { killSwitchEngaged: true }],
    ["policy_fresh", { policyStalenessMs: 30_001, maxStalenessMs: 30_000 }],
  ])("names %s alone when it fails (%j)", (name, change) => {
    expect(failing({ ...READY, ...change })).toEqual([name]);
  });

  it("names every failing check at once", () => {
    const all: ChecklistInputs = {
      schemaVersion: 1,
      latestSchemaVersion: 2,
      globalRiskPolicy: { present: false, enabled: false },
      policyCounts: { risk: 0, heimdall: 0, regression: 0 },
      trippedWires: ["CAPITAL/roi_event"],
      killSwitchEngaged: true,
      policyStalenessMs: 10,
      maxStalenessMs: 5,
    };
    expect(failing(all)).toEqual(NAMES);
  });

  it("explains each failure in its detail", () => {
    expect(check({ ...READY, schemaVersion: 1 }, "store_migrated").detail).toBe(
      "schema version 1 of 2",
    );
    expect(
      check({ ...READY, globalRiskPolicy: { present: false, enabled: true } }, "global_risk_policy")
        .detail,
    ).toMatch(/no GLOBAL risk policy/);
    expect(
      check({ ...READY, globalRiskPolicy: { present: true, enabled: false } }, "global_risk_policy")
        .detail,
    ).toMatch(/disabled/);
    expect(
      check({ ...READY, policyCounts: { risk: 0, heimdall: 3, regression: 0 } }, "policies_seeded")
        .detail,
    ).toBe("no policies in: risk, regression");
    expect(
      check({ ...READY, trippedWires: ["A/x", "B/y"] }, "no_tripwire_triggered").detail,
    ).toMatch(/tripped: A\/x, B\/y/);
    expect(check({ ...READY, killSwitchEngaged: true }, "kill_switch_released").detail).toMatch(
      /engaged/,
    );
    expect(
      check({ ...READY, policyStalenessMs: 700, maxStalenessMs: 500 }, "policy_fresh").detail,
    ).toBe("policies 700 ms old (bound 500 ms)");
  });

  it("treats staleness equal to the bound as fresh, and no bound as fresh", () => {
    expect(failing({ ...READY, policyStalenessMs: 500, maxStalenessMs: 500 })).toEqual([]);
    expect(failing({ ...READY, policyStalenessMs: 0, maxStalenessMs: 500 })).toEqual([]);
    expect(failing({ ...READY, policyStalenessMs: 1_000_000 })).toEqual([]);
  });
});
