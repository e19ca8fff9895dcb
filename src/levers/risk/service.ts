/** RiskService handlers: policies, today's ledger, Reserve, Settle, Release and the event trail. */
import { randomUUID } from "node:crypto";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { DenyReason } from "../../../gen/governance/v1/common_pb.js";
import {
  type RemainingSchema,
  ReservationStatus,
  RiskEventSchema,
  RiskPolicySchema,
  RiskService,
} from "../../../gen/governance/v1/risk_pb.js";
import { utcDay } from "../../clock.js";
import { formatMoney } from "../../money.js";
import { assertOwnTrail, eventPage, policiesAnswer } from "../answer-pages.js";
import type { LeverContext } from "../context.js";
import { actorOf, money, timestamp } from "../convert.js";
import { bindService, type ServiceBinding } from "../service-binding.js";
import {
  closeReservation,
  lossBeyondAmount,
  RESERVE_RELEASES,
  releaseExpired,
} from "./reservations.js";
import type { ReservationRecord, RiskPolicyRecord } from "./risk-book.js";
import { listRiskEvents } from "./risk-events.js";
import { decideReserve, headroom, type Usage } from "./rules.js";

function remainingMessage(
  policy: RiskPolicyRecord | undefined,
  usage: Usage,
): MessageInitShape<typeof RemainingSchema> | undefined {
  if (!policy) return undefined;
  const h = headroom(policy, usage);
  return {
    exposure: formatMoney(h.exposure),
    openRisk: formatMoney(h.openRisk),
    loss: formatMoney(h.loss),
    actions: h.actions,
  };
}

function policyMessage(p: RiskPolicyRecord) {
  return {
    engine: p.engine,
    maxDailyLoss: formatMoney(p.maxDailyLoss),
    maxDailyExposure: formatMoney(p.maxDailyExposure),
    maxOpenRisk: formatMoney(p.maxOpenRisk),
    maxActionsPerDay: p.maxActionsPerDay,
    enabled: p.enabled,
    updatedBy: p.updatedBy,
    updatedAt: timestamp(p.updatedMs),
  };
}

const STATUS = {
  OPEN: ReservationStatus.OPEN,
  SETTLED: ReservationStatus.SETTLED,
  RELEASED: ReservationStatus.RELEASED,
  EXPIRED: ReservationStatus.EXPIRED,
} as const;

function reservationMessage(r: ReservationRecord) {
  return {
    reservationId: r.id,
    engine: r.engine,
    amount: formatMoney(r.amount),
    realizedLoss: formatMoney(r.realizedLoss),
    status: STATUS[r.status],
    createdAt: timestamp(r.createdMs),
    expiresAt: timestamp(r.expiresMs),
  };
}

function openReservation(ctx: LeverContext, id: string): ReservationRecord {
  const r = ctx.risk.reservation(id);
  if (!r) throw new ConnectError(`reservation ${id} not found`, Code.NotFound);
  return r;
}

