/** `govctl risk`: policies, upsert, today's ledger and the decision events. */
import { type Command, Option } from "commander";
import { DenyReason } from "../../../gen/governance/v1/common_pb.js";
import {
  GetLedgerTodayResponseSchema,
  ListEventsResponseSchema,
  RiskAction,
  RiskService,
  RiskServiceListPoliciesResponseSchema,
  RiskServiceUpsertPolicyRequestSchema,
  RiskServiceUpsertPolicyResponseSchema,
} from "../../../gen/governance/v1/risk_pb.js";
import { money, upsertFrom, whole, withCtx } from "./context.js";
import { waitForFleet, waitOption } from "./fleet-commands.js";
import { enumName, json, morePages, table, when } from "./output.js";

/** A deny_reason metadata value (a number or a name) as the enum name. */
export function denyReasonName(value: string | undefined): string {
  if (!value) return "UNSPECIFIED";
  const n = Number(value);
  const name = Number.isInteger(n) ? DenyReason[n] : value.replace(/^DENY_REASON_/, "");
  return name ?? value;
}

/** The flags of `govctl risk events`. */
interface EventsOptions {
  engine?: string;
  after: number;
  limit: number;
  sidecar?: string;
  pageToken?: string;
}

/** Adds `risk` to `program`. */
export function addRiskCommands(program: Command): void {
  const risk = program
    .command("risk")
    .description("risk guard: caps per engine and GLOBAL, the daily ledger, decision events")
    .addHelpText("after", "\nExample:\n  govctl risk ledger");
  risk
    .command("policies")
    .description("list the risk policies")
    .addHelpText("after", "\nExample:\n  govctl risk policies --json")
    .action(
      withCtx(async (ctx) => {
        const res = await ctx.client.listAllPolicies(RiskService);
        ctx.out.print(
          () =>
            `${table(
              [
                "engine",
                "loss/day",
                "exposure/day",
                "open risk",
                "actions/day",
                "enabled",
                "updated by",
                "updated at",
              ],
              res.policies.map((p) => [
                p.engine,
                p.maxDailyLoss,
                p.maxDailyExposure,
                p.maxOpenRisk,
                p.maxActionsPerDay,
                p.enabled,
                p.updatedBy,
                when(p.updatedAt),
              ]),
            )}\n\npolicy revision: ${res.policyRevision}`,
          json(RiskServiceListPoliciesResponseSchema, res),
        );
      }),
    );
  risk
    .command("upsert")
    .description(
      "create or change an engine's policy (operator token); options not given keep their stored value",
    )
    .argument("<engine>", "engine name, e.g. WHOLESALE (GLOBAL applies to every engine)")
    .option("--max-daily-loss <amount>", "realized loss per UTC day", money("--max-daily-loss"))
    .option("--max-daily-exposure <amount>", "exposure per UTC day", money("--max-daily-exposure"))
    .option(
      "--max-open-risk <amount>",
      "open (unsettled) risk at any time",
      money("--max-open-risk"),
    )
    .option("--max-actions-per-day <n>", "reservations per UTC day", whole("--max-actions-per-day"))
    .option("--enabled", "enforce the policy")
    .option("--no-enabled", "only log, do not enforce")
    .addOption(new Option("--reason <text>", "why (audit trail)").makeOptionMandatory())
    .addOption(waitOption())
    .addHelpText(
      "after",
      '\nExample:\n  govctl risk upsert WHOLESALE --max-daily-exposure 1200.00 --reason "Q3 volume"',
    )
    .action(
      withCtx(async (ctx, engine: string, o: Record<string, unknown>) => {
        const current = await ctx.client.listAllPolicies(RiskService);
        const request = upsertFrom(
          RiskServiceUpsertPolicyRequestSchema,
          current.policies.find((p) => p.engine === engine),
          {
            engine,
            maxDailyLoss: o.maxDailyLoss,
            maxDailyExposure: o.maxDailyExposure,
            maxOpenRisk: o.maxOpenRisk,
            maxActionsPerDay: o.maxActionsPerDay,
            enabled: o.enabled,
          },
          ["maxDailyLoss", "maxDailyExposure", "maxOpenRisk", "maxActionsPerDay"],
          `engine ${engine}`,
        );
        const res = await ctx.client.call(
          RiskService,
          "upsertPolicy",
          {
            ...request,
            enabled: (request.enabled as boolean | undefined) ?? true,
            actor: ctx.actor,
            reason: o.reason as string,
            correlationId: ctx.correlationId("risk-upsert"),
          },
          true,
        );
        const p = res.policy;
        ctx.out.print(
          () =>
            `policy ${p?.engine}: loss/day ${p?.maxDailyLoss}, exposure/day ${p?.maxDailyExposure}, open risk ${p?.maxOpenRisk}, actions/day ${p?.maxActionsPerDay}, ${p?.enabled ? "enforced" : "NOT enforced (logged only)"}; policy revision ${res.policyRevision}`,
          json(RiskServiceUpsertPolicyResponseSchema, res),
        );
        await waitForFleet(ctx, o.wait as number | undefined, res.policyRevision);
      }),
    );
  risk
    .command("ledger")
    .description("today's ledger (UTC day): used and remaining per engine and GLOBAL")
    .option("--engine <engine>", "one engine only")
    .addHelpText("after", "\nExample:\n  govctl risk ledger --engine WHOLESALE")
    .action(
      withCtx(async (ctx, o: { engine?: string }) => {
        const res = await ctx.client.call(RiskService, "getLedgerToday", {
          engine: o.engine ?? "",
        });
        ctx.out.print(
          () =>
            `day ${res.day}\n${table(
              [
                "engine",
                "exposure",
                "open risk",
                "loss",
                "actions",
                "denials",
                "exposure left",
                "open risk left",
                "loss left",
                "actions left",
                "enforced",
              ],
              res.entries.map((e) => [
                e.engine,
                e.exposureUsed,
                e.openRisk,
                e.realizedLoss,
                e.actions,
                e.denials,
                e.remaining?.exposure,
                e.remaining?.openRisk,
                e.remaining?.loss,
                e.remaining?.actions,
                e.policyEnabled,
              ]),
            )}`,
          json(GetLedgerTodayResponseSchema, res),
        );
      }),
    );
  risk
    .command("events")
    .description("risk decision events (RESERVE, DENY, SETTLE, RELEASE), oldest first")
    .option("--engine <engine>", "one engine only")
    .option("--after <seq>", "only events after this sequence number", whole("--after"), 0)
    .option("--limit <n>", "at most this many (1..1000)", whole("--limit"), 100)
    .option(
      "--sidecar <id>",
      "on central: one sidecar's shipped events (--after counts its events)",
    )
    .option("--page-token <token>", "on central: read on where the page before ended")
    .addHelpText(
      "after",
      "\nExamples:\n  govctl risk events --engine WHOLESALE --limit 20\n  govctl --addr 127.0.0.1:9013 risk events --sidecar pod-a   (central: the events pod-a shipped)",
    )
    .action(
      withCtx(async (ctx, o: EventsOptions) => {
        const res = await ctx.client.call(RiskService, "listEvents", {
          engine: o.engine ?? "",
          afterSeq: BigInt(o.after),
          limit: o.limit,
          sidecarId: o.sidecar ?? "",
          pageToken: o.pageToken ?? "",
        });
        // Central's events name their sidecar; a sidecar's own do not.
        const fleet = res.events.some((e) => e.sidecarId !== "");
        ctx.out.print(
          () =>
            table(
              [
                ...(fleet ? ["sidecar"] : []),
                "seq",
                "time",
                "engine",
                "action",
                "amount",
                "ok",
                "deny reason",
                "actor",
                "correlation id",
              ],
              res.events.map((e) => [
                ...(fleet ? [e.sidecarId] : []),
                e.seq,
                when(e.time),
                e.engine,
                enumName(RiskAction, e.action),
                e.amount,
                e.ok,
                e.action === RiskAction.DENY ? denyReasonName(e.metadata.deny_reason) : undefined,
                e.actor,
                e.correlationId,
              ]),
            ) + morePages(res.nextAfterSeq, res.nextPageToken),
          json(ListEventsResponseSchema, res),
        );
      }),
    );
}
