/**
 * The govd bin as npm installs it (bin/govd, reached through a symlink): it runs Node with the
 * heap bounds of the command (a sidecar's small heap for `govd serve`, central's larger young
 * generation and uncapped heap for `govd central`, as their serving lines report), and it
 * replaces itself with Node, so the PID a supervisor or a test holds is Node's own: a SIGKILL
 * to it leaves nothing running.
 */
import { mkdtempSync, readFileSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { launcherNodeFlags } from "../bench/processes.js";
import { freePort, type Program, startProgram, waitForOk } from "./support/program.js";

const started: Program[] = [];
const dirs: string[] = [];
afterEach(() => {
  for (const p of started.splice(0)) p.signal("SIGKILL");
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** Starts `govd <command>` through a symlink to bin/govd, on free loopback ports. */
async function startThroughSymlink(command: string[]) {
  const dir = mkdtempSync(join(tmpdir(), "govd-launcher-"));
  dirs.push(dir);
  const bin = join(dir, "govd");
  symlinkSync(resolve("bin/govd"), bin);
  const [grpcPort, httpPort] = [await freePort(), await freePort()];
  const program = startProgram(bin, command, {
    GOVD_DATA_DIR: join(dir, "data"),
    GOVD_GRPC_PORT: String(grpcPort),
    GOVD_HTTP_PORT: String(httpPort),
    GOVD_ADMIN_TOKEN: "launcher-test-token-0123456789abcdef",
    GOVD_LOG_LEVEL: "info",
  });
  started.push(program);
  await waitForOk(`http://127.0.0.1:${httpPort}/readyz`, 30_000, program);
  const deadline = Date.now() + 10_000;
  while (!program.output().includes("heapLimitMb") && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
  }
  const heapLimitMb = Number(/"heapLimitMb":(\d+)/.exec(program.output())?.[1]);
  const pid = program.child.pid as number;
  // What runs under the PID spawn returned: Node itself, with its flags (exec, no shell left).
  const argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter(Boolean);
  return { program, heapLimitMb, pid, argv, httpPort };
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe.runIf(process.platform === "linux")("bin/govd, through a symlink", () => {
  it("runs a sidecar with its small heap, as Node itself under the PID it was given", async () => {
    const { heapLimitMb, pid, argv, httpPort } = await startThroughSymlink(["serve"]);
    expect(argv[0]).toMatch(/node$/);
    expect(argv.slice(1, 3)).toEqual(launcherNodeFlags("serve"));
    expect(argv.at(-1)).toBe("serve");
    // 96 MB of old space and three 2 MB semi-spaces.
    expect(heapLimitMb).toBeGreaterThanOrEqual(96);
    expect(heapLimitMb).toBeLessThanOrEqual(110);
    // A SIGKILL to that PID stops the sidecar itself: its port stops answering (a shell left
    // in between would die alone, and Node would go on serving).
    process.kill(pid, "SIGKILL");
    await new Promise((r) => setTimeout(r, 200));
    expect(alive(pid)).toBe(false);
    const answered = await fetch(`http://127.0.0.1:${httpPort}/readyz`).then(
      () => true,
      () => false,
    );
    expect(answered).toBe(false);
  });

  it("runs central with its own heap: a larger young generation and no sidecar's cap", async () => {
    const { heapLimitMb, argv } = await startThroughSymlink(["central"]);
    expect(argv.slice(1, 2)).toEqual(launcherNodeFlags("central"));
    expect(launcherNodeFlags("central")).toContain("--max-semi-space-size=16");
    expect(argv.at(-1)).toBe("central");
    expect(heapLimitMb).toBeGreaterThan(500);
  });
});
