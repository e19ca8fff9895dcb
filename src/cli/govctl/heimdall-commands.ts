/** `govctl heimdall`: the charter's policies per domain and today's sandbox scorecard. */
import { type Command, Option } from "commander";
import {
  GetScorecardTodayResponseSchema,
  HeimdallService,
  HeimdallServiceListPoliciesResponseSchema,
  HeimdallServiceUpsertPolicyRequestSchema,
  HeimdallServiceUpsertPolicyResponseSchema,
  SuccessRateBound,
} from "../../../gen/governance/v1/heimdall_pb.js";
import { enumOption, fraction, upsertFrom, whole, withCtx } from "./context.js";
import { waitForFleet, waitOption } from "./fleet-commands.js";
import { enumName, json, percent, table, when } from "./output.js";

/** Adds `heimdall` to `program`. */
export function addHeimdallCommands(program: Command): void {
  const heimdall = program
    .command("heimdall")
    .description("Heimdall charter: when AI recommendations may reach customers")
    .addHelpText("after", "\nExample:\n  govctl heimdall scorecard");
  heimdall
    .command("policies")
    .description("list the Heimdall policies per domain")
    .addHelpText("after", "\nExample:\n  govctl heimdall policies")
    .action(
      withCtx(async (ctx) => {
        const res = await ctx.client.listAllPolicies(HeimdallService);
        ctx.out.print(
          () =>
            `${table(
              [
                "domain",
                "min confidence",
                "min trials",
                "min success",
                "lookback days",
                "prod use",
                "updated by",
                "updated at",
              ],
              res.policies.map((p) => [
                p.domain,
                p.minConfidenceProd,
                p.minSandboxTrials,
                p.minSandboxSuccessRate,
                p.lookbackDays,
                p.prodUseEnabled,
                p.updatedBy,
                when(p.updatedAt),
              ]),
            )}\n\npolicy revision: ${res.policyRevision}`,
          json(HeimdallServiceListPoliciesResponseSchema, res),
        );
      }),
    );
  heimdall
    .command("upsert")
    .description(
      "create or change a domain's policy (operator token); options not given keep their stored value",
    )
    .argument("<domain>", "domain, e.g. BUYER_MATCH")
    .option(
      "--min-confidence-prod <x>",
      "lowest confidence allowed in production (0..1)",
      fraction("--min-confidence-prod"),
    )
    .option(
      "--min-sandbox-trials <n>",
      "sandbox trials needed over the lookback",
      whole("--min-sandbox-trials"),
    )
    .option(
      "--min-sandbox-success-rate <x>",
      "sandbox success rate needed (0..1)",
      fraction("--min-sandbox-success-rate"),
    )
    .option(
      "--lookback-days <n>",
      "days of sandbox evidence counted (0 = default 30)",
      whole("--lookback-days"),
    )
    .option(
      "--success-rate-bound <bound>",
      "gate on the raw success rate or its Wilson lower bound",
      enumOption("--success-rate-bound", SuccessRateBound, ["raw", "wilson_lower"]),
    )
    .option(
      "--bound-confidence <x>",
      "confidence of the Wilson bound (0 = 0.95; else 0.5..0.9999)",
      fraction("--bound-confidence"),
    )
    .option("--prod-use", "allow production use (the gates still apply)")
    .option("--no-prod-use", "forbid production use")
    .addOption(new Option("--reason <text>", "why (audit trail)").makeOptionMandatory())
    .addOption(waitOption())
    .addHelpText(
      "after",
      '\nExample:\n  govctl heimdall upsert BUYER_MATCH --prod-use --reason "promoted after 2 weeks of sandbox"',
    )
    .action(
      withCtx(async (ctx, domain: string, o: Record<string, unknown>) => {
        const current = await ctx.client.listAllPolicies(HeimdallService);
        const request = upsertFrom(
          HeimdallServiceUpsertPolicyRequestSchema,
          current.policies.find((p) => p.domain === domain),
          {
            domain,
            minConfidenceProd: o.minConfidenceProd,
            minSandboxTrials: o.minSandboxTrials,
            minSandboxSuccessRate: o.minSandboxSuccessRate,
            lookbackDays: o.lookbackDays,
            successRateBound: o.successRateBound,
            boundConfidence: o.boundConfidence,
            prodUseEnabled: o.prodUse,
          },
          ["minConfidenceProd", "minSandboxTrials", "minSandboxSuccessRate"],
          `domain ${domain}`,
        );
        const res = await ctx.client.call(
          HeimdallService,
          "upsertPolicy",
          {
            ...request,
            actor: ctx.actor,
            reason: o.reason as string,
            correlationId: ctx.correlationId("heimdall-upsert"),
          },
          true,
        );
        const p = res.policy;
        ctx.out.print(
          () =>
            `policy ${p?.domain}: min confidence ${p?.minConfidenceProd}, min trials ${p?.minSandboxTrials}, min success ${p?.minSandboxSuccessRate} (${enumName(SuccessRateBound, p?.successRateBound ?? 0)}), lookback ${p?.lookbackDays} days, prod use ${p?.prodUseEnabled ? "ENABLED" : "disabled"}; policy revision ${res.policyRevision}`,
          json(HeimdallServiceUpsertPolicyResponseSchema, res),
        );
        await waitForFleet(ctx, o.wait as number | undefined, res.policyRevision);
      }),
    );
  heimdall
    .command("scorecard")
    .description("today's sandbox scorecard per domain (UTC day)")
    .option("--domain <domain>", "one domain only")
    .addHelpText("after", "\nExample:\n  govctl heimdall scorecard --domain BUYER_MATCH")
    .action(
      withCtx(async (ctx, o: { domain?: string }) => {
        const res = await ctx.client.call(HeimdallService, "getScorecardToday", {
          domain: o.domain ?? "",
        });
        ctx.out.print(
          () =>
            `day ${res.day}\n${table(
              ["domain", "trials", "successes", "success rate", "avg confidence"],
              res.scorecards.map((s) => [
                s.domain,
                s.trials,
                s.successes,
                s.trials ? percent(s.successRate) : undefined,
                s.trials ? s.avgConfidence.toFixed(3) : undefined,
              ]),
            )}${
              // On central: the fleet's figures lag each sidecar by its outbox.
              res.behind.length === 0
                ? ""
                : `\nbehind (trials still in a sidecar's outbox are not counted yet)\n${table(
                    ["sidecar", "shipped seq", "outbox events", "oldest (ms)"],
                    res.behind.map((l) => [
                      l.sidecarId,
                      l.shippedSeq,
                      l.outboxEvents,
                      l.outboxOldestMs,
                    ]),
                  )}`
            }`,
          json(GetScorecardTodayResponseSchema, res),
        );
      }),
    );
}
