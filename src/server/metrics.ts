/**
 * Prometheus metrics of one sidecar (prom-client, a Registry per sidecar, never the global one).
 * Per call: counters and a latency histogram kept as plain numbers (CallTally). On scrape:
 * ledger, tripwire, go-live and policy gauges, read through the levers' own read handlers.
 */
import { create, type DescMethodUnary, type Message } from "@bufbuild/protobuf";
import type { Code } from "@connectrpc/connect";
import { Counter, Gauge, Registry } from "prom-client";
import { TripwireStatus } from "../../gen/governance/v1/regression_pb.js";
import type { ServiceBinding } from "../levers/service-binding.js";
import type { OutboxStatus } from "../sync/follower/event-shipper.js";
import { CallTally } from "./call-tally.js";

const LEVER: Record<string, string> = {
  "governance.v1.GoLiveService": "golive",
  "governance.v1.RiskService": "risk",
  "governance.v1.HeimdallService": "heimdall",
  "governance.v1.RegressionService": "regression",
};

type Read = (service: string, method: string) => Record<string, unknown> | undefined;

function reader(bindings: readonly ServiceBinding[]): Read {
  return (service, name) => {
    const binding = bindings.find((b) => b.service.typeName === service);
    const method = binding?.service.methods.find((m) => m.name === name) as
      | DescMethodUnary
      | undefined;
    const handler = (binding?.handlers as Record<string, (r: Message) => object> | undefined)?.[
      method?.localName ?? ""
    ];
    if (!method || !handler) return undefined;
    return create(method.output, handler(create(method.input)) as never) as never;
  };
}

const bit = (b: unknown) => (b ? 1 : 0);

/** The metrics of one sidecar. */
export class SidecarMetrics {
  /** The registry /metrics serves. */
  readonly registry = new Registry();
  private readonly calls: CallTally;

  /**
   * Registers every metric; gauges read through `bindings` when scraped, and the store's
   * commit counts through `commits` (see GroupCommit).
   */
  constructor(
    bindings: readonly ServiceBinding[],
    commits?: () => { batches: number; calls: number },
  ) {
    this.calls = new CallTally(this.registry, (service) => LEVER[service] ?? "other");
    this.scrapeGauges(reader(bindings));
    if (commits) this.scrapeCommits(commits);
  }

  /** Commits of the group commit and the calls they carried: calls per commit under load. */
  private scrapeCommits(commits: () => { batches: number; calls: number }): void {
    const registers = [this.registry];
    new Counter({
      name: "govd_store_commits_total",
      help: "Store commits shared by calls that arrived together (group commit)",
      registers,
      collect() {
        this.reset();
        this.inc(commits().batches);
      },
    });
    new Counter({
      name: "govd_store_committed_calls_total",
      help: "Calls answered after a shared commit; divided by govd_store_commits_total: calls per commit",
      registers,
      collect() {
        this.reset();
        this.inc(commits().calls);
      },
    });
  }

  /**
   * A connected sidecar's outbox (events central has not acked, the oldest one's age, the
   * newest acked seq), read when scraped.
   */
  scrapeOutbox(outbox: () => OutboxStatus | undefined): void {
    const registers = [this.registry];
    const gauges: [string, string, (o: OutboxStatus) => number][] = [
      ["govd_outbox_events", "Audit events not yet held by central", (o) => o.events],
      [
        "govd_outbox_oldest_seconds",
        "Age of the oldest audit event not yet held by central (0 when none)",
        (o) => o.oldestMs / 1000,
      ],
      ["govd_shipped_seq", "The newest audit event central acked", (o) => o.shippedSeq],
    ];
    for (const [name, help, value] of gauges) {
      new Gauge({
        name,
        help,
        registers,
        collect() {
          const o = outbox();
          if (o) this.set(value(o));
        },
      });
    }
  }

  /**
   * A connected sidecar's fleet Heimdall evidence: when central's last FleetEvidence message
   * arrived (Unix seconds; 0 until the first one since the process started).
   */
  scrapeFleetEvidence(receivedMs: () => number): void {
    new Gauge({
      name: "govd_fleet_evidence_received_seconds",
      help: "When central last sent the other sidecars' sandbox evidence (Unix time; 0: not since this process started, so the Heimdall gates count this sidecar's own trials only)",
      registers: [this.registry],
      collect() {
        this.set(receivedMs() / 1000);
      },
    });
  }

