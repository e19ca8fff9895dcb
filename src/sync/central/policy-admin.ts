/**
 * RiskService and HeimdallService on central: their policies, authoritative here, each upsert
 * a revision streamed to the fleet. Reserve, Settle, Recommend and the other decisions are
 * served by the sidecars; the fleet ledger and scorecard are booked from the events they ship.
 */
import type { DescMessage, MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import {
  HeimdallPolicySchema,
  HeimdallService,
  SuccessRateBound,
} from "../../../gen/governance/v1/heimdall_pb.js";
import {
  RiskEventSchema,
  RiskPolicySchema,
  RiskService,
} from "../../../gen/governance/v1/risk_pb.js";
import { utcDay } from "../../clock.js";
import { keyedPage } from "../../levers/answer-pages.js";
import { money } from "../../levers/convert.js";
import { DEFAULT_BOUND_CONFIDENCE, DEFAULT_LOOKBACK_DAYS } from "../../levers/heimdall/service.js";
import { RISK_EVENT_ACTIONS, riskEventOf } from "../../levers/risk/risk-events.js";
import { type AsyncServiceBinding, bindAsyncService } from "../../levers/service-binding.js";
import { formatMoney } from "../../money.js";
import { decode, encode, Kind } from "./central-entities.js";
import type { CentralStore } from "./central-store.js";
import { fleetLedgerOf } from "./event-ingest.js";
import { shipmentLags } from "./fleet.js";
import { fleetEventPage } from "./fleet-events.js";
import { fleetOpenRiskOf } from "./fleet-open-risk.js";
import { fleetFigures, fleetScorecardRows } from "./fleet-scorecard.js";
import { DECISIONS_ON_SIDECARS } from "./golive-admin.js";
import type { RevisionWrite } from "./revision-write.js";

/** Why fleet figures are not answered on central yet. */
export const FLEET_FIGURES_LATER =
  "fleet figures on central come with event shipping from the sidecars (a later release); ask a sidecar for its own";

/** A ListPolicies answer from central: one page of policies and central's revision. */
export async function centralPolicies<D extends DescMessage, T extends MessageInitShape<D>>(
  store: CentralStore,
  schema: D,
  kind: string,
  decodeOne: (bytes: Uint8Array) => T,
  keyOf: (policy: T) => string,
  request: { pageToken: string; limit: number },
  maxAnswerBytes: number,
) {
  const { head, entities } = await store.snapshot();
  const policies = entities.filter((e) => e.kind === kind).map((e) => decodeOne(e.entity));
  const page = keyedPage(schema, policies, keyOf, request.pageToken, request.limit, maxAnswerBytes);
  return {
    policies: page.items,
    policyRevision: BigInt(head.revision),
    nextPageToken: page.nextPageToken,
  };
}

/** RiskService bound to central's store. */
export function centralRiskService(
  store: CentralStore,
  maxAnswerBytes: number,
): AsyncServiceBinding<RevisionWrite> {
  return bindAsyncService<typeof RiskService, RevisionWrite>(
    RiskService,
    {
      listPolicies: (req) =>
        centralPolicies(
          store,
          RiskPolicySchema,
          Kind.risk,
          decode.risk,
          (p) => p.engine,
          req,
          maxAnswerBytes,
        ),
      getLedgerToday: async (req) => {
        const day = utcDay(store.clock.now());
        const policies = new Map(
          (await store.entities(Kind.risk)).map((e) => [e.key, decode.risk(e.entity)]),
        );
        const rows = new Map((await fleetLedgerOf(store.db, day)).map((r) => [r.engine, r]));
        const open = await fleetOpenRiskOf(store.db);
        const engines = req.engine
          ? [req.engine]
          : [...new Set([...policies.keys(), ...rows.keys(), ...open.keys()])].sort();
        const behind = await shipmentLags(store.db);
        return {
          day,
          // Open risk: what every sidecar holds reserved as of the events it shipped.
          entries: engines.map((engine) => {
            const row = rows.get(engine);
            return {
              engine,
              exposureUsed: formatMoney(row?.exposure ?? 0n),
              openRisk: formatMoney(open.get(engine) ?? 0n),
              realizedLoss: formatMoney(row?.realizedLoss ?? 0n),
              actions: row?.actions ?? 0,
              denials: row?.denials ?? 0,
              policyEnabled: policies.get(engine)?.enabled ?? false,
            };
          }),
          behind,
        };
      },
      listEvents: (req) =>
        fleetEventPage(
          store.db,
          RiskEventSchema,
          req,
          { lever: "risk", actions: RISK_EVENT_ACTIONS, subject: req.engine },
          (r) => ({ ...riskEventOf(r), sidecarId: r.sidecar_id }),
          maxAnswerBytes,
        ),
      upsertPolicy: async (req, w) => {
        // Parsed and written back in canonical form ("150.5" is stored as "150.50").
        const caps = {
          maxDailyLoss: formatMoney(money("max_daily_loss", req.maxDailyLoss)),
          maxDailyExposure: formatMoney(money("max_daily_exposure", req.maxDailyExposure)),
          maxOpenRisk: formatMoney(money("max_open_risk", req.maxOpenRisk)),
        };
        let policy: ReturnType<typeof decode.risk> | undefined;
        const revision = await w.append(
          Kind.risk,
          req.engine,
          (_revision, committedMs) => {
            const bytes = encode.risk({
              engine: req.engine,
              ...caps,
              maxActionsPerDay: req.maxActionsPerDay,
              enabled: req.enabled,
              updatedBy: req.actor,
              updatedAt: timestampFromMs(committedMs),
            });
            policy = decode.risk(bytes);
            return bytes;
          },
          req,
        );
        return { policy, policyRevision: BigInt(revision) };
      },
    },
    {
      admin: ["upsertPolicy"],
      unserved: {
        reserve: `Reserve ${DECISIONS_ON_SIDECARS}`,
        settle: `Settle ${DECISIONS_ON_SIDECARS}`,
        release: `Release ${DECISIONS_ON_SIDECARS}`,
      },
    },
  );
}

/** HeimdallService bound to central's store. */
export function centralHeimdallService(
  store: CentralStore,
  maxAnswerBytes: number,
): AsyncServiceBinding<RevisionWrite> {
  return bindAsyncService<typeof HeimdallService, RevisionWrite>(
    HeimdallService,
    {
      listPolicies: (req) =>
        centralPolicies(
          store,
          HeimdallPolicySchema,
          Kind.heimdall,
          decode.heimdall,
          (p) => p.domain,
          req,
          maxAnswerBytes,
        ),
      getScorecardToday: async (req) => {
        const day = utcDay(store.clock.now());
        const rows = (await fleetScorecardRows(store.db, day)).filter((r) => r.day === day);
        const figures = new Map(fleetFigures(rows).map((f) => [f.domain, f]));
        const domains = req.domain
          ? [req.domain]
          : [
              ...new Set([
                ...(await store.entities(Kind.heimdall)).map((e) => e.key),
                ...figures.keys(),
              ]),
            ].sort();
        return {
          day,
          scorecards: domains.map((domain) => {
            const f = figures.get(domain);
            const trials = f?.trials ?? 0;
            return {
              domain,
              day,
              trials,
              successes: f?.successes ?? 0,
              successRate: trials === 0 ? 0 : (f?.successes ?? 0) / trials,
              avgConfidence: trials === 0 ? 0 : (f?.confidenceSum ?? 0) / trials,
            };
          }),
          behind: await shipmentLags(store.db),
        };
      },
      upsertPolicy: async (req, w) => {
        let policy: ReturnType<typeof decode.heimdall> | undefined;
        const revision = await w.append(
          Kind.heimdall,
          req.domain,
          (_revision, committedMs) => {
            const bytes = encode.heimdall({
              domain: req.domain,
              minConfidenceProd: req.minConfidenceProd,
              minSandboxTrials: req.minSandboxTrials,
              minSandboxSuccessRate: req.minSandboxSuccessRate,
              prodUseEnabled: req.prodUseEnabled,
              lookbackDays: req.lookbackDays || DEFAULT_LOOKBACK_DAYS,
              successRateBound:
                req.successRateBound === SuccessRateBound.WILSON_LOWER
                  ? SuccessRateBound.WILSON_LOWER
                  : SuccessRateBound.RAW,
              boundConfidence: req.boundConfidence || DEFAULT_BOUND_CONFIDENCE,
              updatedBy: req.actor,
              updatedAt: timestampFromMs(committedMs),
            });
            policy = decode.heimdall(bytes);
            return bytes;
          },
          req,
        );
        return { policy, policyRevision: BigInt(revision) };
      },
    },
    {
      admin: ["upsertPolicy"],
      unserved: {
        recordSandboxTrial: `RecordSandboxTrial ${DECISIONS_ON_SIDECARS}`,
        recommend: `Recommend ${DECISIONS_ON_SIDECARS}`,
        requireProdEligible: `RequireProdEligible ${DECISIONS_ON_SIDECARS}`,
      },
    },
  );
}
