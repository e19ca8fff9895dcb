/**
 * Applying central's policy to a sidecar's store: a snapshot replaces everything the sidecar
 * decides from, a change replaces one entity. The caller runs each inside one transaction with
 * the applied revision, so a sidecar holds one revision of central's policy or the one before,
 * never a mix. Unchanged entities are left untouched (a re-sent snapshot must not restart a
 * SEQUENTIAL chart or announce a go-live change that did not happen). Trips acted on here that
 * central has not yet sent back keep holding over whatever central's older revisions say.
 */
import { timestampMs } from "@bufbuild/protobuf/wkt";
import type { GoLiveState } from "../../../gen/governance/v1/golive_pb.js";
import { type HeimdallPolicy, SuccessRateBound } from "../../../gen/governance/v1/heimdall_pb.js";
import type { RegressionPolicy } from "../../../gen/governance/v1/regression_pb.js";
import type { RiskPolicy } from "../../../gen/governance/v1/risk_pb.js";
import type {
  PolicyChange,
  PolicySnapshot,
  TripwireTrip,
} from "../../../gen/governance/v1/sync_pb.js";
import type { LeverContext } from "../../levers/context.js";
import { money } from "../../levers/convert.js";
import type { HeimdallPolicyRecord } from "../../levers/heimdall/sandbox-evidence.js";
import { tripwirePolicyOf } from "../../levers/regression/policy-request.js";
import { armWire } from "../../levers/regression/tripwire-evaluation.js";
import type { TripwirePolicy } from "../../levers/regression/tripwires.js";
import type { RiskPolicyRecord } from "../../levers/risk/risk-book.js";
import type { TripReport } from "./applied-revision.js";

const ms = (t: Parameters<typeof timestampMs>[0] | undefined) => (t ? timestampMs(t) : 0);

function riskRecord(p: RiskPolicy): RiskPolicyRecord {
  return {
    engine: p.engine,
    maxDailyLoss: money("risk_policy.max_daily_loss", p.maxDailyLoss),
    maxDailyExposure: money("risk_policy.max_daily_exposure", p.maxDailyExposure),
    maxOpenRisk: money("risk_policy.max_open_risk", p.maxOpenRisk),
    maxActionsPerDay: p.maxActionsPerDay,
    enabled: p.enabled,
    updatedBy: p.updatedBy,
    updatedMs: ms(p.updatedAt),
  };
}

function heimdallRecord(p: HeimdallPolicy): HeimdallPolicyRecord {
  return {
    domain: p.domain,
    minConfidenceProd: p.minConfidenceProd,
    minSandboxTrials: p.minSandboxTrials,
    minSandboxSuccessRate: p.minSandboxSuccessRate,
    prodUseEnabled: p.prodUseEnabled,
    lookbackDays: p.lookbackDays,
    successRateBound: p.successRateBound === SuccessRateBound.WILSON_LOWER ? "WILSON_LOWER" : "RAW",
    boundConfidence: p.boundConfidence,
    updatedBy: p.updatedBy,
    updatedMs: ms(p.updatedAt),
  };
}

/** Central's policy as a sidecar stores it: the same rule an upsert on a sidecar applies. */
function tripwireRecord(p: RegressionPolicy): TripwirePolicy {
  return tripwirePolicyOf({ ...p, actor: p.updatedBy }, ms(p.updatedAt));
}

/** Field-by-field equality of two plain records (arrays compared by their items). */
function same(a: object, b: object): boolean {
  return (
    JSON.stringify(a, (_k, v) => (typeof v === "bigint" ? v.toString() : v)) ===
    JSON.stringify(b, (_k, v) => (typeof v === "bigint" ? v.toString() : v))
  );
}

function applyGoLive(ctx: LeverContext, s: GoLiveState, nowMs: number): void {
  const now = ctx.goLive.get();
  if (
    now.goLiveEnabled === s.goLiveEnabled &&
    now.killSwitchEngaged === s.killSwitchEngaged &&
    now.changedBy === s.changedBy &&
    now.reason === s.reason
  ) {
    return;
  }
  ctx.goLive.set(
    { goLiveEnabled: s.goLiveEnabled, killSwitchEngaged: s.killSwitchEngaged },
    s.changedBy,
    s.reason,
    ms(s.updatedAt) || nowMs,
  );
}

