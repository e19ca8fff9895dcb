/** `govctl golive` and `govctl killswitch`: the go-live state, its checklist and both switches. */
import { create, type MessageShape } from "@bufbuild/protobuf";
import { type Command, Option } from "commander";
import {
  GetChecklistResponseSchema,
  GetStateResponseSchema,
  GoLiveService,
  type GoLiveStateSchema,
} from "../../../gen/governance/v1/golive_pb.js";
import { type Ctx, withCtx } from "./context.js";
import { waitForFleet, waitOption } from "./fleet-commands.js";
import { fields, json, table, when } from "./output.js";

/** The go-live state as `key: value` lines. */
export function stateText(s: MessageShape<typeof GoLiveStateSchema> | undefined): string {
  return fields([
    ["go-live", s?.goLiveEnabled ? "ENABLED" : "disabled"],
    ["kill switch", s?.killSwitchEngaged ? "ENGAGED" : "released"],
    ["changed by", s?.changedBy],
    ["reason", s?.reason],
    ["updated at", when(s?.updatedAt)],
    ["revision", s?.revision],
  ]);
}

function printState(ctx: Ctx, state: MessageShape<typeof GoLiveStateSchema> | undefined) {
  ctx.out.print(
    () => stateText(state),
    json(GetStateResponseSchema, create(GetStateResponseSchema, { state })),
  );
}

const reasonOption = (required: boolean) =>
  required
    ? new Option("--reason <text>", "why (recorded in the audit trail)").makeOptionMandatory()
    : new Option("--reason <text>", "why (recorded in the audit trail)");

/** Adds `golive` and `killswitch` to `program`. */
export function addGoLiveCommands(program: Command): void {
  const golive = program
    .command("golive")
    .description("go-live: may production actions run at all")
    .addHelpText("after", "\nExample:\n  govctl golive state");
  golive
    .command("state")
    .description("show go-live, the kill switch, who changed them last and why")
    .addHelpText("after", "\nExample:\n  govctl golive state --json")
    .action(
      withCtx(async (ctx) => {
        const res = await ctx.client.call(GoLiveService, "getState", {});
        printState(ctx, res.state);
      }),
    );
  golive
    .command("checklist")
    .description("show the go-live checklist; exits 1 when it is not met")
    .addHelpText("after", "\nExample:\n  govctl golive checklist")
    .action(
      withCtx(async (ctx) => {
        const res = await ctx.client.call(GoLiveService, "getChecklist", {});
        ctx.out.print(
          () =>
            `${table(
              ["check", "ok", "detail"],
              res.checks.map((c) => [c.name, c.ok, c.detail]),
            )}\n\nready: ${res.ready ? "yes" : "NO"}`,
          json(GetChecklistResponseSchema, res),
        );
        if (!res.ready) process.exitCode = 1;
      }),
    );
  golive
    .command("enable")
    .description("enable go-live (operator token; refused while the checklist is not met)")
    .addOption(reasonOption(true))
    .addOption(waitOption())
    .addHelpText(
      "after",
      '\nExample:\n  govctl golive enable --reason "launch approved by risk committee"',
    )
    .action(
      withCtx(async (ctx, o: { reason: string; wait?: number }) => {
        const res = await ctx.client.call(
          GoLiveService,
          "enable",
          { actor: ctx.actor, reason: o.reason, correlationId: ctx.correlationId("enable") },
          true,
        );
        printState(ctx, res.state);
        await waitForFleet(ctx, o.wait, res.state?.revision);
      }),
    );
  golive
    .command("disable")
    .description("disable go-live: PROD and PROD_EXEC actions are refused (operator token)")
    .addOption(reasonOption(false))
    .addOption(waitOption())
    .addHelpText("after", '\nExample:\n  govctl golive disable --reason "end of pilot"')
    .action(
      withCtx(async (ctx, o: { reason?: string; wait?: number }) => {
        const res = await ctx.client.call(
          GoLiveService,
          "disable",
          { actor: ctx.actor, reason: o.reason ?? "", correlationId: ctx.correlationId("disable") },
          true,
        );
        printState(ctx, res.state);
        await waitForFleet(ctx, o.wait, res.state?.revision);
      }),
    );

  const kill = program
    .command("killswitch")
    .description("the kill switch: stop every PROD_EXEC action now")
    .addHelpText("after", '\nExample:\n  govctl killswitch engage --reason "bad deals"');
  kill
    .command("engage")
    .description(
      "engage the kill switch: Reserve and RequireProdEligible are refused (operator token)",
    )
    .addOption(reasonOption(false))
    .addOption(waitOption())
    .addHelpText(
      "after",
      '\nExample:\n  govctl killswitch engage --reason "runaway losses on WHOLESALE"',
    )
    .action(
      withCtx(async (ctx, o: { reason?: string; wait?: number }) => {
        const res = await ctx.client.call(
          GoLiveService,
          "engageKillSwitch",
          { actor: ctx.actor, reason: o.reason ?? "", correlationId: ctx.correlationId("engage") },
          true,
        );
        printState(ctx, res.state);
        await waitForFleet(ctx, o.wait, res.state?.revision);
      }),
    );
  kill
    .command("release")
    .description("release the kill switch (operator token, with a reason)")
    .addOption(reasonOption(true))
    .addOption(waitOption())
    .addHelpText(
      "after",
      '\nExample:\n  govctl killswitch release --reason "root cause fixed, see INC-42"',
    )
    .action(
      withCtx(async (ctx, o: { reason: string; wait?: number }) => {
        const res = await ctx.client.call(
          GoLiveService,
          "releaseKillSwitch",
          { actor: ctx.actor, reason: o.reason, correlationId: ctx.correlationId("release") },
          true,
        );
        printState(ctx, res.state);
        await waitForFleet(ctx, o.wait, res.state?.revision);
      }),
    );
}
