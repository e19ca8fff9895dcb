/**
 * What a benchmark run reports: the issue's targets judged on the medians, and the markdown
 * table of bench/results/latest.md.
 */
import { ROWS } from "./figure-rows.js";
import type { Spread } from "./stats.js";

/** A figure over the repetitions, with how it is shown. */
export type FigureSpread = Spread & { unit: string; tool: string; label: string; at?: string };

/** RSS of a fresh sidecar before, after `first` and after `total` CheckGoLive decisions. */
export interface MemoryRun {
  decisions: { first: number; total: number };
  startRssMb: number;
  afterFirstMb: number;
  afterTotalMb: number;
  /** RSS after `total` over RSS after `first`, minus one. */
  growth: number;
  peakMb: number;
}

/** One target of the issue, judged on a median. */
export interface Target {
  name: string;
  value: number;
  met: boolean;
}

/** The issue's targets, judged on the medians of `figures`. */
export function issueTargets(
  figures: Record<string, FigureSpread>,
  peakRss: number,
  memory: MemoryRun,
): Target[] {
  const med = (key: string) => figures[key]?.median ?? Number.NaN;
  // NaN (a figure not measured) is never met.
  const atLeast = (name: string, value: number, bound: number): Target => ({
    name,
    value,
    met: value >= bound,
  });
  const atMost = (name: string, value: number, bound: number): Target => ({
    name,
    value,
    met: value <= bound,
  });
  const floor = `its ${med("floor.pages").toFixed(1)} WAL pages alone take SQLite ${med("floor.commit.p50").toFixed(0)} us to commit`;
  const decisions = (n: number) => n.toLocaleString("en-US");
  return [
    // Each ratio against the ceiling measured just before the scenario, median of repetitions.
    atLeast("CheckGoLive saturated / ceiling >= 0.50 (h2load)", med("cgl.h2load.ratio"), 0.5),
    atLeast("Reserve+Settle saturated / ceiling >= 0.45 (node driver)", med("rs.node.ratio"), 0.45),
    atLeast("RecordKpi saturated / ceiling >= 0.45 (node driver)", med("kpi.node.ratio"), 0.45),
    atMost("CheckGoLive one at a time p50 <= 250 us (h2load)", med("cgl.h2load.p50"), 250),
    atMost("CheckGoLive one at a time p99 <= 1000 us (h2load)", med("cgl.h2load.p99"), 1000),
    atMost(
      "Reserve one at a time p50 <= 1.6 x the bare ceiling's p50 (node driver, run just before it)",
      med("rs.node.reserve.ratio"),
      1.6,
    ),
    atMost("Reserve one at a time p99 <= 1000 us (node driver)", med("rs.node.reserve.p99"), 1000),
    atMost(
      `in-process Reserve p50 <= 40 us (via CallPipeline; ${floor})`,
      med("inproc.pipeline.p50"),
      40,
    ),
    atMost("WAL pages one in-process Reserve commits <= 2", med("floor.pages"), 2),
    atMost(
      "sidecar Reserve p50 <= 1/2 PostgreSQL p50 (synchronous_commit=off, like-for-like durability)",
      med("rs.node.reserve.p50") / med("pg.off.p50"),
      0.5,
    ),
    atMost(
      "sidecar Reserve p50 <= 1/2 PostgreSQL p50 (synchronous_commit=on, PostgreSQL's default)",
      med("rs.node.reserve.p50") / med("pg.on.p50"),
      0.5,
    ),
    atMost("peak RSS <= 120 MB", peakRss, 120),
    {
      name: `RSS after ${decisions(memory.decisions.total)} decisions within 10% of after ${decisions(memory.decisions.first)}`,
      value: memory.growth,
      met: Math.abs(memory.growth) <= 0.1,
    },
  ];
}

function fmt(x: number, unit: string): string {
  if (Number.isNaN(x)) return "-";
  if (unit === "ratio") return x.toFixed(2);
  if (unit === "pages") return x.toFixed(2);
  if (unit === "MB") return x.toFixed(1);
  return Math.round(x).toLocaleString("en-US");
}

/** The environment line's facts. */
interface Environment {
  date: string;
  quick: boolean;
  commit: string;
  cpu: string;
  node: string;
  h2load: string;
  postgresql: string;
  loadAverage: { before: number; after: number };
}

/** The figure table, the target lines and the whole markdown report of a run. */
export function renderReport(run: {
  figures: Record<string, FigureSpread>;
  memory: MemoryRun;
  targets: Target[];
  environment: Environment;
  repetitions: number;
}): { table: string; targetLines: string[]; md: string } {
  const { figures, memory, targets, environment } = run;
  const header = `| figure | tool | median | min | max | unit |\n|---|---|---:|---:|---:|---|`;
  const lines = ROWS.map((row) => {
    const s = figures[row.key] as Spread & { at?: string };
    const label = s.at ? `${row.label} (best at ${s.at})` : row.label;
    return `| ${label} | ${row.tool} | ${fmt(s.median, row.unit)} | ${fmt(s.min, row.unit)} | ${fmt(s.max, row.unit)} | ${row.unit} |`;
  });
  const memLines = [
    `| sidecar RSS at start of the memory run | /proc | ${fmt(memory.startRssMb, "MB")} | | | MB |`,
    `| sidecar RSS after ${memory.decisions.first.toLocaleString("en-US")} CheckGoLive decisions | /proc, h2load | ${fmt(memory.afterFirstMb, "MB")} | | | MB |`,
    `| sidecar RSS after ${memory.decisions.total.toLocaleString("en-US")} CheckGoLive decisions | /proc, h2load | ${fmt(memory.afterTotalMb, "MB")} | | | MB |`,
    `| sidecar peak RSS (VmHWM), memory run | /proc | ${fmt(memory.peakMb, "MB")} | | | MB |`,
  ];
  const targetLines = targets.map(
    (t) =>
      `- ${t.met ? "met" : "NOT met"}: ${t.name} (measured ${Number.isFinite(t.value) ? (Math.abs(t.value) < 10 ? t.value.toFixed(3) : Math.round(t.value)) : "-"})`,
  );
  const table = [header, ...lines, ...memLines].join("\n");
  const md = [
    `# govd benchmark${environment.quick ? " (quick)" : ""}`,
    "",
    `${environment.date}, commit ${environment.commit}, ${environment.cpu}, Node ${environment.node}, ${environment.h2load}, ${environment.postgresql}.`,
    `Median of ${run.repetitions} repetition(s), min and max beside it. Latencies in microseconds. 1-minute load average ${environment.loadAverage.before.toFixed(1)} before, ${environment.loadAverage.after.toFixed(1)} after (${environment.cpu.split(" x ")[0]} cores).`,
    "",
    table,
    "",
    "## Targets (medians)",
    "",
    ...targetLines,
    "",
  ].join("\n");
  return { table, targetLines, md };
}
