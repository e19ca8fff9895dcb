/**
 * `npm run bench:tripwire`: a seeded simulation of both tripwire methods, with the same rule
 * functions the sidecar runs, over in-control streams, sudden drops and a slow drift.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  type CusumDesign,
  cusumSignals,
  cusumStep,
  designForMeasuredBaseline,
} from "../src/levers/regression/bernoulli-cusum.js";
import { relativeDropFromCounts } from "../src/levers/regression/rules.js";
import { DEFAULT_FALSE_ALARM_EVENTS } from "../src/levers/regression/service.js";

const WINDOW = 50;
const BASELINE = 200;
const MAX_DROP = 0.2;
const EVENTS = 5_000;
const CHANGE_AT = 1_000;
const MISS_AFTER = 3_000;

/** A success probability per event index. */
type Stream = (t: number) => number;

const scenarios: { name: string; stream: Stream; change: number | null }[] = [
  { name: "in-control p=0.90", stream: () => 0.9, change: null },
  { name: "drop to 0.70 at 1000", stream: (t) => (t < CHANGE_AT ? 0.9 : 0.7), change: CHANGE_AT },
  { name: "drop to 0.65 at 1000", stream: (t) => (t < CHANGE_AT ? 0.9 : 0.65), change: CHANGE_AT },
  {
    name: "drift 0.90->0.70 over 1000..3000",
    stream: (t) => (t < CHANGE_AT ? 0.9 : t >= 3_000 ? 0.7 : 0.9 - (0.2 * (t - CHANGE_AT)) / 2_000),
    change: CHANGE_AT,
  },
];

/** mulberry32: a small seeded generator, so every run of the bench sees the same streams. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/** The first event index at which the seed rule trips, or null. */
function relativeDropTrip(outcomes: Uint8Array): number | null {
  const policy = {
    windowEvents: WINDOW,
    baselineEvents: BASELINE,
    minEventsToEnforce: 0,
    maxDropFraction: MAX_DROP,
    enabled: true,
  };
  let current = 0;
  let baseline = 0;
  for (let t = 0; t < outcomes.length; t++) {
    current += outcomes[t] as number;
    if (t >= WINDOW) {
      const moved = outcomes[t - WINDOW] as number;
      current -= moved;
      baseline += moved;
    }
    if (t >= WINDOW + BASELINE) baseline -= outcomes[t - WINDOW - BASELINE] as number;
    const n = t + 1;
    const counts = {
      currentSuccesses: current,
      currentEvents: Math.min(n, WINDOW),
      baselineSuccesses: baseline,
      baselineEvents: Math.max(0, Math.min(n - WINDOW, BASELINE)),
    };
    if (relativeDropFromCounts(policy, counts, n).status === "TRIP") return t;
  }
  return null;
}

const designs = new Map<string, CusumDesign>();

/**
 * The first event index at which a SEQUENTIAL wire armed at event 0 trips, or null: its baseline
 * is measured over the first BASELINE events, as the sidecar does (designForMeasuredBaseline).
 */
function sequentialTrip(outcomes: Uint8Array, falseAlarmEvents: number): number | null {
  let successes = 0;
  for (let t = 0; t < BASELINE; t++) successes += outcomes[t] as number;
  const key = `${falseAlarmEvents}:${successes}`;
  let design = designs.get(key);
  if (!design) {
    design = designForMeasuredBaseline(successes, BASELINE, MAX_DROP, falseAlarmEvents);
    designs.set(key, design);
  }
  let s = 0;
  for (let t = BASELINE; t < outcomes.length; t++) {
    s = cusumStep(design, s, outcomes[t] === 1);
    if (cusumSignals(design, s)) return t;
  }
  return null;
}

function quantile(sorted: number[], q: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number;
}

/** One cell of the table: a method on a scenario. */
export interface Cell {
  method: string;
  scenario: string;
  runs: number;
  falseTripRate: number;
  detected: number;
  medianDelay: number | null;
  p90Delay: number | null;
  missRate: number | null;
}

const fmt = (n: number) => n.toLocaleString("en");

