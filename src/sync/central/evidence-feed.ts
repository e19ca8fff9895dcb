/**
 * Fleet evidence on the Watch streams of one replica: every sidecar with a stream open here is
 * sent the other sidecars' sandbox trials (the fleet scorecard minus its own shipped rows) for
 * the longest lookback of central's Heimdall policies, at the start of its stream and whenever
 * that changes. The replica looks at most every `checkMs` with one cheap read (the fleet
 * scorecard's version, which moves in every ingest transaction that books a trial, on any
 * replica) and re-reads the rows only when it moved or the window moved (a new UTC day, a
 * policy's lookback changed).
 */
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { Logger } from "pino";
import type { HeimdallPolicy } from "../../../gen/governance/v1/heimdall_pb.js";
import { lookbackStartDay } from "../../levers/heimdall/rules.js";
import { DEFAULT_LOOKBACK_DAYS } from "../../levers/heimdall/service.js";
import { decode, Kind } from "./central-entities.js";
import type { CentralStore } from "./central-store.js";
import {
  type FleetScorecardRow,
  fleetFigures,
  fleetScorecardRows,
  fleetScorecardVersion,
  othersEvidence,
  type ScorecardFigures,
} from "./fleet-scorecard.js";
import type { WatchMessage } from "./watch-stream.js";

/** The window of evidence sent: the longest lookback of the policies (default 30 days). */
export function evidenceLookbackDays(policies: readonly Pick<HeimdallPolicy, "lookbackDays">[]) {
  let days = 0;
  for (const p of policies) days = Math.max(days, p.lookbackDays);
  return days > 0 ? days : DEFAULT_LOOKBACK_DAYS;
}

/** The FleetEvidence message of some figures. */
export function evidenceMessage(
  fromDay: string,
  figures: readonly ScorecardFigures[],
  nowMs: number,
): WatchMessage {
  return {
    message: {
      case: "fleetEvidence",
      value: {
        fromDay,
        otherSidecars: figures.map((f) => ({
          domain: f.domain,
          day: f.day,
          trials: f.trials,
          successes: f.successes,
          successRate: f.successes / f.trials,
          avgConfidence: f.confidenceSum / f.trials,
        })),
        asOf: timestampFromMs(nowMs),
      },
    },
  };
}

interface Subscriber {
  sidecarId: string;
  send: (m: WatchMessage) => void;
  /** The first read that started after it joined: its first message comes from that one. */
  since: number;
  /** What was sent last (from day and figures), to send only what changed. */
  sent?: string;
}

/** The evidence of one replica's Watch streams. */
export class EvidenceFeed {
  private readonly subscribers = new Set<Subscriber>();
  private rows: FleetScorecardRow[] | undefined;
  private fleet: ScorecardFigures[] = [];
  private own = new Map<string, FleetScorecardRow[]>();
  private version = "";
  private fromDay = "";
  private policyRevision = -1;
  private lookbackDays = DEFAULT_LOOKBACK_DAYS;
  private timer: NodeJS.Timeout | undefined;
  private refreshing: Promise<void> | undefined;
  private again = false;
  /** Reads started so far. */
  private reads = 0;
  private failing = false;

  constructor(
    private readonly store: CentralStore,
    private readonly checkMs: number,
    private readonly logger: Logger,
  ) {}

  /**
   * Sends `sidecarId` its evidence as read after it joined, then on every change, until the
   * returned function runs.
   */
  join(sidecarId: string, send: (m: WatchMessage) => void): () => void {
    const sub: Subscriber = { sidecarId, send, since: this.reads };
    this.subscribers.add(sub);
    this.check();
    if (!this.timer) {
      this.timer = setInterval(() => this.check(), this.checkMs);
      this.timer.unref();
    }
    return () => {
      this.subscribers.delete(sub);
      if (this.subscribers.size === 0 && this.timer) {
        clearInterval(this.timer);
        this.timer = undefined;
      }
    };
  }

  /** Looks whether the evidence changed (one read at a time, another after it when asked). */
  private check(): void {
    if (this.refreshing) {
      this.again = true;
      return;
    }
    const read = this.reads++;
    this.refreshing = this.refresh(read)
      .then(
        () => {
          if (this.failing) this.logger.info("fleet evidence read again");
          this.failing = false;
        },
        (err: unknown) => {
          if (!this.failing)
            this.logger.warn({ err }, "could not read the fleet evidence; retrying");
          this.failing = true;
        },
      )
      .finally(() => {
        this.refreshing = undefined;
        if (this.again) {
          this.again = false;
          this.check();
        }
      });
  }

  private async refresh(read: number): Promise<void> {
    const revision = this.store.announced;
    if (revision !== this.policyRevision) {
      const policies = (await this.store.entities(Kind.heimdall)).map((e) =>
        decode.heimdall(e.entity),
      );
      this.lookbackDays = evidenceLookbackDays(policies);
      this.policyRevision = revision;
    }
    const now = this.store.clock.now();
    const fromDay = lookbackStartDay(now, this.lookbackDays);
    // The version before the rows: a trial booked in between is read now or at the next look.
    const version = await fleetScorecardVersion(this.store.db);
    if (!this.rows || version !== this.version || fromDay !== this.fromDay) {
      const rows = await fleetScorecardRows(this.store.db, fromDay);
      this.rows = rows;
      this.version = version;
      this.fromDay = fromDay;
      this.fleet = fleetFigures(rows);
      this.own = new Map();
      for (const r of rows) {
        const list = this.own.get(r.sidecarId) ?? [];
        list.push(r);
        this.own.set(r.sidecarId, list);
      }
    }
    for (const sub of this.subscribers) {
      if (sub.sent !== undefined || read >= sub.since) this.deliver(sub);
    }
  }

  private deliver(sub: Subscriber): void {
    const figures = othersEvidence(this.fleet, this.own.get(sub.sidecarId) ?? []);
    const key = `${this.fromDay} ${figures.map((f) => `${f.day}/${f.domain}/${f.trials}/${f.successes}`).join(",")}`;
    if (key === sub.sent) return;
    sub.sent = key;
    sub.send(evidenceMessage(this.fromDay, figures, this.store.clock.now()));
  }
}
