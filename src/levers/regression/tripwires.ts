/** Stored tripwire policies, KPI series and the state of each wire. */
import type { Db } from "../../store/database.js";
import { CommittedValue } from "../../store/policy-revision.js";
import type { CusumDesign } from "./bernoulli-cusum.js";
import { OutcomeWindows } from "./outcome-window.js";
import { throttleTargets, type WindowCounts } from "./rules.js";

/** How a wire decides; see rules.ts (RELATIVE_DROP) and bernoulli-cusum.ts (SEQUENTIAL). */
export type TripwireMethodName = "RELATIVE_DROP" | "SEQUENTIAL";

/** A tripwire policy as stored. */
export interface TripwirePolicy {
  domain: string;
  metric: string;
  method: TripwireMethodName;
  windowEvents: number;
  baselineEvents: number;
  minEventsToEnforce: number;
  maxDropFraction: number;
  /** SEQUENTIAL: in-control events expected between false alarms. */
  falseAlarmEvents: number;
  /** SEQUENTIAL: the operator's baseline success rate, or 0 to measure it when armed. */
  baselineRate: number;
  action: "THROTTLE" | "KILL_SWITCH";
  throttleTargets: string[];
  enabled: boolean;
  dryRun: boolean;
  updatedBy: string;
  updatedMs: number;
}

/** What is kept about one (domain, metric) series and its wire. */
export interface SeriesState {
  eventsSeen: number;
  tripped: boolean;
  dryRunTripped: boolean;
  trippedMs: number | null;
  lastTripReason: string;
  /** SEQUENTIAL: the chart counts events with a larger id than this. */
  armedAfterKpi: number;
  /** SEQUENTIAL: the baseline frozen at arming, null until enough events were seen. */
  frozenBaseline: number | null;
  /** SEQUENTIAL: the chart's statistic, in scaled units. */
  cusum: number;
  design: CusumDesign | null;
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
  method: TripwireMethodName;
  false_alarm_events: number;
  baseline_rate: number;
  dry_run: number;
}

interface StateRow {
  events_seen: number;
  tripped: number;
  tripped_ms: number | null;
  last_trip_reason: string;
  armed_after_kpi: number;
  frozen_baseline: number | null;
  cusum: number;
  cusum_design: string | null;
  dry_run_tripped: number;
}

function toPolicy(r: PolicyRow): TripwirePolicy {
  return {
    domain: r.domain,
    metric: r.metric,
    method: r.method,
    windowEvents: r.window_events,
    baselineEvents: r.baseline_events,
    minEventsToEnforce: r.min_events_to_enforce,
    maxDropFraction: r.max_drop_fraction,
    falseAlarmEvents: r.false_alarm_events,
    baselineRate: r.baseline_rate,
    action: r.action,
    throttleTargets: JSON.parse(r.throttle_targets) as string[],
    enabled: r.enabled === 1,
    dryRun: r.dry_run === 1,
    updatedBy: r.updated_by,
    updatedMs: r.updated_ms,
  };
}

/** The state of a series nothing was recorded for. */
export const EMPTY_SERIES: SeriesState = Object.freeze({
  eventsSeen: 0,
  tripped: false,
  dryRunTripped: false,
  trippedMs: null,
  lastTripReason: "",
  armedAfterKpi: 0,
  frozenBaseline: null,
  cusum: 0,
  design: null,
});

/** Data access for the regression lever; writes run inside the caller's transaction. */
export class Tripwires {
  private readonly s;
  /** Policies by "domain/metric", in domain, metric order (kept between writes). */
  private readonly policyCache;
  /** Targets throttled by tripped THROTTLE wires (kept between writes). */
  private readonly throttledCache;
  /** The latest outcomes of each evaluated series (checked against the store on every read). */
  private readonly windows;

