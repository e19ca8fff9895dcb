/**
 * The day's sandbox scorecards in memory. Since migration 12 a RecordSandboxTrial writes one
 * row, its SANDBOX_TRIAL audit event; the scorecard of its day and domain is kept in memory,
 * and `fold` books the trials into `heimdall_scorecard` off the decision path. A scorecard with
 * trials after meta.scorecard_folded_seq is always in memory (all of them are read at first use);
 * any other is its row. A rollback forgets the scorecards whose trial event is gone from the
 * chain, and reads them again from the store (the chain journal).
 */
import { utcDay } from "../../clock.js";
import { type AuditEntry, AuditLog } from "../../store/audit-log.js";
import { ChainJournal, SELF_FOLD_EVERY } from "../../store/chain-journal.js";
import type { Db } from "../../store/database.js";
import type { SandboxTally } from "./rules.js";
import { SANDBOX_TRIAL_ACTION, trialOf } from "./trial-event.js";

/** One day's sandbox results of a domain. */
export interface ScorecardRecord {
  domain: string;
  day: string;
  trials: number;
  successes: number;
  confidenceSum: number;
}

interface ScorecardRow {
  domain: string;
  day: string;
  trials: number;
  successes: number;
  confidence_sum: number;
}

interface TrialRow {
  seq: number;
  time_ms: number;
  subject: string;
  ok: number;
  metadata: string;
}

const toCard = (r: ScorecardRow): ScorecardRecord => ({
  domain: r.domain,
  day: r.day,
  trials: r.trials,
  successes: r.successes,
  confidenceSum: r.confidence_sum,
});

const zero = (day: string, domain: string): ScorecardRecord => ({
  domain,
  day,
  trials: 0,
  successes: 0,
  confidenceSum: 0,
});

/** A scorecard after one more trial (the order of additions is the stored one's). */
function withTrial(c: ScorecardRecord, success: boolean, confidence: number): ScorecardRecord {
  return {
    ...c,
    trials: c.trials + 1,
    successes: c.successes + (success ? 1 : 0),
    confidenceSum: c.confidenceSum + confidence,
  };
}

/** The booking of a stored trial event. */
function bookingOf(e: TrialRow) {
  return trialOf({
    lever: "heimdall",
    action: SANDBOX_TRIAL_ACTION,
    subject: e.subject,
    ok: e.ok === 1,
    timeMs: e.time_ms,
    metadataJson: e.metadata,
  });
}

const keyOf = (day: string, domain: string) => `${day}|${domain}`;

/** The sandbox scorecards of one store: in memory since the last fold, and the fold. */
export class ScorecardBook {
  private cards: Map<string, ScorecardRecord> | undefined;
  /**
   * How far the trail is folded, as last known here: meta.scorecard_folded_seq read at the
   * first trial, then where each fold reached; read again after a rollback.
   */
  private foldedHint: number | undefined;
  private readonly journal;
  private readonly audit;
  private readonly s;

  constructor(db: Db) {
    this.audit = new AuditLog(db);
    this.journal = new ChainJournal(db);
    const folded = "(SELECT value FROM meta WHERE key = 'scorecard_folded_seq')";
    const trial = `+lever = 'heimdall' AND action = '${SANDBOX_TRIAL_ACTION}'`;
    this.s = {
      row: db.prepare<[string, string], ScorecardRow>(
        "SELECT * FROM heimdall_scorecard WHERE day = ? AND domain = ?",
      ),
      rowsOf: db.prepare<[string], ScorecardRow>(
        "SELECT * FROM heimdall_scorecard WHERE day = ? ORDER BY domain",
      ),
      tally: db.prepare<
        [string, string, string],
        { trials: number | null; successes: number | null }
      >(
        `SELECT sum(trials) AS trials, sum(successes) AS successes FROM heimdall_scorecard
          WHERE domain = ? AND day >= ? AND day NOT IN (SELECT value FROM json_each(?))`,
      ),
      unfolded: db.prepare<[], TrialRow>(
        `SELECT seq, time_ms, subject, ok, metadata FROM audit_event
          WHERE seq > ${folded} AND ${trial} ORDER BY seq`,
      ),
      unfoldedOf: db.prepare<[string], TrialRow>(
        `SELECT seq, time_ms, subject, ok, metadata FROM audit_event
          WHERE lever = 'heimdall' AND subject = ? AND seq > ${folded}
          AND action = '${SANDBOX_TRIAL_ACTION}' ORDER BY seq`,
      ),
      range: db.prepare<[number, number], TrialRow>(
        `SELECT seq, time_ms, subject, ok, metadata FROM audit_event
          WHERE seq > ? AND seq <= ? AND ${trial} ORDER BY seq`,
      ),
      folded: db.prepare<[], number | undefined>(`SELECT ${folded}`).pluck(),
      head: db.prepare<[], number>("SELECT coalesce(max(seq), 0) FROM audit_event").pluck(),
      setFolded: db.prepare<[number]>(
        "UPDATE meta SET value = ? WHERE key = 'scorecard_folded_seq'",
      ),
      write: db.prepare(
        `INSERT INTO heimdall_scorecard (day, domain, trials, successes, confidence_sum)
         VALUES (@day, @domain, @trials, @successes, @confidenceSum)
         ON CONFLICT (domain, day) DO UPDATE SET trials = excluded.trials,
          successes = excluded.successes, confidence_sum = excluded.confidence_sum`,
      ),
    };
  }

