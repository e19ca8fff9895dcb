/**
 * What central's revision log holds: entity kinds and keys, their protobuf messages, and the
 * seed a fresh central starts from (the sidecar's seed rows: go-live disabled, kill switch
 * released, the seed risk, Heimdall and regression policies), one revision per entity.
 */
import { create, fromBinary, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import { type GoLiveState, GoLiveStateSchema } from "../../../gen/governance/v1/golive_pb.js";
import {
  type HeimdallPolicy,
  HeimdallPolicySchema,
  SuccessRateBound,
} from "../../../gen/governance/v1/heimdall_pb.js";
import {
  type RegressionPolicy,
  RegressionPolicySchema,
  TripwireAction,
  TripwireMethod,
} from "../../../gen/governance/v1/regression_pb.js";
import { type RiskPolicy, RiskPolicySchema } from "../../../gen/governance/v1/risk_pb.js";
import { type TripwireTrip, TripwireTripSchema } from "../../../gen/governance/v1/sync_pb.js";
import type { CentralStore } from "./central-store.js";

/** The kinds of entity a change carries (central_change.kind). */
export const Kind = {
  goLive: "go_live",
  risk: "risk_policy",
  heimdall: "heimdall_policy",
  regression: "regression_policy",
  trip: "tripwire_trip",
} as const;

/** The key of the go-live singleton. */
export const GO_LIVE_KEY = "go_live";

/** The key of a tripwire (policy or trip): DOMAIN/metric. */
export function wireKey(domain: string, metric: string): string {
  return `${domain}/${metric}`;
}

/** Protobuf bytes of an entity message. */
export const encode = {
  goLive: (m: MessageInitShape<typeof GoLiveStateSchema>) =>
    toBinary(GoLiveStateSchema, create(GoLiveStateSchema, m)),
  risk: (m: MessageInitShape<typeof RiskPolicySchema>) =>
    toBinary(RiskPolicySchema, create(RiskPolicySchema, m)),
  heimdall: (m: MessageInitShape<typeof HeimdallPolicySchema>) =>
    toBinary(HeimdallPolicySchema, create(HeimdallPolicySchema, m)),
  regression: (m: MessageInitShape<typeof RegressionPolicySchema>) =>
    toBinary(RegressionPolicySchema, create(RegressionPolicySchema, m)),
  trip: (m: MessageInitShape<typeof TripwireTripSchema>) =>
    toBinary(TripwireTripSchema, create(TripwireTripSchema, m)),
};

/** Entity messages from their stored bytes. */
export const decode = {
  goLive: (b: Uint8Array): GoLiveState => fromBinary(GoLiveStateSchema, b),
  risk: (b: Uint8Array): RiskPolicy => fromBinary(RiskPolicySchema, b),
  heimdall: (b: Uint8Array): HeimdallPolicy => fromBinary(HeimdallPolicySchema, b),
  regression: (b: Uint8Array): RegressionPolicy => fromBinary(RegressionPolicySchema, b),
  trip: (b: Uint8Array): TripwireTrip => fromBinary(TripwireTripSchema, b),
};

const M = (n: number) => n.toFixed(2);

/** The seed entities, in the order they become revisions 1..13 (DESIGN.md "Seed rows"). */
function seedEntities(): { kind: string; key: string; bytes: (revision: number) => Uint8Array }[] {
  const risk = [
    ["GLOBAL", 250, 1500, 800, 10000, true],
    ["WHOLESALE", 200, 1000, 500, 5000, true],
    ["CAPITAL", 150, 750, 300, 2000, true],
    ["NOTIFY", 50, 250, 100, 1000, false],
  ] as const;
  const heimdall = [
    ["WHOLESALE_OFFER", 0.92, 75, 0.82],
    ["BUYER_MATCH", 0.9, 50, 0.8],
    ["CAPITAL_ROUTE", 0.95, 100, 0.85],
    ["FOLLOWUP_ACTION", 0.9, 60, 0.8],
  ] as const;
  const regression = [
    ["WHOLESALE", "contract_rate", 0.2, TripwireAction.THROTTLE],
    ["WHOLESALE", "offer_accept_rate", 0.15, TripwireAction.THROTTLE],
    ["BUYER_MATCH", "match_success", 0.25, TripwireAction.THROTTLE],
    ["CAPITAL", "roi_event", 0.3, TripwireAction.KILL_SWITCH],
  ] as const;
  return [
    {
      kind: Kind.goLive,
      key: GO_LIVE_KEY,
      bytes: (revision) =>
        encode.goLive({
          goLiveEnabled: false,
          killSwitchEngaged: false,
          changedBy: "seed",
          reason: "initial state: go-live disabled, kill switch released",
          revision: BigInt(revision),
        }),
    },
    ...risk.map(([engine, loss, exposure, open, actions, enabled]) => ({
      kind: Kind.risk,
      key: engine,
      bytes: () =>
        encode.risk({
          engine,
          maxDailyLoss: M(loss),
          maxDailyExposure: M(exposure),
          maxOpenRisk: M(open),
          maxActionsPerDay: actions,
          enabled,
          updatedBy: "seed",
        }),
    })),
    ...heimdall.map(([domain, confidence, trials, rate]) => ({
      kind: Kind.heimdall,
      key: domain,
      bytes: () =>
        encode.heimdall({
          domain,
          minConfidenceProd: confidence,
          minSandboxTrials: trials,
          minSandboxSuccessRate: rate,
          prodUseEnabled: false,
          lookbackDays: 30,
          successRateBound: SuccessRateBound.RAW,
          boundConfidence: 0.95,
          updatedBy: "seed",
        }),
    })),
    ...regression.map(([domain, metric, drop, action]) => ({
      kind: Kind.regression,
      key: wireKey(domain, metric),
      bytes: () =>
        encode.regression({
          domain,
          metric,
          windowEvents: 50,
          baselineEvents: 200,
          minEventsToEnforce: 250,
          maxDropFraction: drop,
          action,
          enabled: false,
          updatedBy: "seed",
          method: TripwireMethod.RELATIVE_DROP,
          expectedEventsBetweenFalseAlarms: 100_000,
        }),
    })),
  ];
}

/**
 * Seeds a store that has no revision yet (revisions 1..13, actor "seed"); a store already
 * seeded, by this replica or another, is left alone. Returns how many revisions it wrote.
 */
export async function seedCentral(store: CentralStore): Promise<number> {
  return store.write(async (w) => {
    const head = await w.lock();
    if (head.revision > 0) return 0;
    const author = {
      actor: "seed",
      reason: "seed policies of a fresh central store",
      correlationId: "seed",
    };
    let n = 0;
    for (const e of seedEntities()) {
      await w.append(e.kind, e.key, e.bytes, author);
      n += 1;
    }
    return n;
  });
}
