/**
 * `govctl review`: the weekly control-plane review in one command. Each section gets a verdict
 * (healthy / look at this); the process exits 5 when any section needs attention.
 */
import type { Command } from "commander";
import { GoLiveService } from "../../../gen/governance/v1/golive_pb.js";
import { HeimdallService } from "../../../gen/governance/v1/heimdall_pb.js";
import { RegressionService, TripwireStatus } from "../../../gen/governance/v1/regression_pb.js";
import { RiskAction, RiskService } from "../../../gen/governance/v1/risk_pb.js";
import { Exit } from "./client.js";
import { type Ctx, fraction, withCtx } from "./context.js";
import { stateText } from "./golive-commands.js";
import { fields, percent, table, when } from "./output.js";
import { STATE_HEADERS, stateRows } from "./regression-commands.js";
import { denyReasonName } from "./risk-commands.js";

/** One section of the review. */
export interface Section {
  title: string;
  healthy: boolean;
  /** Why the section needs attention (empty when healthy). */
  findings: string[];
  text: string;
  data: Record<string, unknown>;
}

async function goLiveSection(ctx: Ctx): Promise<Section> {
  const [{ state }, checklist] = await Promise.all([
    ctx.client.call(GoLiveService, "getState", {}),
    ctx.client.call(GoLiveService, "getChecklist", {}),
  ]);
  const findings: string[] = [];
  if (state?.killSwitchEngaged)
    findings.push(`kill switch ENGAGED: ${state.reason || "no reason"}`);
  if (!state?.goLiveEnabled) findings.push("go-live is disabled: production actions are refused");
  for (const c of checklist.checks.filter((c) => !c.ok))
    findings.push(`checklist: ${c.name} (${c.detail})`);
  return {
    title: "go-live and kill switch",
    healthy: findings.length === 0,
    findings,
    text: stateText(state),
    data: {
      goLiveEnabled: state?.goLiveEnabled ?? false,
      killSwitchEngaged: state?.killSwitchEngaged ?? false,
      checklistReady: checklist.ready,
    },
  };
}

/**
 * An after_seq from which the scan sees every event of `day` and few before it: ListEvents has
 * no time filter, so probe one event at a time (doubling, then bisecting) instead of reading the
 * whole history. Event times grow with seq.
 */
async function seekDay(ctx: Ctx, day: string): Promise<bigint> {
  const before = async (after: bigint) => {
    const page = await ctx.client.call(RiskService, "listEvents", { afterSeq: after, limit: 1 });
    const e = page.events[0];
    return e !== undefined && when(e.time).slice(0, 10) < day;
  };
  let lo = 0n;
  let hi = 1n;
  while (await before(hi)) {
    lo = hi;
    hi *= 2n;
  }
  while (hi - lo > 1n) {
    const mid = (lo + hi) / 2n;
    if (await before(mid)) lo = mid;
    else hi = mid;
  }
  return lo;
}

async function ledgerSection(ctx: Ctx, maxDenialRate: number, capWarn: number): Promise<Section> {
  const ledger = await ctx.client.call(RiskService, "getLedgerToday", {});
  let reserves = 0;
  const denials = new Map<string, number>();
  // Settles whose realized loss was declared larger than the amount reserved for it.
  const beyond: string[] = [];
  for (let after = await seekDay(ctx, ledger.day); ; ) {
    const page = await ctx.client.call(RiskService, "listEvents", { afterSeq: after, limit: 1000 });
    for (const e of page.events) {
      if (when(e.time).slice(0, 10) !== ledger.day) continue;
      if (e.action === RiskAction.RESERVE) reserves++;
      if (e.action === RiskAction.SETTLE && e.metadata.loss_exceeds_amount === "true") {
        beyond.push(
          `${e.engine} settled ${e.reservationId} with a loss of ${e.amount}, above the ${e.metadata.reserved_amount ?? "?"} reserved (declared loss_exceeds_amount by ${e.actor}): check it is not a typo`,
        );
      }
      if (e.action === RiskAction.DENY) {
        const reason = denyReasonName(e.metadata.deny_reason);
        denials.set(reason, (denials.get(reason) ?? 0) + 1);
      }
    }
    const last = page.events[page.events.length - 1];
    if (!last || page.events.length < 1000) break;
    after = last.seq;
  }
  const denied = [...denials.values()].reduce((a, b) => a + b, 0);
  const rate = reserves + denied === 0 ? 0 : denied / (reserves + denied);
  const findings: string[] = [];
  if (rate > maxDenialRate) {
    findings.push(`denial rate ${percent(rate)} is above ${percent(maxDenialRate)}`);
  }
  findings.push(...beyond);
  for (const e of ledger.entries) {
    const used = Number(e.exposureUsed);
    const cap = used + Number(e.remaining?.exposure ?? 0);
    if (e.policyEnabled && cap > 0 && used / cap >= capWarn) {
      findings.push(`${e.engine} has used ${percent(used / cap)} of its daily exposure`);
    }
  }
  const byReason = [...denials.entries()].sort((a, b) => b[1] - a[1]);
  return {
    title: `risk ledger ${ledger.day}`,
    healthy: findings.length === 0,
    findings,
    text: `${table(
      ["engine", "exposure", "exposure left", "open risk", "loss", "actions", "denials"],
      ledger.entries.map((e) => [
        e.engine,
        e.exposureUsed,
        e.remaining?.exposure,
        e.openRisk,
        e.realizedLoss,
        e.actions,
        e.denials,
      ]),
    )}\n\n${fields([
      ["reservations", reserves],
      ["denials", denied],
      ["denial rate", percent(rate)],
    ])}${byReason.length ? `\n${table(["deny reason", "count"], byReason)}` : ""}`,
    data: {
      day: ledger.day,
      reservations: reserves,
      denials: denied,
      denialRate: rate,
      denialsByReason: Object.fromEntries(byReason),
      lossesBeyondReservation: beyond.length,
    },
  };
}

