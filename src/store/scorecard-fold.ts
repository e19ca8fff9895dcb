/**
 * The sandbox scorecard fold's down step. Since migration 12 a RecordSandboxTrial writes only
 * its SANDBOX_TRIAL audit event and the day's scorecards live in memory (ScorecardBook), which
 * books the trials after meta.scorecard_folded_seq into heimdall_scorecard off the decision path.
 */

/**
 * Books every sandbox trial after meta.scorecard_folded_seq into heimdall_scorecard: migration
 * 12's down step (a running sidecar folds them with ScorecardBook.fold, adding in the order
 * they were recorded, as the scorecards in memory do).
 */
export const SCORECARD_FOLD_DOWN_SQL = `
INSERT INTO heimdall_scorecard (day, domain, trials, successes, confidence_sum)
  SELECT strftime('%Y-%m-%d', time_ms / 1000, 'unixepoch'), subject, count(*), sum(ok),
    sum(coalesce(CASE WHEN json_valid(metadata)
      THEN CAST(json_extract(metadata, '$.confidence') AS REAL) END, 0.0))
  FROM audit_event
  WHERE seq > (SELECT value FROM meta WHERE key = 'scorecard_folded_seq')
    AND +lever = 'heimdall' AND action = 'SANDBOX_TRIAL'
  GROUP BY 1, 2
  ON CONFLICT (domain, day) DO UPDATE SET trials = trials + excluded.trials,
    successes = successes + excluded.successes,
    confidence_sum = confidence_sum + excluded.confidence_sum;`;
