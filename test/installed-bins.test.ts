import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isEntryPoint } from "../src/cli/entry-point.js";

/** The bins as package.json declares them. */
const bins = JSON.parse(readFileSync("package.json", "utf8")).bin as Record<string, string>;

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "govd-bins-"));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** Lays out `node_modules/.bin/NAME` as npm does: a relative symlink into the package. */
function npmStyleBin(bin: string, linkName: string): string {
  const binDir = join(dir, "node_modules", ".bin");
  mkdirSync(binDir, { recursive: true });
  const link = join(binDir, linkName);
  symlinkSync(relative(binDir, resolve(bins[bin] as string)), link);
  return link;
}

describe("installed commands, started through npm's bin symlinks", () => {
  it("declares both commands", () => {
    expect(Object.keys(bins).sort()).toEqual(["govctl", "govd"]);
  });

  it.each([
    ["govd", ["--help"], /Usage: govd/],
    ["govd", ["serve", "--help"], /--data-dir/],
    ["govctl", ["--help"], /Usage: govctl/],
  ])("%s %s prints its help through the symlink", (name, args, help) => {
    const link = npmStyleBin(name, `${name}-${args.join("")}`);
    // govd's bin is a shell launcher (bin/govd): run as npm and npx run bins on Linux, by its
    // #! line. govctl's is the JS program: node given the link's path, as a shim would. (.ci/run
    // also runs both bins of an installed tarball directly.)
    const r =
      name === "govd"
        ? spawnSync(link, args, { encoding: "utf8", cwd: dir })
        : spawnSync("node", [link, ...args], { encoding: "utf8", cwd: dir });
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(help);
  });

  it("a failing command through the symlink still fails loudly", () => {
    const link = npmStyleBin("govctl", "govctl-unreachable");
    const r = spawnSync("node", [link, "--addr", "127.0.0.1:1", "review"], {
      encoding: "utf8",
      cwd: dir,
    });
    expect(r.status).toBe(3);
    expect(r.stderr).toMatch(/^govctl: /);
  });
});

describe("isEntryPoint", () => {
  it("matches the script through a symlink and refuses other modules and missing paths", () => {
    const target = resolve(bins.govctl as string);
    const link = join(dir, "linked-govctl.js");
    symlinkSync(target, link);
    const url = new URL(`file://${target}`).href;
    expect(isEntryPoint(url, link)).toBe(true);
    expect(isEntryPoint(url, target)).toBe(true);
    expect(isEntryPoint(url, resolve(bins.govd as string))).toBe(false);
    expect(isEntryPoint(url, join(dir, "missing.js"))).toBe(false);
    expect(isEntryPoint(url, undefined)).toBe(false);
  });
});

describe("a closed pipe", () => {
  it("ends govctl and govd quietly when their reader stops reading (| head)", () => {
    // A write racing the reader's exit fails now and then: three tries of each catch it.
    const runs = ["dist/src/cli/govctl.js --help", "dist/src/cli/govd.js serve --help"].flatMap(
      (args) => [args, args, args],
    );
    for (const args of runs) {
      const r = spawnSync("bash", ["-c", `set -o pipefail; node ${args} | head -1`], {
        encoding: "utf8",
      });
      expect(r.stdout).toMatch(/^Usage: /);
      expect(r.stderr).not.toMatch(/EPIPE|Unhandled/);
      expect(r.status).toBe(0);
    }
  });
});
