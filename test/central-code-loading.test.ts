/**
 * A standalone sidecar's process holds none of central's code: central's store and services,
 * Kysely and PostgreSQL's driver are loaded only by `govd central` (and `govd audit verify
 * --central-store`). They were about 10 MB of a sidecar's resident size, which issue 15 bounds
 * at 120 MB. Each process runs with a module-load hook that writes every file it loads.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { freePort, type Program, startProgram, waitForOk } from "./support/program.js";

const started: Program[] = [];
const dirs: string[] = [];
afterEach(() => {
  for (const p of started.splice(0)) p.signal("SIGKILL");
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** Central's own code and the packages only it uses, as paths of loaded files. */
const CENTRAL_ONLY = /\/dist\/src\/sync\/central\/|\/node_modules\/(kysely|pg|pg-[a-z-]+)\//;

/** Runs `govd <command>` until it is ready; returns every file its process loaded by then. */
async function filesLoadedBy(command: string): Promise<string[]> {
  const dir = mkdtempSync(join(tmpdir(), "govd-loading-"));
  dirs.push(dir);
  const list = join(dir, "loaded.txt");
  const hooks = join(dir, "hooks.mjs");
  writeFileSync(
    hooks,
    `import { appendFileSync } from "node:fs";
export async function load(url, context, next) {
  const loaded = await next(url, context);
  appendFileSync(${JSON.stringify(list)}, url + "\\n");
  return loaded;
}
export async function resolve(specifier, context, next) {
  const resolved = await next(specifier, context);
  // A CommonJS package's own require() calls are not seen by load: its entry is.
  appendFileSync(${JSON.stringify(list)}, resolved.url + "\\n");
  return resolved;
}
`,
  );
  const register = join(dir, "register.mjs");
  writeFileSync(
    register,
    `import { register } from "node:module";\nregister(${JSON.stringify(pathToFileURL(hooks).href)});\n`,
  );
  writeFileSync(list, "");
  const [grpcPort, httpPort] = [await freePort(), await freePort()];
  const program = startProgram(
    process.execPath,
    ["--import", pathToFileURL(register).href, resolve("dist/src/cli/govd.js"), command],
    {
      GOVD_DATA_DIR: join(dir, "data"),
      GOVD_GRPC_PORT: String(grpcPort),
      GOVD_HTTP_PORT: String(httpPort),
      GOVD_ADMIN_TOKEN: "loading-test-token-0123456789abcdef",
      GOVD_LOG_LEVEL: "warn",
    },
  );
  started.push(program);
  await waitForOk(`http://127.0.0.1:${httpPort}/readyz`, 30_000, program);
  return readFileSync(list, "utf8").split("\n").filter(Boolean);
}

describe("central's code in a process", () => {
  it("is not loaded by a standalone sidecar", async () => {
    const loaded = await filesLoadedBy("serve");
    // The hook saw the sidecar's own code, so an empty list below means something.
    expect(loaded.some((f) => f.includes("/dist/src/server/sidecar.js"))).toBe(true);
    expect(loaded.filter((f) => CENTRAL_ONLY.test(f))).toEqual([]);
  }, 60_000);

  it("is loaded by govd central", async () => {
    const loaded = await filesLoadedBy("central");
    expect(loaded.some((f) => f.includes("/dist/src/sync/central/central-store.js"))).toBe(true);
    expect(loaded.some((f) => /\/node_modules\/kysely\//.test(f))).toBe(true);
    expect(loaded.some((f) => /\/node_modules\/pg\//.test(f))).toBe(true);
  }, 60_000);
});
