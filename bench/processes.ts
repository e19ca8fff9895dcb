/** Child processes of the benchmark: the sidecar from dist/, the ceiling servers; their memory. */
import { type ChildProcess, spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { createInterface } from "node:readline";

/** A server process the benchmark started, with the port it bound. */
export interface ServerProcess {
  pid: number;
  port: number;
  /** The sidecar's HTTP port (/metrics); absent for the ceiling servers. */
  httpPort?: number;
  stop(): Promise<void>;
}

/** Memory of a process in bytes from /proc/PID/status: resident now and its high-water mark. */
export function memoryOf(pid: number): { rss: number; hwm: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (key: string) => {
    const m = new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(status);
    if (!m) throw new Error(`no ${key} in /proc/${pid}/status`);
    return Number(m[1]) * 1024;
  };
  return { rss: kb("VmRSS"), hwm: kb("VmHWM") };
}

/** CPU time (user + system) a process has used so far, in microseconds, from /proc/PID/stat. */
export function cpuTimeUs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // Fields after the command name (which may hold spaces) start after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ticks = Number(fields[11]) + Number(fields[12]);
  return (ticks / CLOCK_TICKS) * 1e6;
}

/**
 * Time on a CPU so far (ns, from /proc's schedstat) of `pid`'s main thread and of its other
 * threads (V8's GC helpers, libuv's pool, the WAL checkpointer).
 */
export function runNs(pid: number): { main: number; others: number } {
  let main = 0;
  let others = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const ns = Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, "utf8").split(" ")[0]);
      if (tid === String(pid)) main += ns;
      else others += ns;
    } catch {
      // the thread ended
    }
  }
  return { main, others };
}

/** USER_HZ: Linux reports process times in 1/100 s on every common platform. */
const CLOCK_TICKS = 100;

function stopper(child: ChildProcess): () => Promise<void> {
  return () =>
    new Promise((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) {
        resolve();
        return;
      }
      const kill = setTimeout(() => child.kill("SIGKILL"), 10_000);
      child.once("exit", () => {
        clearTimeout(kill);
        resolve();
      });
      child.kill("SIGTERM");
    });
}

/** Waits for the first stdout line for which `pick` returns a port; fails after 30 s. */
function awaitPort(child: ChildProcess, what: string, pick: (line: string) => number | undefined) {
  return new Promise<number>((resolve, reject) => {
    let stderr = "";
    child.stderr?.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    const timer = setTimeout(
      () => reject(new Error(`${what} did not start in 30 s: ${stderr}`)),
      30_000,
    );
    const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
    lines.on("line", (line) => {
      const port = pick(line);
      if (port !== undefined) {
        clearTimeout(timer);
        resolve(port);
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`${what} exited with ${code}: ${stderr}`));
    });
  });
}

/**
 * The Node flags govd's launcher (bin/govd, the bin npm installs) runs `command` with: central's
 * for `central`, a sidecar's for anything else. Benches and tests run govd as it ships.
 */
export function launcherNodeFlags(command = "serve", file = "bin/govd"): string[] {
  const name = command === "central" ? "CENTRAL_NODE_FLAGS" : "SIDECAR_NODE_FLAGS";
  const m = new RegExp(`^${name}="([^"]*)"$`, "m").exec(readFileSync(file, "utf8"));
  if (!m) throw new Error(`${file} sets no ${name}="..."`);
  return (m[1] ?? "").split(/\s+/).filter(Boolean);
}

/** Starts `node <launcher flags> dist/src/cli/govd.js serve` on a data dir, on free loopback ports. */
export async function startSidecar(options: {
  dataDir: string;
  token: string;
  nodeArgs?: string[];
  /** More `govd serve` flags (e.g. `--central`). */
  args?: string[];
}): Promise<ServerProcess> {
  const child = spawn(
    process.execPath,
    [
      ...launcherNodeFlags(),
      ...(options.nodeArgs ?? []),
      "dist/src/cli/govd.js",
      "serve",
      "--data-dir",
      options.dataDir,
      "--grpc-port",
      "0",
      "--http-port",
      "0",
      ...(options.args ?? []),
    ],
    {
      env: { ...process.env, GOVD_ADMIN_TOKEN: options.token, GOVD_LOG_LEVEL: "info" },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  let httpPort: number | undefined;
  const port = await awaitPort(child, "sidecar", (line) => {
    try {
      const entry = JSON.parse(line) as { msg?: string; grpc?: string; http?: string };
      // "govd sidecar serving" (standalone) or "..., following central".
      if (entry.msg?.startsWith("govd sidecar serving") && entry.grpc) {
        httpPort = Number(entry.http?.split(":").pop());
        return Number(entry.grpc.split(":").pop());
      }
    } catch {
      // not a log line
    }
    return undefined;
  });
  // Keep draining stdout so the sidecar never blocks on a full pipe.
  child.stdout?.resume();
  return { pid: child.pid as number, port, httpPort, stop: stopper(child) };
}

/** Starts the bare node:http2 ceiling server, or with `grpcJs` the grpc-js echo server. */
export async function startCeiling(grpcJs: boolean): Promise<ServerProcess> {
  const child = spawn(
    process.execPath,
    ["dist/bench/ceiling-server.js", ...(grpcJs ? ["--grpc-js"] : [])],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  const port = await awaitPort(child, "ceiling server", (line) => {
    try {
      return (JSON.parse(line) as { port?: number }).port;
    } catch {
      return undefined;
    }
  });
  return { pid: child.pid as number, port, stop: stopper(child) };
}

/** The sidecar's /metrics text. */
export async function scrapeMetrics(sidecar: ServerProcess): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${sidecar.httpPort}/metrics`);
  if (!res.ok) throw new Error(`/metrics answered ${res.status}`);
  return res.text();
}