function applyRisk(ctx: LeverContext, p: RiskPolicy): void {
  const record = riskRecord(p);
  const held = ctx.risk.policy(record.engine);
  if (!held || !same(held, record)) ctx.risk.savePolicy(record);
}

function applyHeimdall(ctx: LeverContext, p: HeimdallPolicy): void {
  const record = heimdallRecord(p);
  const held = ctx.evidence.policy(record.domain);
  if (!held || !same(held, record)) ctx.evidence.savePolicy(record);
}

function applyTripwirePolicy(ctx: LeverContext, p: RegressionPolicy): void {
  const record = tripwireRecord(p);
  const held = ctx.tripwires.policy(record.domain, record.metric);
  if (held && same(held, record)) return;
  ctx.tripwires.savePolicy(record);
  // A changed policy restarts a SEQUENTIAL chart on a fresh baseline; a trip stays.
  armWire(ctx, record, true);
}

/**
 * A re-arm from central this sidecar held back because it had not yet heard that central
 * recorded its own report of the trip: once central answers the report with a revision before
 * this one, the re-arm is due (`releaseHeldRearms`).
 */
export interface HeldRearm {
  domain: string;
  metric: string;
  revision: bigint;
}

const sameWire = (a: { domain: string; metric: string }, b: { domain: string; metric: string }) =>
  a.domain === b.domain && a.metric === b.metric;

/** Arms a tripped wire again, as central's re-arm does. */
function rearm(ctx: LeverContext, domain: string, metric: string): void {
  const series = ctx.tripwires.seriesState(domain, metric);
  if (!series.tripped) return;
  const policy = ctx.tripwires.policy(domain, metric);
  if (policy) armWire(ctx, policy, false);
  else ctx.tripwires.saveSeries(domain, metric, { ...series, tripped: false, trippedMs: null });
}

/**
 * Sets a wire tripped or armed as central says at `revision`, unless it already stands so. A
 * re-arm is held back while this sidecar's own report of the trip is unanswered, or answered
 * with a later revision (the trip is newer than the re-arm); the first case is noted in `held`.
 */
function applyTrip(
  ctx: LeverContext,
  t: TripwireTrip,
  owed: readonly TripReport[],
  revision: bigint,
  held: HeldRearm[],
): void {
  const series = ctx.tripwires.seriesState(t.domain, t.metric);
  if (t.tripped) {
    // Tripped again on central after a re-arm held back here: that re-arm is no longer due.
    for (let i = held.length - 1; i >= 0; i--) {
      const h = held[i] as HeldRearm;
      if (sameWire(h, t) && h.revision < revision) held.splice(i, 1);
    }
    if (series.tripped) return;
    ctx.tripwires.saveSeries(t.domain, t.metric, {
      ...series,
      tripped: true,
      trippedMs: ms(t.trippedAt),
      lastTripReason: t.sidecarId ? `${t.reason} (tripped on sidecar ${t.sidecarId})` : t.reason,
    });
    return;
  }
  if (!series.tripped) return;
  const mine = owed.filter((r) => sameWire(r, t));
  if (mine.some((r) => r.recordedRevision !== null && r.recordedRevision > revision)) return;
  if (mine.some((r) => r.recordedRevision === null)) {
    held.push({ domain: t.domain, metric: t.metric, revision });
    return;
  }
  rearm(ctx, t.domain, t.metric);
}

/**
 * Central answered this sidecar's report of a trip with `recordedRevision`: re-arms held back
 * since, at later revisions, are due now unless another report of the wire still holds it.
 * Call inside a transaction; returns the re-arms still held.
 */
export function releaseHeldRearms(
  ctx: LeverContext,
  held: readonly HeldRearm[],
  owed: readonly TripReport[],
  report: { domain: string; metric: string },
  recordedRevision: bigint,
): HeldRearm[] {
  const due = held.filter((h) => sameWire(h, report) && h.revision > recordedRevision);
  if (due.length === 0) return [...held];
  const newest = due.reduce((a, b) => (b.revision > a.revision ? b : a));
  const stillHeld = owed.some(
    (r) =>
      sameWire(r, report) && (r.recordedRevision === null || r.recordedRevision > newest.revision),
  );
  if (!stillHeld) rearm(ctx, report.domain, report.metric);
  return held.filter((h) => !due.includes(h) || stillHeld);
}

