/** GoLiveService handlers: state, checklist, operator switches and the engine's CheckGoLive. */

import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  GoLiveService,
  type GoLiveStateSchema,
  type WatchGoLiveResponseSchema,
} from "../../../gen/governance/v1/golive_pb.js";
import { schemaVersion } from "../../store/database.js";
import { LATEST_VERSION } from "../../store/migrations.js";
import type { LeverContext } from "../context.js";
import { timestamp } from "../convert.js";
import { bindService, type ServiceBinding, type StreamSink } from "../service-binding.js";
import type { GoLiveRecord } from "./golive-state.js";
import { buildChecklist, type Check, decideExecution, type GoLiveFlags } from "./rules.js";

/** The message form of the stored state. */
export function goLiveMessage(r: GoLiveRecord): MessageInitShape<typeof GoLiveStateSchema> {
  return {
    goLiveEnabled: r.goLiveEnabled,
    killSwitchEngaged: r.killSwitchEngaged,
    changedBy: r.changedBy,
    reason: r.reason,
    updatedAt: timestamp(r.updatedMs),
    revision: BigInt(r.revision),
  };
}

/** A WatchGoLive message: the state, the decision stamp, and whether it is a heartbeat. */
function watchMessage(
  ctx: LeverContext,
  r: GoLiveRecord,
  heartbeat: boolean,
): MessageInitShape<typeof WatchGoLiveResponseSchema> {
  return {
    goLiveEnabled: r.goLiveEnabled,
    killSwitchEngaged: r.killSwitchEngaged,
    revision: BigInt(r.revision),
    ...ctx.stamp(),
    heartbeat,
    changedBy: r.changedBy,
    reason: r.reason,
  };
}

/**
 * The WatchGoLive stream: the committed state now, then each committed change, and a heartbeat
 * every `watchHeartbeatMs` (sent outside transactions, so it never carries an uncommitted stamp).
 */
function watchGoLive(
  ctx: LeverContext,
  sink: StreamSink<MessageInitShape<typeof WatchGoLiveResponseSchema>>,
): () => void {
  let last = ctx.goLive.get();
  sink.send(watchMessage(ctx, last, false));
  const off = ctx.goLive.onCommittedChange((state) => {
    last = state;
    sink.send(watchMessage(ctx, state, false));
  });
  let stopped = false;
  const beat = () => {
    if (stopped) return;
    if (ctx.db.inTransaction) setImmediate(beat);
    else sink.send(watchMessage(ctx, last, true));
  };
  const timer = setInterval(beat, ctx.settings.watchHeartbeatMs);
  return () => {
    stopped = true;
    off();
    clearInterval(timer);
  };
}

/** The go-live checklist as it stands now. */
export function currentChecklist(ctx: LeverContext): Check[] {
  const global = ctx.risk.policy("GLOBAL");
  return buildChecklist({
    schemaVersion: schemaVersion(ctx.db),
    latestSchemaVersion: LATEST_VERSION,
    globalRiskPolicy: { present: global !== undefined, enabled: global?.enabled ?? false },
    policyCounts: {
      risk: ctx.risk.policies().length,
      heimdall: ctx.evidence.policies().length,
      regression: ctx.tripwires.policies().length,
    },
    trippedWires: ctx.tripwires.trippedWires(),
    killSwitchEngaged: ctx.goLive.get().killSwitchEngaged,
    ...ctx.freshness(),
  });
}

/** Changes the switches, records who and why, and bumps the policy revision. */
export function changeSwitches(
  ctx: LeverContext,
  change: Partial<GoLiveFlags>,
  action: string,
  actor: string,
  reason: string,
  correlationId: string,
): GoLiveRecord {
  const now = ctx.clock.now();
  const next = { ...ctx.goLive.get(), ...change };
  const state = ctx.goLive.set(next, actor, reason, now);
  ctx.revision.next();
  ctx.audit.append(
    { lever: "golive", action, subject: "go_live", ok: true, reason, actor, correlationId },
    now,
  );
  return state;
}

/** Binds GoLiveService to a lever context. */
export function goLiveService(ctx: LeverContext): ServiceBinding {
  return bindService(
    GoLiveService,
    {
      getState: () => ({ state: goLiveMessage(ctx.goLive.get()) }),
      getChecklist: () => {
        const checks = currentChecklist(ctx);
        return { checks, ready: checks.every((c) => c.ok) };
      },
      enable: (req) => {
        const failing = currentChecklist(ctx).filter((c) => !c.ok);
        if (failing.length > 0) {
          throw new ConnectError(
            `go-live checklist not met: ${failing.map((c) => `${c.name} (${c.detail})`).join("; ")}`,
            Code.FailedPrecondition,
          );
        }
        const state = changeSwitches(
          ctx,
          { goLiveEnabled: true },
          "ENABLE",
          req.actor,
          req.reason,
          req.correlationId,
        );
        return { state: goLiveMessage(state) };
      },
      disable: (req) => {
        const state = changeSwitches(
          ctx,
          { goLiveEnabled: false },
          "DISABLE",
          req.actor,
          req.reason,
          req.correlationId,
        );
        return { state: goLiveMessage(state) };
      },
      engageKillSwitch: (req) => {
        const state = changeSwitches(
          ctx,
          { killSwitchEngaged: true },
          "KILL_SWITCH_ENGAGE",
          req.actor,
          req.reason,
          req.correlationId,
        );
        return { state: goLiveMessage(state) };
      },
      releaseKillSwitch: (req) => {
        const state = changeSwitches(
          ctx,
          { killSwitchEngaged: false },
          "KILL_SWITCH_RELEASE",
          req.actor,
          req.reason,
          req.correlationId,
        );
        return { state: goLiveMessage(state) };
      },
      checkGoLive: (req) => {
        const flags = ctx.goLive.get();
        const verdict = decideExecution(req.executionClass, flags, ctx.staleBecause());
        return {
          ...verdict,
          ...ctx.stamp(),
          goLiveEnabled: flags.goLiveEnabled,
          killSwitchEngaged: flags.killSwitchEngaged,
        };
      },
    },
    ["enable", "disable", "engageKillSwitch", "releaseKillSwitch"],
    { watchGoLive: (_req, sink) => watchGoLive(ctx, sink) },
  );
}
