/** Stored tripwire policies, KPI series and the state of each wire. */
import type { Db } from "../../store/database.js";
import { CommittedValue } from "../../store/policy-revision.js";
import { kpiAuditEntry } from "./kpi-outcome.js";
import { EMPTY_SERIES, KpiSeries, type SeriesState } from "./kpi-series.js";
import { throttleTargets, type WindowCounts } from "./rules.js";

export { EMPTY_SERIES, type SeriesState };

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

/** Data access for the regression lever; writes run inside the caller's transaction. */
export class Tripwires {
  private readonly s;
  /** Policies by "domain/metric", in domain, metric order (kept between writes). */
  private readonly policyCache;
  /** Targets throttled by tripped THROTTLE wires (kept between writes). */
  private readonly throttledCache;
  /** Every series' count, wire state and latest outcomes, in memory (see kpi-series.ts). */
  private readonly series;

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
    this.series = new KpiSeries(db, (domain, metric) => this.policy(domain, metric));
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
    // Outcomes not folded yet were decided under the old policy: fold them first (kpi-fold.ts).
    this.series.fold(Number.POSITIVE_INFINITY);
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
    this.series.fold(Number.POSITIVE_INFINITY);
    this.s.remove.run(domain, metric);
    this.policyCache.invalidate();
    this.throttledCache.invalidate();
  }

  /**
   * Records one KPI outcome: its audit event (lever `kpi`, the one row it writes; it ships to
   * central's fleet KPI stream), then the series in memory. Returns the outcome's id.
   */
  recordKpi(
    req: { domain: string; metric: string; success: boolean; value: number; correlationId: string },
    actor: string,
    nowMs: number,
  ): number {
    return this.series.record(
      kpiAuditEntry(req, actor),
      req.domain,
      req.metric,
      req.success,
      nowMs,
    );
  }

  /**
   * Successes and events among a series' newest `window` outcomes and the `baseline` before
   * them (what a wire decides on).
   */
  windowCounts(domain: string, metric: string, window: number, baseline: number): WindowCounts {
    return this.series.counts(domain, metric, window, baseline);
  }

  /** The id of the newest KPI outcome of a series (0 when none). */
  lastKpiId(domain: string, metric: string): number {
    return this.series.lastId(domain, metric);
  }

  /** What is kept about a series. */
  seriesState(domain: string, metric: string): SeriesState {
    return this.series.state(domain, metric);
  }

  /** Stores a wire's state (the event count and statistic are kept by recordKpi). */
  saveSeries(domain: string, metric: string, s: SeriesState): void {
    this.series.save(domain, metric, s);
    this.throttledCache.invalidate();
  }

  /**
   * Folds the KPI outcomes of at most `maxEvents` sequence numbers of the trail into the
   * tables (inside the caller's transaction); returns how many it advanced.
   */
  fold(maxEvents?: number): number {
    return this.series.fold(maxEvents);
  }

  /** Changes of the series not known to be committed yet (for tests). */
  get uncommitted(): number {
    return this.series.uncommitted;
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