  /** Every scorecard with trials after the fold, read from the store on first use. */
  private memory(): Map<string, ScorecardRecord> {
    this.journal.sync();
    if (this.cards) return this.cards;
    const cards = new Map<string, ScorecardRecord>();
    for (const e of this.s.unfolded.all()) {
      const b = bookingOf(e);
      if (!b) continue;
      const key = keyOf(b.day, b.domain);
      const card = cards.get(key) ?? this.stored(b.day, b.domain);
      cards.set(key, withTrial(card, b.success, b.confidence));
    }
    this.cards = cards;
    return cards;
  }

  private stored(day: string, domain: string): ScorecardRecord {
    const row = this.s.row.get(day, domain);
    return row ? toCard(row) : zero(day, domain);
  }

  /** Reads one scorecard again from the store (its row, then its trials after the fold). */
  private reload(key: string): void {
    const cards = this.cards;
    if (!cards) return;
    const [day = "", domain = ""] = key.split("|");
    let card = this.stored(day, domain);
    for (const e of this.s.unfoldedOf.all(domain)) {
      const b = bookingOf(e);
      if (b && b.day === day) card = withTrial(card, b.success, b.confidence);
    }
    // A scorecard whose every trial was rolled back is no scorecard.
    if (card.trials === 0) cards.delete(key);
    else cards.set(key, card);
  }

  /** Books one trial: its audit event (`entry`, the one row it writes), then its scorecard. */
  record(entry: AuditEntry, nowMs: number, success: boolean, confidence: number) {
    const cards = this.memory();
    const day = utcDay(nowMs);
    const key = keyOf(day, entry.subject);
    const card = cards.get(key) ?? this.stored(day, entry.subject);
    const link = this.audit.appendLinked(entry, nowMs);
    const next = withTrial(card, success, confidence);
    cards.set(key, next);
    this.journal.record(link, () => {
      // A fold inside the rolled-back call moved the hint but not the store.
      this.foldedHint = undefined;
      this.reload(key);
    });
    this.foldedHint ??= this.s.folded.get() ?? 0;
    // The fold books what memory already holds (the cards are whole), inside this transaction.
    if (link.seq - this.foldedHint >= SELF_FOLD_EVERY) this.fold(SELF_FOLD_EVERY * 2);
    return next;
  }

  /** One domain's scorecard for a day (zeros when no trial was recorded). */
  scorecard(day: string, domain: string): ScorecardRecord {
    return this.memory().get(keyOf(day, domain)) ?? this.stored(day, domain);
  }

  /** Every scorecard of a day, by domain. */
  scorecards(day: string): ScorecardRecord[] {
    const cards = this.memory();
    const byDomain = new Map(this.s.rowsOf.all(day).map((r) => [r.domain, toCard(r)]));
    for (const c of cards.values()) if (c.day === day) byDomain.set(c.domain, c);
    return [...byDomain.values()].sort((a, b) => (a.domain < b.domain ? -1 : 1));
  }

  /** Trials and successes of a domain from `fromDay` (inclusive) on. */
  tally(domain: string, fromDay: string): SandboxTally {
    let trials = 0;
    let successes = 0;
    const days: string[] = [];
    for (const c of this.memory().values()) {
      if (c.domain !== domain || c.day < fromDay) continue;
      days.push(c.day);
      trials += c.trials;
      successes += c.successes;
    }
    const row = this.s.tally.get(domain, fromDay, JSON.stringify(days));
    return { trials: trials + (row?.trials ?? 0), successes: successes + (row?.successes ?? 0) };
  }

  /**
   * Books the trials of at most `maxEvents` sequence numbers after the last fold into
   * heimdall_scorecard (inside the caller's transaction), in the order they were recorded, so
   * the rows equal the scorecards in memory; returns how many it advanced.
   */
  fold(maxEvents = 20_000): number {
    const from = this.s.folded.get() ?? 0;
    const to = Math.min(this.s.head.get() ?? 0, from + maxEvents);
    this.foldedHint = Math.max(this.foldedHint ?? 0, to);
    if (to <= from) return 0;
    const cards = new Map<string, ScorecardRecord>();
    for (const e of this.s.range.all(from, to)) {
      const b = bookingOf(e);
      if (!b) continue;
      const key = keyOf(b.day, b.domain);
      const card = cards.get(key) ?? this.stored(b.day, b.domain);
      cards.set(key, withTrial(card, b.success, b.confidence));
    }
    for (const c of cards.values()) this.s.write.run(c);
    this.s.setFolded.run(to);
    return to - from;
  }

  /** Changes not known to be committed yet (for tests). */
  get uncommitted(): number {
    return this.journal.pending;
  }
}