/**
 * Keeps every trip this sidecar acted on and central has not yet sent back (the report is not
 * recorded, or recorded at a revision after this one): tripped, and for a KILL_SWITCH wire the
 * kill switch engaged.
 */
function holdOwedTrips(ctx: LeverContext, revision: bigint, owed: readonly TripReport[]): void {
  for (const r of owed) {
    if (r.recordedRevision !== null && r.recordedRevision <= revision) continue;
    const series = ctx.tripwires.seriesState(r.domain, r.metric);
    if (!series.tripped) {
      ctx.tripwires.saveSeries(r.domain, r.metric, {
        ...series,
        tripped: true,
        trippedMs: r.trippedMs,
        lastTripReason: r.reason,
      });
    }
    const state = ctx.goLive.get();
    if (r.action === "KILL_SWITCH" && !state.killSwitchEngaged) {
      ctx.goLive.set(
        { goLiveEnabled: state.goLiveEnabled, killSwitchEngaged: true },
        `tripwire:${r.domain}/${r.metric}`,
        `${r.reason} (tripped here; central has not recorded it yet)`,
        r.trippedMs,
      );
    }
  }
}

/** Replaces everything the sidecar decides from with a snapshot; returns a line for the log. */
export function applySnapshot(
  ctx: LeverContext,
  snapshot: PolicySnapshot,
  owed: readonly TripReport[],
  nowMs: number,
  held: HeldRearm[] = [],
): string {
  if (!snapshot.goLive) throw new Error("snapshot has no go-live state");
  applyGoLive(ctx, snapshot.goLive, nowMs);
  const risk = new Set(snapshot.riskPolicies.map((p) => p.engine));
  for (const p of ctx.risk.policies()) if (!risk.has(p.engine)) ctx.risk.removePolicy(p.engine);
  for (const p of snapshot.riskPolicies) applyRisk(ctx, p);
  const heimdall = new Set(snapshot.heimdallPolicies.map((p) => p.domain));
  for (const p of ctx.evidence.policies()) {
    if (!heimdall.has(p.domain)) ctx.evidence.removePolicy(p.domain);
  }
  for (const p of snapshot.heimdallPolicies) applyHeimdall(ctx, p);
  const wires = new Set(snapshot.regressionPolicies.map((p) => `${p.domain}/${p.metric}`));
  for (const p of ctx.tripwires.policies()) {
    if (!wires.has(`${p.domain}/${p.metric}`)) ctx.tripwires.removePolicy(p.domain, p.metric);
  }
  for (const p of snapshot.regressionPolicies) applyTripwirePolicy(ctx, p);
  const tripped = new Set(
    snapshot.tripwireTrips.filter((t) => t.tripped).map((t) => `${t.domain}/${t.metric}`),
  );
  for (const t of snapshot.tripwireTrips) applyTrip(ctx, t, owed, snapshot.revision, held);
  for (const wire of ctx.tripwires.trippedWires()) {
    if (tripped.has(wire)) continue;
    const [domain = "", metric = ""] = wire.split("/");
    applyTrip(
      ctx,
      { domain, metric, tripped: false } as TripwireTrip,
      owed,
      snapshot.revision,
      held,
    );
  }
  holdOwedTrips(ctx, snapshot.revision, owed);
  return `snapshot: ${snapshot.riskPolicies.length} risk, ${snapshot.heimdallPolicies.length} heimdall and ${snapshot.regressionPolicies.length} regression policies, ${tripped.size} tripped wires`;
}

/** Applies one change on top of the revision before it; returns a line for the log. */
export function applyChange(
  ctx: LeverContext,
  change: PolicyChange,
  owed: readonly TripReport[],
  nowMs: number,
  held: HeldRearm[] = [],
): string {
  const e = change.entity;
  switch (e.case) {
    case "goLive":
      applyGoLive(ctx, e.value, nowMs);
      break;
    case "riskPolicy":
      applyRisk(ctx, e.value);
      break;
    case "heimdallPolicy":
      applyHeimdall(ctx, e.value);
      break;
    case "regressionPolicy":
      applyTripwirePolicy(ctx, e.value);
      break;
    case "tripwireTrip":
      applyTrip(ctx, e.value, owed, change.revision, held);
      break;
    default:
      throw new Error("change carries no entity");
  }
  holdOwedTrips(ctx, change.revision, owed);
  return `${e.case} changed`;
}