  constructor(db: Db) {
    this.policyCache = new CommittedValue<ReadonlyMap<string, Readonly<TripwirePolicy>>>(db);
    this.throttledCache = new CommittedValue<ReadonlySet<string>>(db);
    this.s = {
      all: db.prepare<[], PolicyRow>("SELECT * FROM regression_policy ORDER BY domain, metric"),
      upsert: db.prepare(
        `INSERT INTO regression_policy (domain, metric, window_events, baseline_events,
          min_events_to_enforce, max_drop_fraction, action, throttle_targets, enabled, updated_by,
          updated_ms, method, false_alarm_events, baseline_rate, dry_run)
         VALUES (@domain, @metric, @windowEvents, @baselineEvents, @minEventsToEnforce,
          @maxDropFraction, @action, @targets, @enabled, @updatedBy, @updatedMs, @method,
          @falseAlarmEvents, @baselineRate, @dryRun)
         ON CONFLICT (domain, metric) DO UPDATE SET window_events = excluded.window_events,
          baseline_events = excluded.baseline_events, min_events_to_enforce = excluded.min_events_to_enforce,
          max_drop_fraction = excluded.max_drop_fraction, action = excluded.action,
          throttle_targets = excluded.throttle_targets, enabled = excluded.enabled,
          updated_by = excluded.updated_by, updated_ms = excluded.updated_ms, method = excluded.method,
          false_alarm_events = excluded.false_alarm_events, baseline_rate = excluded.baseline_rate,
          dry_run = excluded.dry_run`,
      ),
      remove: db.prepare("DELETE FROM regression_policy WHERE domain = ? AND metric = ?"),
      insertKpi: db.prepare(
        "INSERT INTO kpi_event (domain, metric, success, value, time_ms) VALUES (?, ?, ?, ?, ?)",
      ),
      countKpi: db.prepare(
        `INSERT INTO tripwire_state (domain, metric, events_seen, tripped, tripped_ms, last_trip_reason)
         VALUES (?, ?, 1, 0, NULL, '')
         ON CONFLICT (domain, metric) DO UPDATE SET events_seen = events_seen + 1`,
      ),
      recent: db
        .prepare<[string, string, number], number>(
          "SELECT success FROM kpi_event WHERE domain = ? AND metric = ? ORDER BY id DESC LIMIT ?",
        )
        .pluck(),
      lastKpi: db
        .prepare<[string, string], number | null>(
          "SELECT max(id) FROM kpi_event WHERE domain = ? AND metric = ?",
        )
        .pluck(),
      state: db.prepare<[string, string], StateRow>(
        "SELECT * FROM tripwire_state WHERE domain = ? AND metric = ?",
      ),
      writeState: db.prepare(
        `INSERT INTO tripwire_state (domain, metric, events_seen, tripped, tripped_ms,
          last_trip_reason, armed_after_kpi, frozen_baseline, cusum, cusum_design, dry_run_tripped)
         VALUES (@domain, @metric, 0, @tripped, @trippedMs, @lastTripReason, @armedAfterKpi,
          @frozenBaseline, @cusum, @design, @dryRunTripped)
         ON CONFLICT (domain, metric) DO UPDATE SET tripped = excluded.tripped,
          tripped_ms = excluded.tripped_ms, last_trip_reason = excluded.last_trip_reason,
          armed_after_kpi = excluded.armed_after_kpi, frozen_baseline = excluded.frozen_baseline,
          cusum = excluded.cusum, cusum_design = excluded.cusum_design,
          dry_run_tripped = excluded.dry_run_tripped`,
      ),
      writeStatistic: db.prepare(
        "UPDATE tripwire_state SET cusum = ? WHERE domain = ? AND metric = ?",
      ),
      throttling: db.prepare<[], { domain: string; throttle_targets: string }>(
        `SELECT p.domain, p.throttle_targets FROM tripwire_state s
         JOIN regression_policy p ON p.domain = s.domain AND p.metric = s.metric
         WHERE s.tripped = 1 AND p.action = 'THROTTLE'`,
      ),
      tripped: db
        .prepare<[], string>(
          "SELECT domain || '/' || metric FROM tripwire_state WHERE tripped = 1 ORDER BY domain, metric",
        )
        .pluck(),
    };
    this.windows = new OutcomeWindows((domain, metric, count) =>
      this.s.recent.all(domain, metric, count).map((s) => s === 1),
    );
  }

  private policyMap(): ReadonlyMap<string, Readonly<TripwirePolicy>> {
    return this.policyCache.get(
      () =>
        new Map(
          this.s.all.all().map((row) => {
            const p = toPolicy(row);
            Object.freeze(p.throttleTargets);
            return [`${p.domain}/${p.metric}`, Object.freeze(p)];
          }),
        ),
    );
  }

