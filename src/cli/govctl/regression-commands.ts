/** `govctl regression`: tripwire policies, their state and figures, evaluation and re-arming. */
import { type Command, InvalidArgumentError, Option } from "commander";
import {
  EvaluateResponseSchema,
  ListTripwireEventsResponseSchema,
  RegressionService,
  RegressionServiceGetStateResponseSchema,
  RegressionServiceListPoliciesResponseSchema,
  RegressionServiceUpsertPolicyRequestSchema,
  RegressionServiceUpsertPolicyResponseSchema,
  ResetTripwireResponseSchema,
  TripwireAction,
  TripwireMethod,
  type TripwireState,
  TripwireStatus,
} from "../../../gen/governance/v1/regression_pb.js";
import { enumOption, fraction, upsertFrom, whole, withCtx } from "./context.js";
import { waitForFleet, waitOption } from "./fleet-commands.js";
import { type Cell, enumName, json, morePages, table, when } from "./output.js";

/** On central: how far behind each sidecar's shipped KPI outcomes are (nothing on a sidecar). */
function behindLines(
  behind: readonly {
    sidecarId: string;
    shippedSeq: bigint;
    outboxEvents: bigint;
    outboxOldestMs: bigint;
  }[],
): string {
  if (behind.length === 0) return "";
  const rows = behind.map(
    (b) =>
      `  ${b.sidecarId}: shipped to seq ${b.shippedSeq}, ${b.outboxEvents} events not shipped (oldest ${b.outboxOldestMs} ms)`,
  );
  return `\nfleet streams lag each sidecar by its outbox:\n${rows.join("\n")}`;
}

/** Tripwire states as table rows. */
export function stateRows(states: readonly TripwireState[]): Cell[][] {
  return states.map((s) => [
    `${s.domain}/${s.metric}`,
    enumName(TripwireStatus, s.status),
    `${enumName(TripwireMethod, s.method)}${s.dryRun ? " (dry run)" : ""}`,
    enumName(TripwireAction, s.action),
    s.currentRate.toFixed(3),
    `${s.baselineRate.toFixed(3)}${s.baselineFrozen ? " frozen" : ""}`,
    s.method === TripwireMethod.SEQUENTIAL
      ? `S ${s.statistic.toFixed(2)} / h ${s.threshold.toFixed(2)}`
      : `drop ${s.drop.toFixed(3)} / max ${s.maxDropFraction}`,
    `${s.eventsSeen}/${s.eventsNeeded}`,
    s.throttleTargets.join(","),
    s.lastTripReason,
  ]);
}

/** The headers of `stateRows`. */
export const STATE_HEADERS = [
  "tripwire",
  "status",
  "method",
  "action",
  "current",
  "baseline",
  "figure / limit",
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
        const res = await ctx.client.listAllPolicies(RegressionService);
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
    .option(
      "--method <method>",
      "relative_drop (the seed rule) or sequential (Bernoulli CUSUM)",
      enumOption("--method", TripwireMethod, ["relative_drop", "sequential"]),
    )
    .option(
      "--expected-events-between-false-alarms <n>",
      "sequential: in-control events per false alarm (0 = default)",
      whole("--expected-events-between-false-alarms"),
    )
    .option(
      "--baseline-rate <x>",
      "sequential: the baseline success rate (0 = measure it and freeze it)",
      fraction("--baseline-rate"),
    )
    .option("--dry-run", "record what would trip, do not throttle or kill")
    .option("--no-dry-run", "act on trips")
    .option("--enabled", "enforce the tripwire")
    .option("--no-enabled", "watch only")
    .addOption(new Option("--reason <text>", "why (audit trail)").makeOptionMandatory())
    .addOption(waitOption())
    .addHelpText(
      "after",
      '\nExample:\n  govctl regression upsert WHOLESALE contract_rate --enabled --max-drop-fraction 0.2 --reason "arm for launch"',
    )
    .action(
      withCtx(async (ctx, domain: string, metric: string, o: Record<string, unknown>) => {
        const current = await ctx.client.listAllPolicies(RegressionService);
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
            method: o.method,
            expectedEventsBetweenFalseAlarms: o.expectedEventsBetweenFalseAlarms,
            baselineRate: o.baselineRate,
            dryRun: o.dryRun,
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
            `tripwire ${p?.domain}/${p?.metric}: ${enumName(TripwireMethod, p?.method ?? 0)}${p?.dryRun ? " (dry run)" : ""}, window ${p?.windowEvents}, baseline ${p?.baselineEvents}, max drop ${p?.maxDropFraction}, action ${enumName(TripwireAction, p?.action ?? 0)}, ${p?.enabled ? "ENABLED" : "disabled"}; policy revision ${res.policyRevision}`,
          json(RegressionServiceUpsertPolicyResponseSchema, res),
        );
        await waitForFleet(ctx, o.wait as number | undefined, res.policyRevision);
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
            `${table(STATE_HEADERS, stateRows(res.states))}\n\nthrottled: ${res.throttled.join(", ") || "nothing"}${behindLines(res.behind)}`,
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
    .command("events")
    .description("tripwire events (trips, dry-run trips, re-arms, policy changes), oldest first")
    .option("--domain <domain>", "one domain only")
    .option("--after <seq>", "only events after this sequence number", whole("--after"), 0)
    .option("--limit <n>", "at most this many (1..1000)", whole("--limit"), 100)
    .addHelpText("after", "\nExample:\n  govctl regression events --domain WHOLESALE")
    .action(
      withCtx(async (ctx, o: { domain?: string; after: number; limit: number }) => {
        const res = await ctx.client.call(RegressionService, "listTripwireEvents", {
          domain: o.domain ?? "",
          afterSeq: BigInt(o.after),
          limit: o.limit,
        });
        ctx.out.print(
          () =>
            table(
              ["seq", "time", "tripwire", "action", "reason", "actor", "correlation id"],
              res.events.map((e) => [
                e.seq,
                when(e.time),
                `${e.domain}/${e.metric}`,
                e.action,
                e.reason,
                e.actor,
                e.correlationId,
              ]),
            ) + morePages(res.nextAfterSeq),
          json(ListTripwireEventsResponseSchema, res),
        );
      }),
    );
  regression
    .command("reset")
    .description("re-arm a tripped wire and lift its throttle (operator token, with a reason)")
    .argument("<domain>", "domain")
    .argument("<metric>", "metric")
    .addOption(new Option("--reason <text>", "why (audit trail)").makeOptionMandatory())
    .addOption(waitOption())
    .addHelpText(
      "after",
      '\nExample:\n  govctl regression reset WHOLESALE contract_rate --reason "new baseline after pricing change"',
    )
    .action(
      withCtx(async (ctx, domain: string, metric: string, o: { reason: string; wait?: number }) => {
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
        // The answer carries no revision: wait for central's newest, which includes this one.
        await waitForFleet(ctx, o.wait, undefined);
      }),
    );
}
