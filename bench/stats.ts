/** Pure helpers of the benchmark: gRPC framing, percentiles, medians of repetitions. */

/** A gRPC length-prefixed message: flag byte 0 (not compressed), 4-byte big-endian length. */
export function grpcFrame(message: Uint8Array): Buffer {
  const frame = Buffer.alloc(5 + message.length);
  frame.writeUInt8(0, 0);
  frame.writeUInt32BE(message.length, 1);
  frame.set(message, 5);
  return frame;
}

/** The messages of a complete gRPC body; throws on a compressed or truncated frame. */
export function grpcMessages(body: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let at = 0;
  while (at < body.length) {
    if (body.length - at < 5) throw new Error("truncated gRPC frame header");
    if (body[at] !== 0) throw new Error("compressed gRPC frames are not expected here");
    const length = body.readUInt32BE(at + 1);
    if (body.length - at - 5 < length) throw new Error("truncated gRPC frame");
    out.push(body.subarray(at + 5, at + 5 + length));
    at += 5 + length;
  }
  return out;
}

/** The p-th percentile (0..100) of sorted values, nearest-rank; NaN when empty. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))] as number;
}

/** p50, p99 and the count of a set of latencies (any unit), sorting a copy. */
export function latencySummary(values: ArrayLike<number>): { p50: number; p99: number; n: number } {
  const sorted = Float64Array.from(values as ArrayLike<number>).sort();
  return { p50: percentile(sorted, 50), p99: percentile(sorted, 99), n: sorted.length };
}

/** Median, min and max of repeated measurements (the median of an even count is the mean of the middle two). */
export interface Spread {
  median: number;
  min: number;
  max: number;
}

/** The spread of repetitions, ignoring NaN; NaN everywhere when nothing was measured. */
export function spread(values: readonly number[]): Spread {
  const v = values.filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
  if (v.length === 0) return { median: Number.NaN, min: Number.NaN, max: Number.NaN };
  const mid = Math.floor(v.length / 2);
  const median =
    v.length % 2 === 1 ? (v[mid] as number) : ((v[mid - 1] as number) + (v[mid] as number)) / 2;
  return { median, min: v[0] as number, max: v[v.length - 1] as number };
}

/** Parses the summary of an h2load run: requests per second and the request counts. */
export function parseH2loadOutput(text: string): {
  reqPerSec: number;
  total: number;
  succeeded: number;
  failed: number;
  errored: number;
} {
  const rate = /finished in [\d.]+m?s, ([\d.]+) req\/s/.exec(text);
  const counts =
    /requests: (\d+) total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed, (\d+) errored/.exec(
      text,
    );
  if (!rate || !counts) throw new Error(`cannot read h2load output:\n${text}`);
  return {
    reqPerSec: Number(rate[1]),
    total: Number(counts[1]),
    succeeded: Number(counts[2]),
    failed: Number(counts[3]),
    errored: Number(counts[4]),
  };
}

/** Response times in microseconds from an h2load --log-file (start, status, microseconds). */
export function parseH2loadLog(text: string): number[] {
  const out: number[] = [];
  for (const line of text.split("\n")) {
    const cols = line.split("\t");
    if (cols.length < 3) continue;
    if (cols[1] !== "200") continue;
    out.push(Number(cols[2]));
  }
  return out;
}

/** The value of the sample `name{labels}` (labels in any order) in Prometheus text, or undefined. */
export function metricSample(
  text: string,
  name: string,
  labels: Record<string, string> = {},
): number | undefined {
  for (const line of text.split("\n")) {
    const m = /^([a-z_]+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries(
      [...(m[2] ?? "").matchAll(/([a-z_]+)="([^"]*)"/g)].map((x) => [x[1], x[2]]),
    );
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(m[3]);
  }
  return undefined;
}

/** Mean time of one RPC's calls between two scrapes, in microseconds, by the sidecar's histogram. */
export function meanCallUs(before: string, after: string, lever: string, rpc: string): number {
  const delta = (name: string) =>
    (metricSample(after, name, { lever, rpc }) ?? 0) -
    (metricSample(before, name, { lever, rpc }) ?? 0);
  return (
    (delta("govd_call_duration_seconds_sum") / delta("govd_call_duration_seconds_count")) * 1e6
  );
}

/** Calls answered per shared store commit between two scrapes. */
export function callsPerCommit(before: string, after: string): number {
  const delta = (name: string) =>
    (metricSample(after, name) ?? 0) - (metricSample(before, name) ?? 0);
  return delta("govd_store_committed_calls_total") / delta("govd_store_commits_total");
}