async function tripwireSection(ctx: Ctx): Promise<Section> {
  const res = await ctx.client.call(RegressionService, "getState", {});
  const tripped = res.states.filter((s) => s.status === TripwireStatus.TRIPPED);
  const findings = tripped.map((s) => `${s.domain}/${s.metric} TRIPPED: ${s.lastTripReason}`);
  for (const s of res.states.filter((s) => s.status === TripwireStatus.DRY_RUN_TRIPPED)) {
    findings.push(`${s.domain}/${s.metric} would have tripped (dry run): ${s.lastTripReason}`);
  }
  if (res.throttled.length) findings.push(`throttled: ${res.throttled.join(", ")}`);
  return {
    title: "regression tripwires",
    healthy: findings.length === 0,
    findings,
    text: table(STATE_HEADERS, stateRows(res.states)),
    data: {
      tripped: tripped.map((s) => `${s.domain}/${s.metric}`),
      throttled: res.throttled,
    },
  };
}

async function heimdallSection(ctx: Ctx): Promise<Section> {
  const [card, policies] = await Promise.all([
    ctx.client.call(HeimdallService, "getScorecardToday", {}),
    ctx.client.listAllPolicies(HeimdallService),
  ]);
  const findings: string[] = [];
  for (const p of policies.policies.filter((p) => p.prodUseEnabled)) {
    const s = card.scorecards.find((c) => c.domain === p.domain);
    if (s && s.trials > 0 && s.successRate < p.minSandboxSuccessRate) {
      findings.push(
        `${p.domain} is in production but today's sandbox success ${percent(s.successRate)} is below ${percent(p.minSandboxSuccessRate)}`,
      );
    }
  }
  return {
    title: `Heimdall scorecard ${card.day}`,
    healthy: findings.length === 0,
    findings,
    text: table(
      ["domain", "prod use", "trials", "success rate", "min success", "avg confidence"],
      policies.policies.map((p) => {
        const s = card.scorecards.find((c) => c.domain === p.domain);
        return [
          p.domain,
          p.prodUseEnabled,
          s?.trials ?? 0,
          s?.trials ? percent(s.successRate) : undefined,
          percent(p.minSandboxSuccessRate),
          s?.trials ? s.avgConfidence.toFixed(3) : undefined,
        ];
      }),
    ),
    data: { prodEnabled: policies.policies.filter((p) => p.prodUseEnabled).map((p) => p.domain) },
  };
}

/** Adds `review` to `program`. */
export function addReviewCommand(program: Command): void {
  program
    .command("review")
    .description(
      "the weekly review: go-live and kill switch, today's ledger and denials, tripwires, Heimdall; exits 5 when something needs attention",
    )
    .option(
      "--max-denial-rate <x>",
      "denial rate above which to look (0..1)",
      fraction("--max-denial-rate"),
      0.05,
    )
    .option(
      "--cap-warn <x>",
      "share of a daily exposure cap worth a look (0..1)",
      fraction("--cap-warn"),
      0.9,
    )
    .addHelpText("after", "\nExample:\n  govctl review || echo 'something needs attention'")
    .action(
      withCtx(async (ctx, o: { maxDenialRate: number; capWarn: number }) => {
        const sections = [
          await goLiveSection(ctx),
          await ledgerSection(ctx, o.maxDenialRate, o.capWarn),
          await tripwireSection(ctx),
          await heimdallSection(ctx),
        ];
        const healthy = sections.every((s) => s.healthy);
        ctx.out.print(
          () =>
            [
              ...sections.map(
                (s) =>
                  `== ${s.title}: ${s.healthy ? "healthy" : "LOOK AT THIS"}\n${s.findings.map((f) => `  ! ${f}\n`).join("")}${s.text}\n`,
              ),
              `verdict: ${healthy ? "healthy" : "look at this"}`,
            ].join("\n"),
          {
            healthy,
            sections: sections.map(({ title, healthy, findings, data }) => ({
              title,
              healthy,
              findings,
              ...data,
            })),
          },
        );
        if (!healthy) process.exitCode = Exit.ATTENTION;
      }),
    );
}
