/**
 * KPI series in memory: each series' event count, the state of its wire (with a SEQUENTIAL
 * chart's statistic), its newest event id and its latest outcomes. Since migration 12 a
 * RecordKpi writes one row, its audit event (lever `kpi`); the series applies the same outcome
 * to memory, and the journal forgets a series whose change a rollback undid. A series is read
 * from the store on first use (its folded tables, then its KPI events after meta.kpi_folded_seq)
 * and `fold` moves events into the tables off the decision path (store/kpi-fold.ts).
 */
import { type AuditEntry, AuditLog, type ChainLink } from "../../store/audit-log.js";
import { ChainJournal, SELF_FOLD_EVERY } from "../../store/chain-journal.js";
import type { Db } from "../../store/database.js";
import { FoldStatements } from "../../store/fold-statements.js";
import { KPI_FOLD_STEPS, KPI_FOLD_TABLES } from "../../store/kpi-fold.js";
import { type CusumDesign, cusumStep } from "./bernoulli-cusum.js";
import { OutcomeRing } from "./outcome-window.js";
import type { TripwirePolicy } from "./tripwires.js";

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

/**
 * A series after one more outcome, event id `id`: counted, and a SEQUENTIAL chart stepped when
 * its wire is enabled, armed before `id` and not tripped (as KPI_FOLD_STEPS step it).
 */