function simulate(runs: number, falseAlarmFigures: readonly number[]): Cell[] {
  const cells: Cell[] = [];
  for (const [si, sc] of scenarios.entries()) {
    const trips: Record<string, (number | null)[]> = { RELATIVE_DROP: [] };
    for (const f of falseAlarmFigures) trips[`SEQUENTIAL (${fmt(f)})`] = [];
    for (let run = 0; run < runs; run++) {
      const next = random(1_000_003 * (si + 1) + run);
      const outcomes = new Uint8Array(EVENTS);
      for (let t = 0; t < EVENTS; t++) outcomes[t] = next() < sc.stream(t) ? 1 : 0;
      trips.RELATIVE_DROP?.push(relativeDropTrip(outcomes));
      for (const f of falseAlarmFigures)
        trips[`SEQUENTIAL (${fmt(f)})`]?.push(sequentialTrip(outcomes, f));
    }
    for (const [method, at] of Object.entries(trips)) {
      const change = sc.change;
      const falseTrips = at.filter((t) => t !== null && (change === null || t < change)).length;
      const delays =
        change === null
          ? []
          : at.filter((t): t is number => t !== null && t >= change).map((t) => t - change);
      const inTime = delays.filter((d) => d < MISS_AFTER).sort((a, b) => a - b);
      const eligible = runs - falseTrips;
      cells.push({
        method,
        scenario: sc.name,
        runs,
        falseTripRate: falseTrips / runs,
        detected: inTime.length,
        medianDelay: change === null ? null : quantile(inTime, 0.5),
        p90Delay: change === null ? null : quantile(inTime, 0.9),
        missRate: change === null || eligible === 0 ? null : (eligible - inTime.length) / eligible,
      });
    }
  }
  return cells;
}

const pct = (x: number | null) => (x === null ? "-" : `${(100 * x).toFixed(1)}%`);
const num = (x: number | null) => (x === null ? "-" : String(x));

function main(): void {
  const runs = Number(process.env.TRIPWIRE_RUNS ?? 2000);
  if (!(runs >= 400)) throw new Error("TRIPWIRE_RUNS must be at least 400");
  // The figure the bench's operator sets, and the policy default beside it.
  const falseAlarmEvents = Number(process.env.TRIPWIRE_FALSE_ALARM_EVENTS ?? 10_000);
  const started = Date.now();
  const cells = simulate(runs, [falseAlarmEvents, DEFAULT_FALSE_ALARM_EVENTS]);
  const seq = (s: string) =>
    cells.find(
      (c) => c.method === `SEQUENTIAL (${fmt(falseAlarmEvents)})` && c.scenario.startsWith(s),
    ) as Cell;
  const targets = [
    [
      "SEQUENTIAL false trips <= 1% per 5,000 in-control events",
      seq("in-control").falseTripRate <= 0.01,
    ],
    [
      "SEQUENTIAL median delay <= 60 events for the drop to 0.65",
      (seq("drop to 0.65").medianDelay ?? Infinity) <= 60,
    ],
    ["SEQUENTIAL misses <= 2% for the drop to 0.70", (seq("drop to 0.70").missRate ?? 1) <= 0.02],
    ["SEQUENTIAL misses <= 2% for the drop to 0.65", (seq("drop to 0.65").missRate ?? 1) <= 0.02],
    ["SEQUENTIAL misses <= 2% for the slow drift", (seq("drift").missRate ?? 1) <= 0.02],
  ] as const;
  const header = `| method | scenario | runs | false trips | median delay | p90 delay | misses (3,000 events) |\n|---|---|---|---|---|---|---|`;
  const rows = cells.map(
    (c) =>
      `| ${c.method} | ${c.scenario} | ${c.runs} | ${pct(c.falseTripRate)} | ${num(c.medianDelay)} | ${num(c.p90Delay)} | ${pct(c.missRate)} |`,
  );
  const lines = targets.map(([name, met]) => `- ${met ? "met" : "NOT MET"}: ${name}`);
  const setup =
    `window ${WINDOW}, baseline ${BASELINE}, max drop ${MAX_DROP}; ${EVENTS} events per run, change at event ${CHANGE_AT}; ` +
    `SEQUENTIAL (N) is armed at event 0, measures its baseline over the first ${BASELINE} events and expects N ` +
    `in-control events between false alarms at its frozen (guarded) baseline; targets are read on N = ${fmt(falseAlarmEvents)}, ` +
    `the policy default N = ${fmt(DEFAULT_FALSE_ALARM_EVENTS)} is shown beside it. Seeded (mulberry32), ${runs} runs per cell.`;
  const md = `${header}\n${rows.join("\n")}\n\n${setup}\n\n${lines.join("\n")}\n`;
  console.log(md);
  console.log(`(${((Date.now() - started) / 1000).toFixed(1)} s)`);
  const dir = join(process.cwd(), "bench", "results");
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "tripwire.md"), md);
  writeFileSync(
    join(dir, "tripwire.json"),
    `${JSON.stringify({ setup: { window: WINDOW, baseline: BASELINE, maxDrop: MAX_DROP, events: EVENTS, changeAt: CHANGE_AT, falseAlarmEvents, defaultFalseAlarmEvents: DEFAULT_FALSE_ALARM_EVENTS, runs }, cells, targets: targets.map(([name, met]) => ({ name, met })) }, null, 2)}\n`,
  );
}

main();
