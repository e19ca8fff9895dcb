/**
 * A fleet tripwire as pure functions: the state central keeps per (domain, metric) fleet KPI
 * stream, how a re-arm or a policy change on central restarts it, and the evaluation of a run
 * of shipped outcomes with the sidecar's own rule (src/levers/regression/wire-rule.ts). The
 * store side is fleet-tripwires.ts.
 */

import type { CusumDesign } from "../../levers/regression/bernoulli-cusum.js";
import type { WindowCounts } from "../../levers/regression/rules.js";
import type { SeriesState, TripwirePolicy } from "../../levers/regression/tripwires.js";
import {
  freezeSeries,
  sequentialStep,
  trippedState,
  tripReason,
  type WireFigures,
  wireFigures,
} from "../../levers/regression/wire-rule.js";

/** What central keeps about one fleet KPI stream and its wire (central_kpi_series). */
export interface FleetWireRow {
  /** Outcomes the fleet shipped in this stream; each outcome's n is its place, from 1. */
  eventsSeen: number;
  /** The wire counts only outcomes after this n (the n when it was last re-armed on central). */
  restartAfter: number;
  /** SEQUENTIAL: the chart counts outcomes after this n (where its baseline froze). */
  armedAfter: number;
  frozenBaseline: number | null;
  cusum: number;
  design: CusumDesign | null;
  dryRunTripped: boolean;
  trippedMs: number | null;
  lastTripReason: string;
  /** The revisions of the policy and of the trip entity this state was last brought up to. */
  policyRevision: number;
  tripRevision: number;
}

/** A stream nothing was shipped for yet. */
export const NEW_FLEET_WIRE: FleetWireRow = Object.freeze({
  eventsSeen: 0,
  restartAfter: 0,
  armedAfter: 0,
  frozenBaseline: null,
  cusum: 0,
  design: null,
  dryRunTripped: false,
  trippedMs: null,
  lastTripReason: "",
  policyRevision: 0,
  tripRevision: 0,
});

/** The wire's trip entity on central: its revision and whether it is tripped. */
export interface TripEntity {
  revision: number;
  tripped: boolean;
  reason: string;
  trippedMs: number | null;
}

/** Outcomes a stream keeps: what its wire reads (window + baseline), 250 without a policy. */
export function outcomesKept(p: TripwirePolicy | undefined): number {
  return p ? Math.max(1, p.windowEvents + p.baselineEvents) : 250;
}

/**
 * Brings a stream's state up to central's entities: a trip entity re-armed since (tripped false
 * at a newer revision) restarts the wire after the outcomes seen so far, as a fresh series, and
 * clears a dry-run trip; a changed policy restarts a SEQUENTIAL chart (the trip stays), as an
 * upsert does on a sidecar.
 */
export function rearmed(
  row: FleetWireRow,
  policyRevision: number,
  trip: TripEntity | undefined,
): FleetWireRow {
  let r = row;
  const restart = {
    armedAfter: r.eventsSeen,
    frozenBaseline: null,
    cusum: 0,
    design: null,
  };
  if (trip && trip.revision > r.tripRevision) {
    if (!trip.tripped) {
      r = { ...r, ...restart, restartAfter: r.eventsSeen, dryRunTripped: false, trippedMs: null };
    }
    r = { ...r, tripRevision: trip.revision };
  }
  if (policyRevision !== r.policyRevision) r = { ...r, ...restart, policyRevision };
  return r;
}

/** The wire's series state as the sidecar's rule reads it (tripped as central's entity says). */
export function seriesOf(row: FleetWireRow, trip: TripEntity | undefined): SeriesState {
  const tripped = trip?.tripped === true;
  return {
    eventsSeen: row.eventsSeen - row.restartAfter,
    tripped,
    dryRunTripped: row.dryRunTripped,
    trippedMs: tripped ? trip.trippedMs : row.trippedMs,
    lastTripReason: tripped ? trip.reason : row.lastTripReason,
    armedAfterKpi: row.armedAfter,
    frozenBaseline: row.frozenBaseline,
    cusum: row.cusum,
    design: row.design,
  };
}

