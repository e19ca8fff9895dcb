/** Stored tripwire policies, KPI series and trip state. */
import type { Db } from "../../store/database.js";
import { throttleTargets } from "./rules.js";

/** A tripwire policy as stored. */
export interface TripwirePolicy {
  domain: string;
  metric: string;
  windowEvents: number;
  baselineEvents: number;
  minEventsToEnforce: number;
  maxDropFraction: number;
  action: "THROTTLE" | "KILL_SWITCH";
  throttleTargets: string[];
  enabled: boolean;
  updatedBy: string;
  updatedMs: number;
}

/** Trip state and event count of one (domain, metric) series. */
export interface SeriesState {
  eventsSeen: number;
  tripped: boolean;
  trippedMs: number | null;
  lastTripReason: string;
}

interface PolicyRow {
  domain: string;
  metric: string;
  window_events: number;
  baseline_events: number;
  min_events_to_enforce: number;
  max_drop_fraction: number;
  action: "THROTTLE" | "KILL_SWITCH";
  throttle_targets: string;
  enabled: number;
  updated_by: string;
  updated_ms: number;
}

interface StateRow {
  events_seen: number;
  tripped: number;
  tripped_ms: number | null;
  last_trip_reason: string;
}

function toPolicy(r: PolicyRow): TripwirePolicy {
  return {
    domain: r.domain,
    metric: r.metric,
    windowEvents: r.window_events,
    baselineEvents: r.baseline_events,
    minEventsToEnforce: r.min_events_to_enforce,
    maxDropFraction: r.max_drop_fraction,
    action: r.action,
    throttleTargets: JSON.parse(r.throttle_targets) as string[],
    enabled: r.enabled === 1,
    updatedBy: r.updated_by,
    updatedMs: r.updated_ms,
  };
}

/** Data access for the regression lever. */
export class Tripwires {
  private readonly all;
  private readonly one;
  private readonly upsert;
  private readonly insertKpi;
  private readonly countKpi;
  private readonly recent;
  private readonly state;
  private readonly setTrip;
  private readonly throttling;
  private readonly tripped;

  constructor(db: Db) {
    this.all = db.prepare<[], PolicyRow>("SELECT * FROM regression_policy ORDER BY domain, metric");
    this.one = db.prepare<[string, string], PolicyRow>(
      "SELECT * FROM regression_policy WHERE domain = ? AND metric = ?",
    );
    this.upsert = db.prepare(
      `INSERT INTO regression_policy VALUES (@domain, @metric, @windowEvents, @baselineEvents,
        @minEventsToEnforce, @maxDropFraction, @action, @targets, @enabled, @updatedBy, @updatedMs)
       ON CONFLICT (domain, metric) DO UPDATE SET window_events = excluded.window_events,
        baseline_events = excluded.baseline_events, min_events_to_enforce = excluded.min_events_to_enforce,
        max_drop_fraction = excluded.max_drop_fraction, action = excluded.action,
        throttle_targets = excluded.throttle_targets, enabled = excluded.enabled,
        updated_by = excluded.updated_by, updated_ms = excluded.updated_ms`,
    );
    this.insertKpi = db.prepare(
      "INSERT INTO kpi_event (domain, metric, success, value, time_ms) VALUES (?, ?, ?, ?, ?)",
    );
    this.countKpi = db.prepare(
      `INSERT INTO tripwire_state (domain, metric, events_seen, tripped, tripped_ms, last_trip_reason)
       VALUES (?, ?, 1, 0, NULL, '')
       ON CONFLICT (domain, metric) DO UPDATE SET events_seen = events_seen + 1`,
    );
    this.recent = db
      .prepare<[string, string, number], number>(
        "SELECT success FROM kpi_event WHERE domain = ? AND metric = ? ORDER BY id DESC LIMIT ?",
      )
      .pluck();
    this.state = db.prepare<[string, string], StateRow>(
      "SELECT events_seen, tripped, tripped_ms, last_trip_reason FROM tripwire_state WHERE domain = ? AND metric = ?",
    );
    this.setTrip = db.prepare(
      `INSERT INTO tripwire_state (domain, metric, events_seen, tripped, tripped_ms, last_trip_reason)
       VALUES (@domain, @metric, 0, @tripped, @ms, @reason)
       ON CONFLICT (domain, metric) DO UPDATE SET tripped = excluded.tripped,
        tripped_ms = excluded.tripped_ms, last_trip_reason = excluded.last_trip_reason`,
    );
    this.throttling = db.prepare<[], { domain: string; throttle_targets: string }>(
      `SELECT p.domain, p.throttle_targets FROM tripwire_state s
       JOIN regression_policy p ON p.domain = s.domain AND p.metric = s.metric
       WHERE s.tripped = 1 AND p.action = 'THROTTLE'`,
    );
    this.tripped = db
      .prepare<[], string>(
        "SELECT domain || '/' || metric FROM tripwire_state WHERE tripped = 1 ORDER BY domain, metric",
      )
      .pluck();
  }

  /** Every policy, by domain and metric. */
  policies(): TripwirePolicy[] {
    return this.all.all().map(toPolicy);
  }

  /** The policy of one series, if any. */
  policy(domain: string, metric: string): TripwirePolicy | undefined {
    const row = this.one.get(domain, metric);
    return row ? toPolicy(row) : undefined;
  }

  /** Creates or replaces a policy. */
  savePolicy(p: TripwirePolicy): void {
    this.upsert.run({
      ...p,
      targets: JSON.stringify(p.throttleTargets),
      enabled: p.enabled ? 1 : 0,
    });
  }

  /** Appends one KPI outcome to its series. */
  recordKpi(domain: string, metric: string, success: boolean, value: number, nowMs: number): void {
    this.insertKpi.run(domain, metric, success ? 1 : 0, value, nowMs);
    this.countKpi.run(domain, metric);
  }

  /** The latest `count` outcomes of a series, newest first. */
  recentOutcomes(domain: string, metric: string, count: number): boolean[] {
    return this.recent.all(domain, metric, count).map((s) => s === 1);
  }

  /** Trip state and event count of a series. */
  seriesState(domain: string, metric: string): SeriesState {
    const row = this.state.get(domain, metric);
    return {
      eventsSeen: row?.events_seen ?? 0,
      tripped: row?.tripped === 1,
      trippedMs: row?.tripped_ms ?? null,
      lastTripReason: row?.last_trip_reason ?? "",
    };
  }

  /** Marks a series tripped, or re-armed when `tripped` is false (the last reason is kept). */
  setTripped(
    domain: string,
    metric: string,
    tripped: boolean,
    nowMs: number,
    reason: string,
  ): void {
    this.setTrip.run({
      domain,
      metric,
      tripped: tripped ? 1 : 0,
      ms: tripped ? nowMs : null,
      reason,
    });
  }

  /** Engines and Heimdall domains throttled by tripped THROTTLE wires now. */
  throttled(): Set<string> {
    const out = new Set<string>();
    for (const row of this.throttling.all()) {
      for (const t of throttleTargets(row.domain, JSON.parse(row.throttle_targets) as string[])) {
        out.add(t);
      }
    }
    return out;
  }

  /** "domain/metric" of every tripped wire. */
  trippedWires(): string[] {
    return this.tripped.all();
  }
}