  /** Records one call; `response` is undefined when it failed with `code`. */
  observe(
    service: string,
    rpc: string,
    seconds: number,
    response: Message | undefined,
    code: Code | undefined,
  ): void {
    this.calls.observe(service, rpc, seconds, response, code);
  }

  private scrapeGauges(read: Read): void {
    const registers = [this.registry];
    new Gauge({
      name: "govd_golive_enabled",
      help: "1 while go-live is enabled",
      registers,
      collect() {
        const s = read("governance.v1.GoLiveService", "GetState")?.state as Record<string, unknown>;
        this.set(bit(s?.goLiveEnabled));
      },
    });
    new Gauge({
      name: "govd_kill_switch_engaged",
      help: "1 while the kill switch is engaged",
      registers,
      collect() {
        const s = read("governance.v1.GoLiveService", "GetState")?.state as Record<string, unknown>;
        this.set(bit(s?.killSwitchEngaged));
      },
    });
    new Gauge({
      name: "govd_policy_revision",
      help: "The policy revision decisions report",
      registers,
      collect() {
        const r = read("governance.v1.RiskService", "ListPolicies");
        this.set(Number(r?.policyRevision ?? 0));
      },
    });
    type Entry = {
      engine: string;
      exposureUsed: string;
      openRisk: string;
      realizedLoss: string;
      actions: number;
      remaining?: { exposure: string; openRisk: string; loss: string; actions: number };
    };
    const ledger = () =>
      (read("governance.v1.RiskService", "GetLedgerToday")?.entries ?? []) as Entry[];
    new Gauge({
      name: "govd_risk_ledger_used",
      help: "Today's (UTC) use per engine and dimension: exposure, open_risk, loss (currency units), actions",
      labelNames: ["engine", "dimension"] as const,
      registers,
      collect() {
        this.reset();
        for (const e of ledger()) {
          this.labels(e.engine, "exposure").set(Number(e.exposureUsed));
          this.labels(e.engine, "open_risk").set(Number(e.openRisk));
          this.labels(e.engine, "loss").set(Number(e.realizedLoss));
          this.labels(e.engine, "actions").set(e.actions);
        }
      },
    });
    new Gauge({
      name: "govd_risk_ledger_remaining",
      help: "What remains today per engine and dimension before its cap",
      labelNames: ["engine", "dimension"] as const,
      registers,
      collect() {
        this.reset();
        for (const e of ledger()) {
          if (!e.remaining) continue;
          this.labels(e.engine, "exposure").set(Number(e.remaining.exposure));
          this.labels(e.engine, "open_risk").set(Number(e.remaining.openRisk));
          this.labels(e.engine, "loss").set(Number(e.remaining.loss));
          this.labels(e.engine, "actions").set(e.remaining.actions);
        }
      },
    });
    type Wire = { domain: string; metric: string; status: number; drop: number };
    const wires = () =>
      (read("governance.v1.RegressionService", "GetState")?.states ?? []) as Wire[];
    new Gauge({
      name: "govd_tripwire_tripped",
      help: "1 while the tripwire is tripped",
      labelNames: ["domain", "metric"] as const,
      registers,
      collect() {
        this.reset();
        for (const w of wires())
          this.labels(w.domain, w.metric).set(bit(w.status === TripwireStatus.TRIPPED));
      },
    });
    new Gauge({
      name: "govd_tripwire_status",
      help: "1 for the tripwire's current status (DISABLED, INSUFFICIENT_DATA, OK, TRIPPED, DRY_RUN_TRIPPED)",
      labelNames: ["domain", "metric", "status"] as const,
      registers,
      collect() {
        this.reset();
        for (const w of wires()) {
          this.labels(w.domain, w.metric, TripwireStatus[w.status] ?? "UNSPECIFIED").set(1);
        }
      },
    });
    new Gauge({
      name: "govd_tripwire_drop_ratio",
      help: "Relative drop of the current window against the baseline (0..1)",
      labelNames: ["domain", "metric"] as const,
      registers,
      collect() {
        this.reset();
        for (const w of wires()) this.labels(w.domain, w.metric).set(w.drop);
      },
    });
  }
}