  /** Every policy, by domain and metric. */
  policies(): Readonly<TripwirePolicy>[] {
    return [...this.policyMap().values()];
  }

  /** The policy of one series, if any. */
  policy(domain: string, metric: string): Readonly<TripwirePolicy> | undefined {
    return this.policyMap().get(`${domain}/${metric}`);
  }

  /** Creates or replaces a policy. */
  savePolicy(p: TripwirePolicy): void {
    this.s.upsert.run({
      ...p,
      targets: JSON.stringify(p.throttleTargets),
      enabled: p.enabled ? 1 : 0,
      dryRun: p.dryRun ? 1 : 0,
    });
    this.policyCache.invalidate();
    this.throttledCache.invalidate();
  }

  /** Removes a series' policy (central's snapshot no longer has it); its outcomes stay. */
  removePolicy(domain: string, metric: string): void {
    this.s.remove.run(domain, metric);
    this.policyCache.invalidate();
    this.throttledCache.invalidate();
  }

  /** Appends one KPI outcome to its series and returns the event's id. */
  recordKpi(
    domain: string,
    metric: string,
    success: boolean,
    value: number,
    nowMs: number,
  ): number {
    const kept = this.windows.keeps(domain, metric);
    const previousId = kept ? this.lastKpiId(domain, metric) : 0;
    const id = Number(
      this.s.insertKpi.run(domain, metric, success ? 1 : 0, value, nowMs).lastInsertRowid,
    );
    this.s.countKpi.run(domain, metric);
    if (kept) this.windows.appended(domain, metric, previousId, id, success);
    return id;
  }

  /**
   * Successes and events among a series' newest `window` outcomes and the `baseline` before
   * them (what a wire decides on).
   */
  windowCounts(domain: string, metric: string, window: number, baseline: number): WindowCounts {
    return this.windows.counts(domain, metric, window, baseline, this.lastKpiId(domain, metric));
  }

  /** The id of the newest KPI event of a series (0 when none). */
  lastKpiId(domain: string, metric: string): number {
    return this.s.lastKpi.get(domain, metric) ?? 0;
  }

  /** What is kept about a series. */
  seriesState(domain: string, metric: string): SeriesState {
    const row = this.s.state.get(domain, metric);
    if (!row) return EMPTY_SERIES;
    return {
      eventsSeen: row.events_seen,
      tripped: row.tripped === 1,
      dryRunTripped: row.dry_run_tripped === 1,
      trippedMs: row.tripped_ms,
      lastTripReason: row.last_trip_reason,
      armedAfterKpi: row.armed_after_kpi,
      frozenBaseline: row.frozen_baseline,
      cusum: row.cusum,
      design: row.cusum_design ? (JSON.parse(row.cusum_design) as CusumDesign) : null,
    };
  }

  /** Stores a wire's state (the event count is kept by recordKpi). */
  saveSeries(domain: string, metric: string, s: SeriesState): void {
    this.s.writeState.run({
      domain,
      metric,
      tripped: s.tripped ? 1 : 0,
      trippedMs: s.trippedMs,
      lastTripReason: s.lastTripReason,
      armedAfterKpi: s.armedAfterKpi,
      frozenBaseline: s.frozenBaseline,
      cusum: s.cusum,
      design: s.design ? JSON.stringify(s.design) : null,
      dryRunTripped: s.dryRunTripped ? 1 : 0,
    });
    this.throttledCache.invalidate();
  }

  /**
   * Stores a SEQUENTIAL chart's statistic after one event: the per-KPI write, which touches no
   * trip flag and so keeps the throttled set.
   */
  saveStatistic(domain: string, metric: string, cusum: number): void {
    this.s.writeStatistic.run(cusum, domain, metric);
  }

  /** Engines and Heimdall domains throttled by tripped THROTTLE wires now. */
  throttled(): ReadonlySet<string> {
    return this.throttledCache.get(() => {
      const out = new Set<string>();
      for (const row of this.s.throttling.all()) {
        for (const t of throttleTargets(row.domain, JSON.parse(row.throttle_targets) as string[])) {
          out.add(t);
        }
      }
      return out;
    });
  }

  /** "domain/metric" of every tripped wire. */
  trippedWires(): string[] {
    return this.s.tripped.all();
  }
}
