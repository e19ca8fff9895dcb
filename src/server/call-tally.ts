/**
 * Per-call metrics kept as plain numbers while serving and turned into Prometheus samples only
 * when /metrics is scraped: calls by status code, decisions by outcome and deny reason, and the
 * call latency histogram. prom-client's own Counter and Histogram hash their label set into a
 * string on every update (three times per call here: 4% of a CheckGoLive's CPU, and garbage
 * for the collector); a call here costs a few array and map updates on objects made once.
 */
import { Code } from "@connectrpc/connect";
import type { Counter, Registry } from "prom-client";
import { DenyReason } from "../../gen/governance/v1/common_pb.js";

/** Histogram bucket upper bounds in seconds, 10 us to 100 ms. */
export const LATENCY_BUCKETS = [
  0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1,
];

/** What is counted of one RPC. */
interface RpcTally {
  labels: { lever: string; rpc: string };
  /** Calls per bucket (not cumulative); the last slot is above the largest bound. */
  buckets: Float64Array;
  sum: number;
  count: number;
  /** Calls by status code name ("OK" or the gRPC code's name). */
  codes: Map<string, number>;
  allowed: number;
  /** Denials by DenyReason number. */
  denied: Map<number, number>;
}

/** One sample as prom-client's registry prints it. */
interface Sample {
  labels: Record<string, string | number>;
  value: number;
  metricName?: string;
}

/** Counts of every call, published to a registry on scrape. */
export class CallTally {
  private readonly rpcs = new Map<string, Map<string, RpcTally>>();

  /** Publishes the tallies in `registry` as govd_rpc_calls_total, govd_decisions_total and govd_call_duration_seconds. */
  constructor(
    registry: Registry,
    private readonly leverOf: (service: string) => string,
  ) {
    const publish = (
      name: string,
      help: string,
      type: "counter" | "histogram",
      values: () => Sample[],
    ) => {
      // A collector of our own: prom-client prints whatever get() returns.
      const metric = {
        name,
        help,
        type,
        aggregator: "sum",
        get: async () => ({ name, help, type, aggregator: "sum", values: values() }),
        reset: () => {},
      };
      registry.registerMetric(metric as unknown as Counter);
    };
    publish(
      "govd_rpc_calls_total",
      "Calls by lever, RPC and status code (OK or the gRPC code name)",
      "counter",
      () =>
        this.all().flatMap((t) => [...t.codes].map(([code, value]) => sample(t, { code }, value))),
    );
    publish(
      "govd_decisions_total",
      "Decisions (responses with an allowed field) by lever, RPC, outcome and deny reason",
      "counter",
      () =>
        this.all().flatMap((t) => [
          ...(t.allowed > 0 ? [sample(t, { outcome: "allowed", reason: "NONE" }, t.allowed)] : []),
          ...[...t.denied].map(([reason, value]) =>
            sample(t, { outcome: "denied", reason: DenyReason[reason] ?? "OTHER" }, value),
          ),
        ]),
    );
    publish(
      "govd_call_duration_seconds",
      "Time from request decoded to response ready (token, validation, handler, store, and the wait for the shared commit)",
      "histogram",
      () => this.all().flatMap(histogramSamples),
    );
  }

  /** Counts one call; `response` is undefined when it failed with `code`. */
  observe(
    service: string,
    rpc: string,
    seconds: number,
    response: unknown,
    code: Code | undefined,
  ): void {
    const t = this.tally(service, rpc);
    t.count++;
    t.sum += seconds;
    let i = 0;
    while (i < LATENCY_BUCKETS.length && seconds > (LATENCY_BUCKETS[i] as number)) i++;
    t.buckets[i] = (t.buckets[i] as number) + 1;
    const codeName = code === undefined ? "OK" : (Code[code] ?? String(code));
    t.codes.set(codeName, (t.codes.get(codeName) ?? 0) + 1);
    const decision = response as { allowed?: unknown; reason?: unknown } | undefined;
    if (typeof decision?.allowed !== "boolean") return;
    if (decision.allowed) t.allowed++;
    else {
      const reason = typeof decision.reason === "number" ? decision.reason : 0;
      t.denied.set(reason, (t.denied.get(reason) ?? 0) + 1);
    }
  }

  private tally(service: string, rpc: string): RpcTally {
    let byRpc = this.rpcs.get(service);
    if (!byRpc) {
      byRpc = new Map();
      this.rpcs.set(service, byRpc);
    }
    let t = byRpc.get(rpc);
    if (!t) {
      t = {
        labels: { lever: this.leverOf(service), rpc },
        buckets: new Float64Array(LATENCY_BUCKETS.length + 1),
        sum: 0,
        count: 0,
        codes: new Map(),
        allowed: 0,
        denied: new Map(),
      };
      byRpc.set(rpc, t);
    }
    return t;
  }

  private all(): RpcTally[] {
    return [...this.rpcs.values()].flatMap((byRpc) => [...byRpc.values()]);
  }
}

function sample(t: RpcTally, labels: Record<string, string>, value: number): Sample {
  return { labels: { ...t.labels, ...labels }, value };
}

/** Cumulative buckets, +Inf, sum and count of one RPC, as Prometheus histograms are read. */
function histogramSamples(t: RpcTally): Sample[] {
  const out: Sample[] = [];
  let cumulative = 0;
  LATENCY_BUCKETS.forEach((le, i) => {
    cumulative += t.buckets[i] as number;
    out.push({
      labels: { ...t.labels, le },
      value: cumulative,
      metricName: "govd_call_duration_seconds_bucket",
    });
  });
  out.push({
    labels: { ...t.labels, le: "+Inf" },
    value: t.count,
    metricName: "govd_call_duration_seconds_bucket",
  });
  out.push({ labels: t.labels, value: t.sum, metricName: "govd_call_duration_seconds_sum" });
  out.push({ labels: t.labels, value: t.count, metricName: "govd_call_duration_seconds_count" });
  return out;
}
