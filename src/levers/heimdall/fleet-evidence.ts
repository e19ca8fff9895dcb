/**
 * The fleet's sandbox evidence as a connected sidecar holds it: the other sidecars' trials per
 * domain and UTC day, as central last sent them, kept in memory (a decision reads no store and
 * calls no one for it). A standalone sidecar, or a connected one before central's first word
 * after a restart, holds none: its gates count its own trials only, the conservative direction.
 */
import type { SandboxTally } from "./rules.js";

/** One (domain, day) of evidence: trials and successes. */
export interface EvidenceDay {
  domain: string;
  day: string;
  trials: number;
  successes: number;
}

/** Sums the trials and successes of `domain` on days from `fromDay` (inclusive) on. */
export function tallyFrom(
  days: Iterable<EvidenceDay>,
  domain: string,
  fromDay: string,
): SandboxTally {
  let trials = 0;
  let successes = 0;
  for (const d of days) {
    if (d.domain !== domain || d.day < fromDay) continue;
    trials += d.trials;
    successes += d.successes;
  }
  return { trials, successes };
}

/** Adds the other sidecars' tally to the sidecar's own, saying how many trials are theirs. */
export function addTallies(own: SandboxTally, others: SandboxTally): SandboxTally {
  return {
    trials: own.trials + others.trials,
    successes: own.successes + others.successes,
    fleetTrials: others.trials,
  };
}

/** What the Heimdall gates read besides the sidecar's own scorecard. */
export interface FleetEvidenceSource {
  /** The other sidecars' trials of `domain` from `fromDay` on (zeros when none are known). */
  tally(domain: string, fromDay: string): SandboxTally;
}

/** The other sidecars' evidence in memory, replaced whole by each message from central. */
export class FleetEvidence implements FleetEvidenceSource {
  private byDomain = new Map<string, EvidenceDay[]>();
  private receivedMs = 0;

  /** Replaces the evidence with central's newest (copies the figures it needs). */
  replace(days: Iterable<EvidenceDay>, nowMs: number): void {
    const next = new Map<string, EvidenceDay[]>();
    for (const d of days) {
      const list = next.get(d.domain) ?? [];
      list.push({ domain: d.domain, day: d.day, trials: d.trials, successes: d.successes });
      next.set(d.domain, list);
    }
    this.byDomain = next;
    this.receivedMs = nowMs;
  }

  tally(domain: string, fromDay: string): SandboxTally {
    return tallyFrom(this.byDomain.get(domain) ?? [], domain, fromDay);
  }

  /** When central's evidence last arrived (0: never since this process started). */
  get received(): number {
    return this.receivedMs;
  }
}
