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
  sweep: { c: number; m: number }[];
  inProcessCalls: number;
  pgCalls: number;
  pgSaturatedMs: number;
  memory: { first: number; total: number };
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

  /** One at a time: c=1, m=1, latencies recorded. */
  function oneAtATime(url: string, op: Operation): Promise<DriveResult> {
    return drive(driveOptions(url, 1, 1, config.latencyS, true), op);
  }

  /** The best saturated run of the sweep, by operations per second. */
  async function saturated(
    url: string,
    op: Operation,
    pid: number,
  ): Promise<{ best: DriveResult; at: string }> {
    let best: DriveResult | undefined;
    let at = "";
    for (const { c, m } of config.sweep) {
      const r = await drive(driveOptions(url, c, m, config.saturationS, false, pid), op);
      if (!best || r.callsPerSec > best.callsPerSec) {
        best = r;
        at = `c=${c} m=${m}`;
      }
    }
    return { best: best as DriveResult, at };
  }

  /**
   * h2load saturated sweep: one process per body, c/bodies clients each. Server CPU per call is
   * the server's CPU time over warm-up and run divided by the requests at the measured rate.
   */
  async function h2loadSaturated(url: string, bodies: string[], workDir: string, pid: number) {
    let best = 0;
    let at = "";
    let cpu = Number.NaN;
    for (const { c, m } of config.sweep) {
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
      const cpuUs = cpuTimeUs(pid) - cpuBefore;
      if (r.reqPerSec > best) {
        best = r.reqPerSec;
        at = `c=${c} m=${m}`;
        cpu = cpuUs / ((config.warmupS + config.saturationS) * r.reqPerSec);
      }
    }
    return { reqPerSec: best, at, cpu };
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

  return { oneAtATime, saturated, h2loadSaturated, h2loadOneAtATime };
}
