/**
 * How the benchmark drives a server: the run lengths and sweep of a full or quick run, saturated
 * sweeps and one-at-a-time runs with the Node driver and with h2load.
 */
import { type DriveResult, drive, type Operation } from "./h2-driver.js";
import { runH2load } from "./h2load.js";
import { cpuTimeUs } from "./processes.js";
import { latencySummary } from "./stats.js";

/** Run lengths (seconds), the saturation sweep and the sizes of the other measurements. */
export interface BenchConfig {
  reps: number;
  latencyS: number;
  saturationS: number;
  warmupS: number;
  sweep: SweepPoint[];
  inProcessCalls: number;
  pgCalls: number;
  pgSaturatedMs: number;
  memory: { first: number; total: number };
}

/** One point of the saturation sweep: connections, and calls in flight on each. */
export interface SweepPoint {
  c: number;
  m: number;
}

/** A server driven by the Node driver: its URL, the operation, its PID (for its CPU time). */
export interface Driven {
  url: string;
  op: Operation;
  pid: number;
}

/** A full run's settings, or with `quick` those of a run under two minutes. */
export function benchConfig(quick: boolean): BenchConfig {
  return quick
    ? {
        reps: 1,
        latencyS: 1,
        saturationS: 1.5,
        warmupS: 0.3,
        sweep: [{ c: 4, m: 16 }],
        inProcessCalls: 5_000,
        pgCalls: 1_000,
        pgSaturatedMs: 1_500,
        memory: { first: 20_000, total: 200_000 },
      }
    : {
        reps: 3,
        latencyS: 3,
        saturationS: 3,
        warmupS: 1,
        sweep: [
          { c: 4, m: 16 },
          { c: 4, m: 32 },
          { c: 2, m: 16 },
        ],
        inProcessCalls: 20_000,
        pgCalls: 3_000,
        pgSaturatedMs: 3_000,
        memory: { first: 100_000, total: 1_000_000 },
      };
}

