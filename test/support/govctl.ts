/** Runs the built govctl (dist/, made by the suite's global setup) as a separate process. */
import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { RunningSidecar } from "./sidecar.js";
import { TOKEN } from "./sidecar.js";

/** What a govctl run printed and how it exited. */
export interface GovctlRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `node dist/src/cli/govctl.js ...args` with extra environment variables. */
export function govctl(args: string[], env: Record<string, string> = {}): Promise<GovctlRun> {
  const { GOVD_ADMIN_TOKEN: _, GOVD_DATA_DIR: __, ...base } = process.env;
  const child = spawn(process.execPath, ["dist/src/cli/govctl.js", ...args], {
    cwd: process.cwd(),
    env: { ...base, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => {
    stdout += d.toString();
  });
  child.stderr.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  return new Promise((resolve) => child.once("close", (code) => resolve({ code, stdout, stderr })));
}

/** Writes the test token where govctl looks for it (`<dir>/admin.token`). */
export function writeTokenFile(s: RunningSidecar): string {
  const file = join(s.dir, "admin.token");
  writeFileSync(file, `${TOKEN}\n`, { mode: 0o600 });
  return file;
}

/** govctl against `s`, finding the token in its data dir. */
export function govctlFor(s: RunningSidecar) {
  writeTokenFile(s);
  return (...args: string[]) =>
    govctl(["--addr", s.grpcAddress, "--data-dir", s.dir, "--actor", "test-ops", ...args]);
}
