/** `govctl regression`: tripwire policies, their state and figures, evaluation and re-arming. */
import { type Command, InvalidArgumentError, Option } from "commander";
import {
  EvaluateResponseSchema,
  RegressionService,
  RegressionServiceGetStateResponseSchema,
  RegressionServiceListPoliciesResponseSchema,
  RegressionServiceUpsertPolicyRequestSchema,
  RegressionServiceUpsertPolicyResponseSchema,
  ResetTripwireResponseSchema,
  TripwireAction,
  type TripwireState,
  TripwireStatus,
} from "../../../gen/governance/v1/regression_pb.js";
import { fraction, upsertFrom, whole, withCtx } from "./context.js";
import { type Cell, enumName, json, table, when } from "./output.js";

/** Tripwire states as table rows. */
export function stateRows(states: readonly TripwireState[]): Cell[][] {
  return states.map((s) => [
    `${s.domain}/${s.metric}`,
    enumName(TripwireStatus, s.status),
    enumName(TripwireAction, s.action),
    s.currentRate.toFixed(3),
    s.baselineRate.toFixed(3),
    s.drop.toFixed(3),
    s.maxDropFraction,
    `${s.eventsSeen}/${s.eventsNeeded}`,
    s.throttleTargets.join(","),
    s.lastTripReason,
  ]);
}

/** The headers of `stateRows`. */
export const STATE_HEADERS = [
  "tripwire",
  "status",
  "action",
  "current",
  "baseline",
  "drop",
  "max drop",
  "events",
  "targets",
  "last trip",
];

function action(value: string): TripwireAction {
  const v = TripwireAction[value.toUpperCase().replace(/-/g, "_") as keyof typeof TripwireAction];
  if (v === undefined || v === TripwireAction.UNSPECIFIED) {
    throw new InvalidArgumentError("--action must be throttle or kill_switch");
  }
  return v;
}