/** Binds RiskService to a lever context. */
export function riskService(ctx: LeverContext): ServiceBinding {
  return bindService(
    RiskService,
    {
      listPolicies: (req) =>
        policiesAnswer(
          ctx,
          RiskPolicySchema,
          ctx.risk.policies().map(policyMessage),
          (p) => p.engine ?? "",
          req,
        ),
      upsertPolicy: (req) => {
        const now = ctx.clock.now();
        const record: RiskPolicyRecord = {
          engine: req.engine,
          maxDailyLoss: money("max_daily_loss", req.maxDailyLoss),
          maxDailyExposure: money("max_daily_exposure", req.maxDailyExposure),
          maxOpenRisk: money("max_open_risk", req.maxOpenRisk),
          maxActionsPerDay: req.maxActionsPerDay,
          enabled: req.enabled,
          updatedBy: req.actor,
          updatedMs: now,
        };
        ctx.risk.savePolicy(record);
        const policyRevision = ctx.revision.next();
        ctx.audit.append(
          {
            lever: "risk",
            action: "POLICY_UPSERT",
            subject: req.engine,
            ok: true,
            reason: req.reason,
            actor: req.actor,
            correlationId: req.correlationId,
            metadata: {
              max_daily_loss: req.maxDailyLoss,
              max_daily_exposure: req.maxDailyExposure,
              max_open_risk: req.maxOpenRisk,
              max_actions_per_day: String(req.maxActionsPerDay),
              enabled: String(req.enabled),
            },
          },
          now,
        );
        return { policy: policyMessage(record), policyRevision };
      },
      getLedgerToday: (req) => {
        const day = utcDay(ctx.clock.now());
        const policies = new Map(ctx.risk.policies().map((p) => [p.engine, p]));
        const rows = new Map(ctx.risk.ledgerOfDay(day).map((r) => [r.engine, r]));
        const engines = req.engine
          ? [req.engine]
          : [...new Set([...policies.keys(), ...rows.keys()])];
        return {
          day,
          entries: engines.map((engine) => {
            const row = rows.get(engine) ?? ctx.risk.usage(day, engine);
            const policy = policies.get(engine);
            return {
              engine,
              exposureUsed: formatMoney(row.exposure),
              openRisk: formatMoney(row.openRisk),
              realizedLoss: formatMoney(row.realizedLoss),
              actions: row.actions,
              denials: row.denials,
              remaining: remainingMessage(policy, row),
              policyEnabled: policy?.enabled ?? false,
            };
          }),
        };
      },
      reserve: (req) => {
        if (req.engine === "GLOBAL") {
          throw new ConnectError(
            "invalid request: engine: GLOBAL is the fleet-wide policy, not an engine; reserve as the engine that acts",
            Code.InvalidArgument,
          );
        }
        const amount = money("amount", req.amount);
        releaseExpired(ctx, RESERVE_RELEASES);
        const now = ctx.clock.now();
        const day = utcDay(now);
        const enginePolicy = ctx.risk.policy(req.engine);
        const globalPolicy = ctx.risk.policy("GLOBAL");
        const engineUsage = ctx.risk.usage(day, req.engine);
        const globalUsage = ctx.risk.usage(day, "GLOBAL");
        const { verdict, notEnforced } = decideReserve({
          engine: req.engine,
          amount,
          flags: ctx.goLive.get(),
          staleBecause: ctx.staleBecause(),
          throttled: ctx.tripwires.throttled(),
          enginePolicy,
          globalPolicy,
          engineUsage,
          globalUsage,
        });
        const actor = actorOf(req.actor);
        const metadata: Record<string, string> = { ...req.metadata };
        notEnforced.forEach((note, i) => {
          metadata[`not_enforced_${i + 1}`] = note;
        });
        const decision = ctx.stamp();
        if (!verdict.allowed) {
          ctx.risk.deny(
            req.engine,
            amount,
            {
              ok: false,
              reason: verdict.message,
              actor,
              correlationId: req.correlationId,
              metadata: { ...metadata, deny_reason: `DENY_REASON_${DenyReason[verdict.reason]}` },
            },
            now,
            enginePolicy !== undefined,
          );
          return {
            ...verdict,
            ...decision,
            engineRemaining: remainingMessage(enginePolicy, engineUsage),
            globalRemaining: remainingMessage(globalPolicy, globalUsage),
          };
        }
        const id = randomUUID();
        const ttlMs = req.ttlSeconds > 0 ? req.ttlSeconds * 1000 : ctx.settings.reservationTtlMs;
        ctx.risk.reserve(
          { id, engine: req.engine, amount, day, createdMs: now, expiresMs: now + ttlMs },
          {
            ok: true,
            reason: req.reason,
            actor,
            correlationId: req.correlationId,
            reservationId: id,
            metadata,
          },
          now,
        );
        const booked = (u: Usage): Usage => ({
          ...u,
          exposure: u.exposure + amount,
          openRisk: u.openRisk + amount,
          actions: u.actions + 1,
        });
        return {
          ...verdict,
          ...decision,
          reservationId: id,
          engineRemaining: remainingMessage(enginePolicy, booked(engineUsage)),
          globalRemaining: remainingMessage(globalPolicy, booked(globalUsage)),
          expiresAt: timestamp(now + ttlMs),
        };
      },
      settle: (req) => {
        const loss = money("realized_loss", req.realizedLoss);
        const r = openReservation(ctx, req.reservationId);
        if (r.status !== "OPEN" && r.status !== "EXPIRED") {
          throw new ConnectError(
            `reservation ${r.id} is already ${r.status.toLowerCase()}: nothing was changed`,
            Code.FailedPrecondition,
          );
        }
        const flags = lossBeyondAmount(r, loss, req.lossExceedsAmount);
        const who = { actor: actorOf(req.actor), reason: "", correlationId: req.correlationId };
        return {
          reservation: reservationMessage(closeReservation(ctx, r, "SETTLED", loss, who, flags)),
        };
      },
      release: (req) => {
        const r = openReservation(ctx, req.reservationId);
        if (r.status !== "OPEN") {
          throw new ConnectError(
            `reservation ${r.id} is already ${r.status.toLowerCase()}: nothing was changed`,
            Code.FailedPrecondition,
          );
        }
        const who = {
          actor: actorOf(req.actor),
          reason: req.reason,
          correlationId: req.correlationId,
        };
        return { reservation: reservationMessage(closeReservation(ctx, r, "RELEASED", 0n, who)) };
      },
      listEvents: (req) => {
        assertOwnTrail(ctx, req.sidecarId, req.pageToken);
        const limit = req.limit || 100;
        const events = listRiskEvents(ctx.db, req.engine, Number(req.afterSeq), limit);
        return eventPage(RiskEventSchema, events, limit, ctx.settings.maxAnswerBytes);
      },
    },
    ["upsertPolicy"],
  );
}