function withSeries(row: FleetWireRow, s: SeriesState): FleetWireRow {
  return {
    ...row,
    armedAfter: s.armedAfterKpi,
    frozenBaseline: s.frozenBaseline,
    cusum: s.cusum,
    design: s.design,
    dryRunTripped: s.dryRunTripped,
    trippedMs: s.trippedMs,
    lastTripReason: s.lastTripReason,
  };
}

/** Successes among the newest `window` outcomes and the `baseline` before them (oldest first). */
export function countsOf(kept: readonly boolean[], window: number, baseline: number): WindowCounts {
  const end = kept.length;
  const currentEvents = Math.min(window, end);
  const baselineEvents = Math.min(baseline, end - currentEvents);
  let currentSuccesses = 0;
  let baselineSuccesses = 0;
  for (let i = end - currentEvents; i < end; i++) if (kept[i]) currentSuccesses++;
  for (let i = end - currentEvents - baselineEvents; i < end - currentEvents; i++) {
    if (kept[i]) baselineSuccesses++;
  }
  return { currentSuccesses, currentEvents, baselineSuccesses, baselineEvents };
}

/** The wire's figures on the stream's kept outcomes (oldest first). */
export function fleetFigures(
  p: TripwirePolicy,
  s: SeriesState,
  kept: readonly boolean[],
): WireFigures {
  return wireFigures(
    p,
    s,
    countsOf(kept, p.windowEvents, p.method === "RELATIVE_DROP" ? p.baselineEvents : 0),
  );
}

/**
 * SEQUENTIAL: freezes a baseline the wire can freeze now (after a re-arm or a policy change on
 * central, as arming does on a sidecar); otherwise the state as it is.
 */
export function caughtUp(
  p: TripwirePolicy | undefined,
  row: FleetWireRow,
  trip: TripEntity | undefined,
  kept: readonly boolean[],
): FleetWireRow {
  if (!p) return row;
  const s = seriesOf(row, trip);
  const frozen = freezeSeries(
    p,
    s,
    (n) => countsOf(kept, n, 0).currentSuccesses,
    () => row.eventsSeen,
  );
  return frozen === s ? row : withSeries(row, frozen);
}

/** What a run of outcomes did to a wire: its state after, and the trip it calls for if any. */
export interface FleetRun {
  row: FleetWireRow;
  /** The reason of a trip to commit (not in dry run: that is only noted in the row). */
  trip: { reason: string; figures: WireFigures; at: number } | null;
}

/**
 * Appends `outcomes` (in ingest order) to a stream whose kept outcomes are `kept` (oldest
 * first; appended to in place and trimmed to what the wire reads) and evaluates the wire after
 * each, as a sidecar does after each RecordKpi. A wire tripped (here or by central's entity),
 * disabled or without a policy only records outcomes. `stream` names the stream in a reason.
 */
export function runFleetWire(
  p: TripwirePolicy | undefined,
  start: FleetWireRow,
  trip: TripEntity | undefined,
  kept: boolean[],
  outcomes: readonly boolean[],
  nowMs: number,
  stream: string,
): FleetRun {
  let row = caughtUp(p, start, trip, kept);
  let tripped = trip?.tripped === true;
  let call: FleetRun["trip"] = null;
  for (const success of outcomes) {
    const n = row.eventsSeen + 1;
    row = { ...row, eventsSeen: n };
    kept.push(success);
    if (!p?.enabled || tripped || row.dryRunTripped) continue;
    const step = sequentialStep(
      p,
      seriesOf(row, trip),
      n,
      success,
      (last) => countsOf(kept, last, 0).currentSuccesses,
      () => n,
    );
    row = withSeries(row, step.state);
    const f = fleetFigures(p, step.state, kept);
    if (f.decision !== "TRIP") continue;
    const reason = tripReason(p, step.state, f, stream);
    row = withSeries(row, trippedState(p, step.state, reason, nowMs));
    if (!p.dryRun) {
      tripped = true;
      call = { reason, figures: f, at: n };
    }
  }
  const keep = outcomesKept(p);
  if (kept.length > keep) kept.splice(0, kept.length - keep);
  return { row, trip: call };
}