/** Adds `regression` to `program`. */
export function addRegressionCommands(program: Command): void {
  const regression = program
    .command("regression")
    .description(
      "regression tripwires: KPI drift that throttles engines or engages the kill switch",
    )
    .addHelpText("after", "\nExample:\n  govctl regression state");
  regression
    .command("policies")
    .description("list the tripwire policies")
    .addHelpText("after", "\nExample:\n  govctl regression policies")
    .action(
      withCtx(async (ctx) => {
        const res = await ctx.client.call(RegressionService, "listPolicies", {});
        ctx.out.print(
          () =>
            `${table(
              [
                "tripwire",
                "window",
                "baseline",
                "min events",
                "max drop",
                "action",
                "targets",
                "enabled",
                "updated by",
                "updated at",
              ],
              res.policies.map((p) => [
                `${p.domain}/${p.metric}`,
                p.windowEvents,
                p.baselineEvents,
                p.minEventsToEnforce,
                p.maxDropFraction,
                enumName(TripwireAction, p.action),
                p.throttleTargets.join(","),
                p.enabled,
                p.updatedBy,
                when(p.updatedAt),
              ]),
            )}\n\npolicy revision: ${res.policyRevision}`,
          json(RegressionServiceListPoliciesResponseSchema, res),
        );
      }),
    );
  regression
    .command("upsert")
    .description(
      "create or change a tripwire (operator token); options not given keep their stored value",
    )
    .argument("<domain>", "domain, e.g. WHOLESALE")
    .argument("<metric>", "metric, e.g. contract_rate")
    .option("--window-events <n>", "events in the current window", whole("--window-events"))
    .option("--baseline-events <n>", "events in the baseline before it", whole("--baseline-events"))
    .option(
      "--min-events-to-enforce <n>",
      "0 = window + baseline",
      whole("--min-events-to-enforce"),
    )
    .option(
      "--max-drop-fraction <x>",
      "relative drop that trips (0..1)",
      fraction("--max-drop-fraction"),
    )
    .option("--action <action>", "throttle or kill_switch", action)
    .option(
      "--throttle-targets <list>",
      "comma-separated engines and domains to throttle",
      (v: string) =>
        v
          .split(",")
          .map((t) => t.trim())
          .filter(Boolean),
    )
    .option("--enabled", "enforce the tripwire")
    .option("--no-enabled", "watch only")
    .addOption(new Option("--reason <text>", "why (audit trail)").makeOptionMandatory())
    .addHelpText(
      "after",
      '\nExample:\n  govctl regression upsert WHOLESALE contract_rate --enabled --max-drop-fraction 0.2 --reason "arm for launch"',
    )
    .action(
      withCtx(async (ctx, domain: string, metric: string, o: Record<string, unknown>) => {
        const current = await ctx.client.call(RegressionService, "listPolicies", {});
        const request = upsertFrom(
          RegressionServiceUpsertPolicyRequestSchema,
          current.policies.find((p) => p.domain === domain && p.metric === metric),
          {
            domain,
            metric,
            windowEvents: o.windowEvents,
            baselineEvents: o.baselineEvents,
            minEventsToEnforce: o.minEventsToEnforce,
            maxDropFraction: o.maxDropFraction,
            action: o.action,
            throttleTargets: o.throttleTargets,
            enabled: o.enabled,
          },
          ["windowEvents", "baselineEvents", "maxDropFraction", "action"],
          `tripwire ${domain}/${metric}`,
        );
        const res = await ctx.client.call(
          RegressionService,
          "upsertPolicy",
          {
            ...request,
            actor: ctx.actor,
            reason: o.reason as string,
            correlationId: ctx.correlationId("regression-upsert"),
          },
          true,
        );
        const p = res.policy;
        ctx.out.print(
          () =>
            `tripwire ${p?.domain}/${p?.metric}: window ${p?.windowEvents}, baseline ${p?.baselineEvents}, max drop ${p?.maxDropFraction}, action ${enumName(TripwireAction, p?.action ?? 0)}, ${p?.enabled ? "ENABLED" : "disabled"}; policy revision ${res.policyRevision}`,
          json(RegressionServiceUpsertPolicyResponseSchema, res),
        );
      }),
    );
  regression
    .command("state")
    .description("each tripwire's status and figures, and what is throttled")
    .option("--domain <domain>", "one domain only")
    .addHelpText("after", "\nExample:\n  govctl regression state --domain WHOLESALE")
    .action(
      withCtx(async (ctx, o: { domain?: string }) => {
        const res = await ctx.client.call(RegressionService, "getState", {
          domain: o.domain ?? "",
        });
        ctx.out.print(
          () =>
            `${table(STATE_HEADERS, stateRows(res.states))}\n\nthrottled: ${res.throttled.join(", ") || "nothing"}`,
          json(RegressionServiceGetStateResponseSchema, res),
        );
      }),
    );
  regression
    .command("evaluate")
    .description("evaluate every tripwire now (a wire may trip and act)")
    .option("--domain <domain>", "one domain only")
    .addHelpText("after", "\nExample:\n  govctl regression evaluate")
    .action(
      withCtx(async (ctx, o: { domain?: string }) => {
        const res = await ctx.client.call(RegressionService, "evaluate", {
          domain: o.domain ?? "",
          actor: ctx.actor,
        });
        ctx.out.print(
          () =>
            `${table(STATE_HEADERS, stateRows(res.states))}\n\ntripped now: ${res.trippedNow.map((s) => `${s.domain}/${s.metric}`).join(", ") || "none"}`,
          json(EvaluateResponseSchema, res),
        );
      }),
    );
  regression
    .command("reset")
    .description("re-arm a tripped wire and lift its throttle (operator token, with a reason)")
    .argument("<domain>", "domain")
    .argument("<metric>", "metric")
    .addOption(new Option("--reason <text>", "why (audit trail)").makeOptionMandatory())
    .addHelpText(
      "after",
      '\nExample:\n  govctl regression reset WHOLESALE contract_rate --reason "new baseline after pricing change"',
    )
    .action(
      withCtx(async (ctx, domain: string, metric: string, o: { reason: string }) => {
        const res = await ctx.client.call(
          RegressionService,
          "resetTripwire",
          {
            domain,
            metric,
            actor: ctx.actor,
            reason: o.reason,
            correlationId: ctx.correlationId("reset"),
          },
          true,
        );
        ctx.out.print(
          () => table(STATE_HEADERS, stateRows(res.state ? [res.state] : [])),
          json(ResetTripwireResponseSchema, res),
        );
      }),
    );
}