export function afterOutcome(
  p: Readonly<TripwirePolicy> | undefined,
  s: SeriesState,
  id: number,
  success: boolean,
): SeriesState {
  const steps =
    p?.enabled === true &&
    p.method === "SEQUENTIAL" &&
    !s.tripped &&
    !s.dryRunTripped &&
    s.design !== null &&
    id > s.armedAfterKpi;
  const cusum = steps && s.design ? cusumStep(s.design, s.cusum, success) : s.cusum;
  return { ...s, eventsSeen: s.eventsSeen + 1, cusum };
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

function stateOf(row: StateRow): SeriesState {
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

/** One series in memory. */
interface Series {
  state: SeriesState;
  /** The id of its newest outcome (0 when none). */
  lastId: number;
  ring: OutcomeRing;
}

/** Outcomes a series keeps at least (a default wire's window and baseline). */
const MIN_KEPT = 250;
/** At most this many series are kept; beyond it they are dropped and read again. */
const MAX_SERIES = 10_000;

/** The KPI series of one store, in memory, with their fold. */
export class KpiSeries {
  private readonly kept = new Map<string, Series>();
  private readonly journal;
  private readonly audit;
  private readonly s;
  private readonly folding: FoldStatements;
  /** A KPI event's outcome id is this plus its sequence number (see kpi-fold.ts). */
  private readonly idBase: number;
  private foldedHint = 0;

  constructor(
    db: Db,
    private readonly policyOf: (domain: string, metric: string) => TripwirePolicy | undefined,
  ) {
    this.audit = new AuditLog(db);
    this.journal = new ChainJournal(db);
    this.folding = new FoldStatements(db, KPI_FOLD_TABLES, KPI_FOLD_STEPS);
    const folded = "(SELECT value FROM meta WHERE key = 'kpi_folded_seq')";
    this.s = {
      row: db.prepare<[string, string], StateRow>(
        "SELECT * FROM tripwire_state WHERE domain = ? AND metric = ?",
      ),
      after: db.prepare<[string], { seq: number; ok: number }>(
        `SELECT seq, ok FROM audit_event WHERE lever = 'kpi' AND subject = ? AND seq > ${folded}
          AND action = 'KPI' ORDER BY seq`,
      ),
      foldedOutcomes: db
        .prepare<[string, string, number], number>(
          "SELECT success FROM kpi_event WHERE domain = ? AND metric = ? ORDER BY id DESC LIMIT ?",
        )
        .pluck(),
      lastFolded: db
        .prepare<[string, string], number | null>(
          "SELECT max(id) FROM kpi_event WHERE domain = ? AND metric = ?",
        )
        .pluck(),
      folded: db.prepare<[], number | undefined>(`SELECT ${folded}`).pluck(),
      head: db.prepare<[], ChainLink>(
        "SELECT seq, hash FROM audit_event ORDER BY seq DESC LIMIT 1",
      ),
      foldTo: db.prepare<[number]>("UPDATE meta SET value = ? WHERE key = 'kpi_fold_to'"),
      write: db.prepare(
        `INSERT INTO tripwire_state (domain, metric, events_seen, tripped, tripped_ms,
          last_trip_reason, armed_after_kpi, frozen_baseline, cusum, cusum_design, dry_run_tripped)
         VALUES (@domain, @metric, @eventsSeen, @tripped, @trippedMs, @lastTripReason,
          @armedAfterKpi, @frozenBaseline, @cusum, @design, @dryRunTripped)
         ON CONFLICT (domain, metric) DO UPDATE SET tripped = excluded.tripped,
          tripped_ms = excluded.tripped_ms, last_trip_reason = excluded.last_trip_reason,
          armed_after_kpi = excluded.armed_after_kpi, frozen_baseline = excluded.frozen_baseline,
          cusum = excluded.cusum, cusum_design = excluded.cusum_design,
          dry_run_tripped = excluded.dry_run_tripped`,
      ),
      written: db
        .prepare<Record<string, unknown>, number>(
          `SELECT 1 FROM tripwire_state WHERE domain = @domain AND metric = @metric
          AND tripped = @tripped AND tripped_ms IS @trippedMs
          AND last_trip_reason = @lastTripReason AND armed_after_kpi = @armedAfterKpi
          AND frozen_baseline IS @frozenBaseline AND cusum_design IS @design
          AND dry_run_tripped = @dryRunTripped`,
        )
        .pluck(),
    };
    this.idBase =
      db.prepare<[], number>("SELECT value FROM meta WHERE key = 'kpi_id_base'").pluck().get() ?? 0;
  }

  /** A series in memory holding at least its `outcomes` newest outcomes. */
  private series(domain: string, metric: string, outcomes = 0): Series {
    this.journal.sync();
    const kept = this.kept.get(`${domain}/${metric}`);
    if (kept?.ring.covers(outcomes)) return kept;
    return this.load(domain, metric, Math.max(outcomes, kept?.ring.capacity ?? 0, MIN_KEPT));
  }

  /** The state of a series and its wire. */
  state(domain: string, metric: string): SeriesState {
    return this.series(domain, metric).state;
  }

  /** The id of a series' newest outcome (0 when none). */
  lastId(domain: string, metric: string): number {
    return this.series(domain, metric).lastId;
  }

  /** Successes and events among the newest `window` outcomes and the `baseline` before them. */
  counts(domain: string, metric: string, window: number, baseline: number) {
    return this.series(domain, metric, window + baseline).ring.counts(window, baseline);
  }

  /**
   * Records one outcome: its KPI audit event (`entry`, the one row it writes), then the series
   * in memory (counted, its chart stepped). Returns the outcome's id.
   */
  record(entry: AuditEntry, domain: string, metric: string, success: boolean, nowMs: number) {
    const key = `${domain}/${metric}`;
    const series = this.series(domain, metric);
    const link = this.audit.appendLinked(entry, nowMs);
    const id = this.idBase + link.seq;
    series.state = afterOutcome(this.policyOf(domain, metric), series.state, id, success);
    series.lastId = id;
    series.ring.push(success);
    this.journal.record(link, () => this.kept.delete(key));
    if (link.seq - this.foldedHint >= SELF_FOLD_EVERY) this.fold(SELF_FOLD_EVERY * 2);
    return id;
  }

  /**
   * Stores a wire's state (armed, frozen or tripped; its event count stays the series'):
   * folds the trail first, so the row then holds every event up to now.
   */
  save(domain: string, metric: string, s: SeriesState): void {
    const series = this.series(domain, metric);
    this.fold(Number.POSITIVE_INFINITY);
    const row = {
      domain,
      metric,
      eventsSeen: series.state.eventsSeen,
      tripped: s.tripped ? 1 : 0,
      trippedMs: s.trippedMs,
      lastTripReason: s.lastTripReason,
      armedAfterKpi: s.armedAfterKpi,
      frozenBaseline: s.frozenBaseline,
      cusum: s.cusum,
      design: s.design ? JSON.stringify(s.design) : null,
      dryRunTripped: s.dryRunTripped ? 1 : 0,
    };
    this.s.write.run(row);
    series.state = { ...s, eventsSeen: series.state.eventsSeen };
    const head = this.s.head.get() ?? { seq: 0, hash: "" };
    this.journal.record(
      head,
      () => this.kept.delete(`${domain}/${metric}`),
      () => this.s.written.get(row) === 1,
    );
  }

  /**
   * Folds the events of at most `maxEvents` sequence numbers after the snapshot into the
   * tables (inside the caller's transaction); returns how many it advanced.
   */
  fold(maxEvents = 20_000): number {
    const from = this.s.folded.get() ?? 0;
    const head = this.s.head.get()?.seq ?? 0;
    const to = Math.min(head, from + maxEvents);
    this.foldedHint = Math.max(this.foldedHint, to);
    if (to <= from) return 0;
    this.s.foldTo.run(to);
    this.folding.run();
    return to - from;
  }

  /** Changes of the series not known to be committed yet (for tests). */
  get uncommitted(): number {
    return this.journal.pending;
  }

  /** Reads a series from the store: its folded row and outcomes, then its events after them. */
  private load(domain: string, metric: string, capacity: number): Series {
    const key = `${domain}/${metric}`;
    const row = this.s.row.get(domain, metric);
    const policy = this.policyOf(domain, metric);
    let state = row ? stateOf(row) : EMPTY_SERIES;
    const events = this.s.after.all(key);
    for (const e of events) state = afterOutcome(policy, state, this.idBase + e.seq, e.ok === 1);
    const newest = events[events.length - 1];
    const lastId = newest ? this.idBase + newest.seq : (this.s.lastFolded.get(domain, metric) ?? 0);
    const newestFirst: boolean[] = [];
    for (let i = events.length - 1; i >= 0 && newestFirst.length < capacity; i--) {
      newestFirst.push(events[i]?.ok === 1);
    }
    if (newestFirst.length < capacity) {
      for (const s of this.s.foldedOutcomes.all(domain, metric, capacity - newestFirst.length)) {
        newestFirst.push(s === 1);
      }
    }
    const series: Series = { state, lastId, ring: new OutcomeRing(capacity, newestFirst) };
    if (this.kept.size >= MAX_SERIES) this.kept.clear();
    this.kept.set(key, series);
    return series;
  }
}
