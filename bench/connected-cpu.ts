/**
 * What being connected to central costs a sidecar in CPU, at rest and at a steady load:
 * a `govd central` and, from dist/, a standalone sidecar and one following central and
 * shipping (both deciding for BENCH under the same caps). Over each window it reads every
 * process's CPU time (/proc/PID/stat, user and system apart): first at rest (no calls), then
 * with Reserve+Settle pairs at `--rate` decisions a second to every sidecar at once, so all
 * see the same machine. `--base DIR` adds the same pair from another build (a worktree with
 * its own dist/, e.g. the commit before a change): an A/B in the same minutes.
 * `--profile DIR` writes each sidecar's CPU profile (dist/bench/profile-summary.js reads it).
 *
 *   node dist/bench/connected-cpu.js [--rate 300] [--seconds 20] [--reps 3] [--base DIR] [--profile DIR]
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { setPriority, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { log, sleep, startCentralProcess, TOKEN } from "./fleet.js";
import { singleCaller } from "./h2-driver.js";
import { launcherNodeFlags } from "./processes.js";
import { reserveSettle, setUpSidecar } from "./scenarios.js";

const arg = (name: string, fallback: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? (process.argv[i + 1] ?? fallback) : fallback;
};

/** User and system CPU of a process so far, in ms (USER_HZ 100). */
function cpuMs(pid: number): { user: number; system: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return { user: Number(fields[11]) * 10, system: Number(fields[12]) * 10 };
}

interface Sidecar {
  name: string;
  child: ChildProcess;
  url: string;
}

/** Starts `govd serve` of the build at `root` on a fresh data dir; resolves once it serves. */
async function startSidecar(root: string, name: string, work: string, more: string[]) {
  const govd = join(root, "dist/src/cli/govd.js");
  const profile = arg("profile", "");
  const child = spawn(
    process.execPath,
    [
      ...launcherNodeFlags("serve", join(root, "bin/govd")),
      ...(profile ? ["--cpu-prof", `--cpu-prof-dir=${join(resolve(profile), name)}`] : []),
      govd,
      "serve",
      ...["--data-dir", join(work, name), "--grpc-port", "0", "--http-port", "0", ...more],
    ],
    {
      cwd: root,
      env: { ...process.env, GOVD_ADMIN_TOKEN: TOKEN, GOVD_LOG_LEVEL: "info" },
      stdio: ["ignore", "pipe", "inherit"],
    },
  );
  const port = await new Promise<number>((done, fail) => {
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on("line", (line) => {
      try {
        const e = JSON.parse(line) as { msg?: string; grpc?: string };
        if (e.msg?.startsWith("govd sidecar serving") && e.grpc) {
          done(Number(e.grpc.split(":").pop()));
        }
      } catch {
        // not a log line
      }
    });
    child.once("exit", (code) => fail(new Error(`sidecar ${name} exited with ${code}`)));
  });
  return { name, child, url: `http://127.0.0.1:${port}` };
}

/** CPU (ms) each process used while `during` ran. */
async function window(processes: Map<string, number>, during: () => Promise<void>) {
  const before = new Map([...processes].map(([k, pid]) => [k, cpuMs(pid)]));
  await during();
  const used: Record<string, { user: number; system: number }> = {};
  for (const [k, pid] of processes) {
    const a = before.get(k) as { user: number; system: number };
    const b = cpuMs(pid);
    used[k] = { user: b.user - a.user, system: b.system - a.system };
  }
  return used;
}

/** Reserve+Settle pairs at `rate` decisions a second to every sidecar, for `ms`. */
async function steady(sidecars: Sidecar[], rate: number, ms: number, run: string) {
  const callers = await Promise.all(sidecars.map((s) => singleCaller(s.url)));
  const op = reserveSettle(run);
  let fired = 0;
  let inFlight = 0;
  let failure: unknown;
  const started = Date.now();
  const ticker = setInterval(() => {
    const due = Math.floor(((Date.now() - started) / 1000) * (rate / 2));
    for (; fired < due; fired++) {
      for (const c of callers) {
        inFlight++;
        op(c.call, fired).then(
          () => inFlight--,
          (err: unknown) => {
            inFlight--;
            failure ??= err;
          },
        );
      }
    }
  }, 5);
  await sleep(ms);
  clearInterval(ticker);
  while (inFlight > 0) await sleep(5);
  for (const c of callers) c.close();
  if (failure) throw failure;
  return fired * 2;
}

async function main(): Promise<void> {
  const rate = Number(arg("rate", "300"));
  const seconds = Number(arg("seconds", "20"));
  const reps = Number(arg("reps", "3"));
  const base = arg("base", "");
  const builds: [string, string][] = [["this", process.cwd()]];
  if (base) builds.push(["base", resolve(base)]);
  const work = mkdtempSync(join(tmpdir(), "govd-connected-cpu-"));
  const central = await startCentralProcess(work, []);
  const sidecars: Sidecar[] = [];
  try {
    await setUpSidecar(`http://${central.address}`, TOKEN);
    // Central at the lowest priority: in production it has CPUs of its own.
    setPriority(central.child.pid as number, 19);
    for (const [tag, root] of builds) {
      const alone = await startSidecar(root, `${tag}-standalone`, work, []);
      await setUpSidecar(alone.url, TOKEN);
      const follow = ["--central", central.address, "--sidecar-id", `${tag}-connected`];
      sidecars.push(alone, await startSidecar(root, `${tag}-connected`, work, follow));
    }
    const pids = new Map(sidecars.map((s) => [s.name, s.child.pid as number]));
    pids.set("central", central.child.pid as number);
    await sleep(3_000);
    const print = (what: string, used: Record<string, { user: number; system: number }>) => {
      const cells = Object.entries(used).map(
        ([k, u]) => `${k} ${u.user + u.system} ms (user ${u.user}, system ${u.system})`,
      );
      process.stdout.write(`${what}: ${cells.join("; ")}\n`);
    };
    for (let r = 0; r < reps; r++) {
      print(
        `at rest ${seconds} s`,
        await window(pids, async () => {
          await sleep(seconds * 1000);
        }),
      );
    }
    for (let r = 0; r < reps; r++) {
      let decisions = 0;
      const used = await window(pids, async () => {
        decisions = await steady(sidecars, rate, seconds * 1000, `steady-${r}`);
      });
      print(`${rate} decisions/s each, ${decisions} each`, used);
      for (const [tag] of builds) {
        const a = used[`${tag}-standalone`];
        const c = used[`${tag}-connected`];
        if (!a || !c) continue;
        const [ta, tc] = [a.user + a.system, c.user + c.system];
        process.stdout.write(
          `  ${tag}: CPU per decision standalone ${Math.round((ta * 1000) / decisions)} us, connected ${Math.round((tc * 1000) / decisions)} us (+${(((tc - ta) / ta) * 100).toFixed(1)}%)\n`,
        );
      }
    }
  } finally {
    for (const s of sidecars) s.child.kill("SIGTERM");
    await sleep(1_500);
    central.child.kill("SIGTERM");
    await sleep(500);
    rmSync(work, { recursive: true, force: true });
    log("done");
  }
}

await main();