/** The ways to drive a server under `config`'s run lengths and sweep. */
export function benchRuns(config: BenchConfig) {
  function driveOptions(
    url: string,
    c: number,
    m: number,
    seconds: number,
    latency: boolean,
    pid?: number,
  ) {
    return {
      serverCpuUs: pid === undefined ? undefined : () => cpuTimeUs(pid),
      url,
      connections: c,
      inFlight: m,
      durationMs: seconds * 1000,
      warmupMs: config.warmupS * 1000,
      maxOperations: 5_000_000,
      recordLatency: latency,
    };
  }

  /** One at a time: c=1, m=1, latencies recorded (and the server's CPU per call, given its PID). */
  function oneAtATime(url: string, op: Operation, pid?: number): Promise<DriveResult> {
    return drive(driveOptions(url, 1, 1, config.latencyS, true, pid), op);
  }

  /** One saturated run of `op` at one point of the sweep. */
  function saturatedAt(url: string, op: Operation, pid: number, { c, m }: SweepPoint) {
    return drive(driveOptions(url, c, m, config.saturationS, false, pid), op);
  }

  /** The best saturated run of the sweep, by operations per second. */
  async function saturated(
    url: string,
    op: Operation,
    pid: number,
  ): Promise<{ best: DriveResult; at: string }> {
    const s = await sweepBeside(
      (point) => saturatedAt(url, op, pid, point),
      undefined,
      (r) => r.callsPerSec,
    );
    return { best: s.best, at: s.at };
  }

  /**
   * The saturated sweep of `op`, each of its runs right after the ceiling's run at the same
   * point with the same driver: the best of each, and the ratio of the two. The machine's speed
   * drifts by a fifth within a minute here (the ceiling of one full run measured 17,152, 21,673
   * and 20,498 calls/s in its three repetitions), so a ratio against a ceiling measured minutes
   * earlier moved by as much; beside it, both sides see the same moment.
   */
  async function saturatedBeside(target: Driven, ceiling: Driven) {
    const s = await sweepBeside(
      (point) => saturatedAt(target.url, target.op, target.pid, point),
      (point) => saturatedAt(ceiling.url, ceiling.op, ceiling.pid, point),
      (r) => r.callsPerSec,
    );
    return { best: s.best, at: s.at, ceiling: s.ceiling, ratio: s.best.callsPerSec / s.ceiling };
  }

  /** One h2load run at one point: one process per body, c/bodies clients each. */
  async function h2loadAt(
    url: string,
    bodies: string[],
    workDir: string,
    pid: number,
    { c, m }: SweepPoint,
  ) {
    const used = bodies.slice(0, Math.min(c, bodies.length));
    const cpuBefore = cpuTimeUs(pid);
    const r = await runH2load({
      url,
      bodies: used,
      clients: c / used.length,
      streams: m,
      durationS: config.saturationS,
      warmupS: config.warmupS,
      latency: false,
      workDir,
    });
    // Server CPU over warm-up and run, divided by the requests at the measured rate.
    const cpu =
      (cpuTimeUs(pid) - cpuBefore) / ((config.warmupS + config.saturationS) * r.reqPerSec);
    return { reqPerSec: r.reqPerSec, cpu };
  }

  /** h2load saturated sweep: the best rate, where, and the server's CPU per call at it. */
  async function h2loadSaturated(url: string, bodies: string[], workDir: string, pid: number) {
    const s = await sweepBeside(
      (point) => h2loadAt(url, bodies, workDir, pid, point),
      undefined,
      (r) => r.reqPerSec,
    );
    return { reqPerSec: s.best.reqPerSec, at: s.at, cpu: s.best.cpu };
  }

  /** `h2loadSaturated` with the ceiling run just before each of its runs (see `saturatedBeside`). */
  async function h2loadSaturatedBeside(
    target: { url: string; pid: number },
    ceiling: { url: string; pid: number },
    bodies: string[],
    workDir: string,
  ) {
    const s = await sweepBeside(
      (point) => h2loadAt(target.url, bodies, workDir, target.pid, point),
      (point) => h2loadAt(ceiling.url, bodies, workDir, ceiling.pid, point),
      (r) => r.reqPerSec,
    );
    const { reqPerSec, cpu } = s.best;
    return { reqPerSec, at: s.at, cpu, ceiling: s.ceiling, ratio: reqPerSec / s.ceiling };
  }

  /**
   * One at a time, right after the ceiling's one-at-a-time run with the same driver: the
   * target's run (with its server CPU per call), and the ceiling's p50 and CPU per call beside
   * it (see `saturatedBeside`).
   */
  async function oneAtATimeBeside(target: Driven, ceiling: Driven, ceilingPath: string) {
    const bare = await oneAtATime(ceiling.url, ceiling.op, ceiling.pid);
    const ceilingP50 = latencySummary(bare.latencyUs.get(ceilingPath) ?? []).p50;
    const run = await oneAtATime(target.url, target.op, target.pid);
    return { run, ceilingP50, ceilingCpu: bare.serverCpuUsPerCall };
  }

  /**
   * Runs `run` at every point of the sweep, `ceiling` (if any) just before it at the same point;
   * the best of each by `rate`, and where the target's best was.
   */
  async function sweepBeside<T>(
    run: (point: SweepPoint) => Promise<T>,
    ceiling: ((point: SweepPoint) => Promise<T>) | undefined,
    rate: (r: T) => number,
  ): Promise<{ best: T; at: string; ceiling: number }> {
    let best: T | undefined;
    let at = "";
    let top = 0;
    for (const point of config.sweep) {
      if (ceiling) top = Math.max(top, rate(await ceiling(point)));
      const r = await run(point);
      if (best === undefined || rate(r) > rate(best)) {
        best = r;
        at = `c=${point.c} m=${point.m}`;
      }
    }
    return { best: best as T, at, ceiling: ceiling ? top : Number.NaN };
  }

  /** h2load one at a time: the bodies in turn, each for a share of the time, response times merged. */
  async function h2loadOneAtATime(url: string, bodies: string[], workDir: string) {
    const latency: number[] = [];
    for (const body of bodies) {
      const r = await runH2load({
        url,
        bodies: [body],
        clients: 1,
        streams: 1,
        durationS: Math.max(1, Math.round(config.latencyS / bodies.length)),
        warmupS: config.warmupS,
        latency: true,
        workDir,
      });
      for (const us of r.latencyUs) latency.push(us);
    }
    return latencySummary(latency);
  }

  return {
    oneAtATime,
    oneAtATimeBeside,
    saturated,
    saturatedBeside,
    h2loadSaturated,
    h2loadSaturatedBeside,
    h2loadOneAtATime,
  };
}

/** The ways to drive a server of one bench configuration (see `benchRuns`). */
export type BenchRuns = ReturnType<typeof benchRuns>;
