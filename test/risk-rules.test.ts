import { describe, expect, it } from "vitest";
import { DenyReason } from "../gen/governance/v1/common_pb.js";
import {
  type Caps,
  capBreach,
  decideReserve,
  headroom,
  NO_USAGE,
  type ReserveInputs,
  type Usage,
} from "../src/levers/risk/rules.js";

const M = 1_000_000n;

const CAPS: Caps = {
  maxDailyLoss: 100n * M,
  maxDailyExposure: 1000n * M,
  maxOpenRisk: 500n * M,
  maxActionsPerDay: 10,
  enabled: true,
};

const use = (u: Partial<Usage>): Usage => ({ ...NO_USAGE, ...u });

const REASONS = {
  ENGINE: {
    loss: DenyReason.ENGINE_LOSS_CAP,
    actions: DenyReason.ENGINE_ACTION_CAP,
    exposure: DenyReason.ENGINE_EXPOSURE_CAP,
    openRisk: DenyReason.ENGINE_OPEN_RISK_CAP,
  },
  GLOBAL: {
    loss: DenyReason.GLOBAL_LOSS_CAP,
    actions: DenyReason.GLOBAL_ACTION_CAP,
    exposure: DenyReason.GLOBAL_EXPOSURE_CAP,
    openRisk: DenyReason.GLOBAL_OPEN_RISK_CAP,
  },
} as const;

describe.each(["ENGINE", "GLOBAL"] as const)("capBreach, %s scope", (scope) => {
  const r = REASONS[scope];
  const breach = (usage: Usage, amount: bigint, caps: Caps = CAPS) =>
    capBreach(scope, "WHOLESALE", caps, usage, amount);

  it("lets a reservation through when every dimension fits", () => {
    expect(breach(NO_USAGE, 1n * M)).toBeUndefined();
  });

  it("denies on loss once realized loss reaches the cap, not before", () => {
    const at = breach(use({ realizedLoss: 100n * M }), 1n);
    expect(at?.allowed).toBe(false);
    expect(at?.reason).toBe(r.loss);
    expect(at?.message).toMatch(/^WHOLESALE: .*loss/);
    expect(breach(use({ realizedLoss: 150n * M }), 1n)?.reason).toBe(r.loss);
    expect(breach(use({ realizedLoss: 100n * M - 1n }), 1n)).toBeUndefined();
  });

  it("denies on actions when actions + 1 exceeds the cap", () => {
    expect(breach(use({ actions: 9 }), 1n)).toBeUndefined();
    const at = breach(use({ actions: 10 }), 1n);
    expect(at?.reason).toBe(r.actions);
    expect(at?.message).toMatch(/action cap of 10/);
    expect(breach(use({ actions: 1 }), 1n, { ...CAPS, maxActionsPerDay: 0 })?.reason).toBe(
      r.actions,
    );
  });

  it("denies on exposure when exposure + amount exceeds the cap; equal is allowed", () => {
    const caps = { ...CAPS, maxOpenRisk: 10_000n * M };
    expect(breach(use({ exposure: 600n * M }), 400n * M, caps)).toBeUndefined();
    expect(breach(use({ exposure: 600n * M }), 400n * M + 1n, caps)?.reason).toBe(r.exposure);
    expect(breach(use({ exposure: 1000n * M }), 1n, caps)?.reason).toBe(r.exposure);
    // One reservation alone larger than the whole cap is refused.
    expect(breach(NO_USAGE, 1000n * M + 1n, caps)?.reason).toBe(r.exposure);
    expect(breach(NO_USAGE, 1000n * M, caps)).toBeUndefined();
  });

  it("denies on open risk when open risk + amount exceeds the cap; equal is allowed", () => {
    expect(breach(use({ openRisk: 300n * M }), 200n * M)).toBeUndefined();
    expect(breach(use({ openRisk: 300n * M }), 200n * M + 1n)?.reason).toBe(r.openRisk);
    expect(breach(NO_USAGE, 500n * M + 1n)?.reason).toBe(r.openRisk);
    // Open risk is concurrent: daily exposure does not count towards it.
    expect(breach(use({ exposure: 900n * M }), 100n * M)).toBeUndefined();
  });

  it("reports loss first, then actions, then exposure, then open risk", () => {
    const everything = use({
      realizedLoss: 100n * M,
      actions: 10,
      exposure: 1000n * M,
      openRisk: 500n * M,
    });
    expect(breach(everything, 1n)?.reason).toBe(r.loss);
    expect(breach({ ...everything, realizedLoss: 0n }, 1n)?.reason).toBe(r.actions);
    expect(breach({ ...everything, realizedLoss: 0n, actions: 0 }, 1n)?.reason).toBe(r.exposure);
    expect(breach({ ...everything, realizedLoss: 0n, actions: 0, exposure: 0n }, 1n)?.reason).toBe(
      r.openRisk,
    );
  });
});

