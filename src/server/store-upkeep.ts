/**
 * A serving sidecar's upkeep of its store between calls: the sweep that releases expired
 * reservations and clears answers older than the key retention, and the fold every second that
 * moves the decisions since the last fold into their tables (memory keeps only those).
 */
import type { Logger } from "pino";
import type { Clock } from "../clock.js";
import type { LeverContext } from "../levers/context.js";
import { RISK_FOLD_BATCH, releaseExpired, SWEEP_BATCH } from "../levers/risk/reservations.js";
import type { DiskSpace } from "../store/disk-space.js";
import type { GroupCommit } from "../store/group-commit.js";
import type { IdempotencyKeys } from "../store/idempotency-keys.js";
import type { ProblemLog } from "./problem-log.js";

/** What the upkeep works on and reports to. */
export interface UpkeepDeps {
  context: LeverContext;
  keys: IdempotencyKeys;
  groupCommit: GroupCommit;
  clock: Clock;
  /** While it says the disk is full, the upkeep writes nothing. */
  space: DiskSpace;
  problems: ProblemLog;
  logger: Logger;
  /** How long a correlation_id's answer is kept. */
  retentionMs: number;
}

/** The TTL sweep and the fold of one sidecar's store, on their timers. */
export class StoreUpkeep {
  private sweeping: Promise<number> | undefined;
  private closing = false;
  /** True while the risk tables are more than one fold batch behind the trail. */
  private foldBehind = false;
  /** True while answers older than the key retention wait on events to be cleared. */
  private answersBehind = false;
  /** Releases since the sweep last folded (SWEEP_BATCH.foldEvery: a fold step of their own). */
  private releasedSinceFold = 0;
  private sweepTimer: NodeJS.Timeout | undefined;
  private foldTimer: NodeJS.Timeout | undefined;

  constructor(private readonly deps: UpkeepDeps) {}

  /** Sweeps every `sweepIntervalMs` and folds every second, from now on; sweeps at once. */
  start(sweepIntervalMs: number): void {
    this.sweepTimer = setInterval(this.sweepLogged, sweepIntervalMs);
    this.sweepTimer.unref();
    this.foldTimer = setInterval(this.foldStep, 1_000);
    this.foldTimer.unref();
    // Reservations that expired while the sidecar was down go now, in batches between calls.
    setImmediate(this.sweepLogged);
  }

  /** Stops the timers now; resolves once a sweep under way has ended (after its batch). */
  async stop(): Promise<void> {
    this.closing = true;
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    if (this.foldTimer) clearInterval(this.foldTimer);
    await this.sweeping?.catch(() => undefined);
  }

  /**
   * A sweep releases one SWEEP_BATCH (a few hundred reservations or 2 ms) per transaction,
   * through group commit (an open batch of calls commits first), and yields to the event loop
   * between transactions: a backlog of any size holds the deciding thread one batch at a time.
   * It writes nothing while the store's disk is full. Resolves with how many it released.
   */
  sweep(): Promise<number> {
    if (this.sweeping) return this.sweeping;
    let released = 0;
    let done = false;
    const finish = () => {
      done = true;
      // A sweep asked for from now on starts afresh (and prunes again).
      this.sweeping = undefined;
    };
    const run = new Promise<number>((resolve, reject) => {
      const step = (first: boolean) => {
        try {
          const stepped = this.closing || this.deps.space.full ? undefined : this.sweepStep(first);
          released += stepped?.released ?? 0;
          if (stepped?.more) return void setImmediate(() => step(false));
          finish();
          resolve(released);
        } catch (err) {
          finish();
          reject(err);
        }
      };
      step(true);
    });
    // The first batch ran synchronously above; a sweep already done there is not kept.
    if (!done) this.sweeping = run;
    return run;
  }

  /** Folds what is left of the trail into the tables, on a clean stop (a start replays none). */
  foldAll(): void {
    try {
      if (!this.deps.space.full) {
        this.deps.groupCommit.runNow(() => foldTrail(this.deps, Number.POSITIVE_INFINITY));
      }
    } catch (err) {
      this.deps.problems.report(
        "fold",
        err,
        "folding the risk decisions and KPI outcomes into the store failed",
      );
    }
  }

  /** One step of a sweep, in one transaction: what it released, and whether to go on. */
  private sweepStep(first: boolean): { released: number; more: boolean } {
    const { groupCommit, keys, clock, retentionMs } = this.deps;
    return groupCommit.runNow(() => {
      // Keys older than the retention: the table's, then the answers on events, a batch a step.
      if (first) keys.prune(clock.now(), retentionMs);
      if (first || this.answersBehind) {
        this.answersBehind = keys.clearAnswers(clock.now(), retentionMs);
      }
      // Risk decisions and KPI outcomes since the last fold go into their tables (one row per
      // decision is all a Reserve or RecordKpi writes; see RiskBook, KpiSeries), a batch a step
      // until caught up; then a long sweep's releases, SWEEP_BATCH.foldEvery at a time in a step
      // of their own. (Folded every step, a fold cost as much as the step's releases: 300,000
      // took 86 s. Left to the timer, a second's worth folded at once held calls for 60 ms.)
      if (first || this.foldBehind || this.releasedSinceFold >= SWEEP_BATCH.foldEvery) {
        this.releasedSinceFold = 0;
        this.foldBehind = foldTrail(this.deps, RISK_FOLD_BATCH) >= RISK_FOLD_BATCH;
        if (!first) return { released: 0, more: true };
      }
      const released = releaseExpired(this.deps.context, SWEEP_BATCH.limit, SWEEP_BATCH.budgetMs);
      this.releasedSinceFold += released;
      return { released, more: released > 0 || this.foldBehind || this.answersBehind };
    });
  }

  private readonly sweepLogged = (): void => {
    this.sweep().then(
      (released) => {
        this.deps.problems.resolved("sweep");
        if (released > 0) this.deps.logger.info({ released }, "released expired reservations");
      },
      (err: unknown) => {
        this.deps.space.noteError(err);
        this.deps.problems.report("sweep", err, "sweep of expired reservations failed");
      },
    );
  };

  // Every second, the risk decisions and KPI outcomes since the last fold go into their tables,
  // a batch per turn of the event loop until they have caught up: memory keeps only those.
  private readonly foldStep = (): void => {
    if (this.closing || this.deps.space.full) return;
    try {
      const n = this.deps.groupCommit.runNow(() => foldTrail(this.deps, RISK_FOLD_BATCH));
      this.deps.problems.resolved("fold");
      if (n >= RISK_FOLD_BATCH) setImmediate(this.foldStep);
    } catch (err) {
      this.deps.space.noteError(err);
      this.deps.problems.report(
        "fold",
        err,
        "folding the risk decisions and KPI outcomes into the store failed",
      );
    }
  };
}

/**
 * Folds a batch of the trail into the risk, KPI and scorecard tables and the index of answer
 * keys; returns the largest advance.
 */
function foldTrail(deps: Pick<UpkeepDeps, "context" | "keys">, batch: number): number {
  const { context, keys } = deps;
  return Math.max(
    context.risk.fold(batch),
    context.tripwires.fold(batch),
    context.evidence.fold(batch),
    keys.fold(batch),
  );
}