const ENGINE_CAPS: Caps = {
  maxDailyLoss: 200n * M,
  maxDailyExposure: 1000n * M,
  maxOpenRisk: 500n * M,
  maxActionsPerDay: 100,
  enabled: true,
};
const GLOBAL_CAPS: Caps = {
  maxDailyLoss: 250n * M,
  maxDailyExposure: 1500n * M,
  maxOpenRisk: 800n * M,
  maxActionsPerDay: 1000,
  enabled: true,
};

function inputs(over: Partial<ReserveInputs> = {}): ReserveInputs {
  return {
    engine: "WHOLESALE",
    amount: 10n * M,
    flags: { goLiveEnabled: true, killSwitchEngaged: false },
    throttled: new Set(),
    enginePolicy: ENGINE_CAPS,
    globalPolicy: GLOBAL_CAPS,
    engineUsage: NO_USAGE,
    globalUsage: NO_USAGE,
    ...over,
  };
}

describe("decideReserve", () => {
  it("allows a reservation inside both policies", () => {
    const d = decideReserve(inputs());
    expect(d.verdict.allowed).toBe(true);
    expect(d.verdict.reason).toBe(DenyReason.UNSPECIFIED);
    expect(d.notEnforced).toEqual([]);
  });

  it("checks go-live first: disabled go-live wins over everything else", () => {
    const d = decideReserve(
      inputs({
        flags: { goLiveEnabled: false, killSwitchEngaged: true },
        enginePolicy: undefined,
        throttled: new Set(["WHOLESALE"]),
      }),
    );
    expect(d.verdict.allowed).toBe(false);
    expect(d.verdict.reason).toBe(DenyReason.GO_LIVE_DISABLED);
  });

  it("checks the kill switch before the engine, throttle and caps", () => {
    const d = decideReserve(
      inputs({
        flags: { goLiveEnabled: true, killSwitchEngaged: true },
        enginePolicy: undefined,
        throttled: new Set(["WHOLESALE"]),
        engineUsage: use({ realizedLoss: 999n * M }),
      }),
    );
    expect(d.verdict.reason).toBe(DenyReason.KILL_SWITCH_ENGAGED);
    expect(
      decideReserve(inputs({ flags: { goLiveEnabled: true, killSwitchEngaged: true } })).verdict
        .reason,
    ).toBe(DenyReason.KILL_SWITCH_ENGAGED);
  });

  it("refuses an engine without a policy of its own, even under a GLOBAL policy", () => {
    const d = decideReserve(inputs({ engine: "NEWBIE", enginePolicy: undefined }));
    expect(d.verdict.allowed).toBe(false);
    expect(d.verdict.reason).toBe(DenyReason.UNKNOWN_ENGINE);
    expect(d.verdict.message).toMatch(/NEWBIE/);
  });

  it("refuses a throttled engine, and only that engine", () => {
    const throttled = new Set(["WHOLESALE", "BUYER_MATCH"]);
    const d = decideReserve(inputs({ throttled }));
    expect(d.verdict.allowed).toBe(false);
    expect(d.verdict.reason).toBe(DenyReason.TRIPWIRE_THROTTLED);
    expect(decideReserve(inputs({ engine: "CAPITAL", throttled })).verdict.allowed).toBe(true);
  });

  it.each<[keyof Usage, Partial<Usage>, bigint, DenyReason, DenyReason]>([
    [
      "realizedLoss",
      { realizedLoss: 200n * M },
      1n,
      DenyReason.ENGINE_LOSS_CAP,
      DenyReason.GLOBAL_LOSS_CAP,
    ],
    ["actions", { actions: 100 }, 1n, DenyReason.ENGINE_ACTION_CAP, DenyReason.GLOBAL_ACTION_CAP],
    [
      "exposure",
      { exposure: 1000n * M },
      1n,
      DenyReason.ENGINE_EXPOSURE_CAP,
      DenyReason.GLOBAL_EXPOSURE_CAP,
    ],
    [
      "openRisk",
      { openRisk: 500n * M },
      1n,
      DenyReason.ENGINE_OPEN_RISK_CAP,
      DenyReason.GLOBAL_OPEN_RISK_CAP,
    ],
  ])("a %s breach is reported with the scope that broke", (_, usage, amount, eng, glob) => {
    // The engine's ledger at the engine cap.
    expect(decideReserve(inputs({ engineUsage: use(usage), amount })).verdict.reason).toBe(eng);
    // GLOBAL at the same level is below the GLOBAL caps: the engine's policy is the one that breaks.
    // Push GLOBAL to its own caps with a roomy engine ledger.
    const globalAt = use({
      realizedLoss: usage.realizedLoss !== undefined ? 250n * M : 0n,
      actions: usage.actions !== undefined ? 1000 : 0,
      exposure: usage.exposure !== undefined ? 1500n * M : 0n,
      openRisk: usage.openRisk !== undefined ? 800n * M : 0n,
    });
    const g = decideReserve(inputs({ globalUsage: globalAt, amount }));
    expect(g.verdict.allowed).toBe(false);
    expect(g.verdict.reason).toBe(glob);
    expect(g.verdict.message).toMatch(/^GLOBAL: /);
  });

  it("enforces the GLOBAL exposure cap across engines even when the engine has room", () => {
    const d = decideReserve(
      inputs({ amount: 100n * M, globalUsage: use({ exposure: 1450n * M }) }),
    );
    expect(d.verdict.reason).toBe(DenyReason.GLOBAL_EXPOSURE_CAP);
    const fits = decideReserve(
      inputs({ amount: 50n * M, globalUsage: use({ exposure: 1450n * M }) }),
    );
    expect(fits.verdict.allowed).toBe(true);
  });

  it("reports the engine breach before the GLOBAL one when both break", () => {
    const d = decideReserve(
      inputs({
        amount: 600n * M,
        engineUsage: use({ exposure: 500n * M }),
        globalUsage: use({ exposure: 1000n * M }),
      }),
    );
    expect(d.verdict.reason).toBe(DenyReason.ENGINE_EXPOSURE_CAP);
  });

  it("does not enforce a disabled engine policy, but reports its breach", () => {
    const d = decideReserve(
      inputs({
        engine: "NOTIFY",
        enginePolicy: { ...ENGINE_CAPS, enabled: false },
        engineUsage: use({ exposure: 1000n * M }),
      }),
    );
    expect(d.verdict.allowed).toBe(true);
    expect(d.notEnforced).toHaveLength(1);
    expect(d.notEnforced[0]).toMatch(/^ENGINE_EXPOSURE_CAP: NOTIFY: .*not enforced/);
  });

  it("does not enforce a disabled GLOBAL policy, but reports its breach", () => {
    const d = decideReserve(
      inputs({
        globalPolicy: { ...GLOBAL_CAPS, enabled: false },
        globalUsage: use({ realizedLoss: 250n * M }),
      }),
    );
    expect(d.verdict.allowed).toBe(true);
    expect(d.notEnforced).toHaveLength(1);
    expect(d.notEnforced[0]).toMatch(/^GLOBAL_LOSS_CAP: GLOBAL: .*not enforced/);
  });

  it("reports a disabled engine breach and still enforces an enabled GLOBAL breach", () => {
    const d = decideReserve(
      inputs({
        enginePolicy: { ...ENGINE_CAPS, enabled: false },
        engineUsage: use({ actions: 100 }),
        globalUsage: use({ openRisk: 800n * M }),
      }),
    );
    expect(d.verdict.allowed).toBe(false);
    expect(d.verdict.reason).toBe(DenyReason.GLOBAL_OPEN_RISK_CAP);
    expect(d.notEnforced).toHaveLength(1);
    expect(d.notEnforced[0]).toMatch(/^ENGINE_ACTION_CAP/);
  });

  it("reports both breaches when both policies are disabled", () => {
    const d = decideReserve(
      inputs({
        enginePolicy: { ...ENGINE_CAPS, enabled: false },
        globalPolicy: { ...GLOBAL_CAPS, enabled: false },
        engineUsage: use({ exposure: 1000n * M }),
        globalUsage: use({ exposure: 1500n * M }),
      }),
    );
    expect(d.verdict.allowed).toBe(true);
    expect(d.notEnforced.map((s) => s.split(":")[0])).toEqual([
      "ENGINE_EXPOSURE_CAP",
      "GLOBAL_EXPOSURE_CAP",
    ]);
  });

  it("a disabled policy without a breach reports nothing", () => {
    const d = decideReserve(inputs({ enginePolicy: { ...ENGINE_CAPS, enabled: false } }));
    expect(d.verdict.allowed).toBe(true);
    expect(d.notEnforced).toEqual([]);
  });
});

describe("headroom", () => {
  it("is the cap minus the usage on each dimension", () => {
    expect(
      headroom(CAPS, { exposure: 250n * M, openRisk: 100n * M, realizedLoss: 40n * M, actions: 3 }),
    ).toEqual({ exposure: 750n * M, openRisk: 400n * M, loss: 60n * M, actions: 7 });
  });

  it("is the whole cap with no usage", () => {
    expect(headroom(CAPS, NO_USAGE)).toEqual({
      exposure: 1000n * M,
      openRisk: 500n * M,
      loss: 100n * M,
      actions: 10,
    });
  });

  it("never goes below zero when usage exceeds a (lowered) cap", () => {
    const h = headroom(CAPS, {
      exposure: 2000n * M,
      openRisk: 501n * M,
      realizedLoss: 100n * M + 1n,
      actions: 11,
    });
    expect(h).toEqual({ exposure: 0n, openRisk: 0n, loss: 0n, actions: 0 });
  });
});
