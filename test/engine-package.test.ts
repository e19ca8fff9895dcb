/**
 * The engine library as an engine installs it: @govd/engine resolves by name to its built
 * dist/, its runtime dependencies are @grpc/grpc-js and @bufbuild/protobuf only (no SQLite to
 * compile), and its built code imports nothing else but Node's own modules and, from the
 * separate @govd/engine/connect entry, the optional @connectrpc/connect peer.
 */
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

const DIR = "packages/engine";
const pkg = JSON.parse(readFileSync(join(DIR, "package.json"), "utf8")) as {
  dependencies: Record<string, string>;
  peerDependencies: Record<string, string>;
  peerDependenciesMeta: Record<string, { optional: boolean }>;
};

function jsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory()
      ? jsFiles(join(dir, e.name))
      : e.name.endsWith(".js")
        ? [join(dir, e.name)]
        : [],
  );
}

/** The package names a built file imports (relative imports and node: builtins left out). */
function packagesImported(file: string): string[] {
  const text = readFileSync(file, "utf8");
  return [...text.matchAll(/(?:from|import)\s*\(?\s*"([^".][^"]*)"/g)]
    .map((m) => m[1] as string)
    .filter((s) => !s.startsWith("node:"))
    .map((s) =>
      s.startsWith("@") ? s.split("/").slice(0, 2).join("/") : (s.split("/")[0] as string),
    );
}

describe("@govd/engine as installed", () => {
  it("depends at run time on grpc-js and protobuf-es only; Connect is an optional peer", () => {
    expect(Object.keys(pkg.dependencies).sort()).toEqual(["@bufbuild/protobuf", "@grpc/grpc-js"]);
    expect(pkg.peerDependenciesMeta["@connectrpc/connect"]?.optional).toBe(true);
  });

  it("imports nothing beyond those from its built code", () => {
    const files = jsFiles(join(DIR, "dist"));
    expect(files.length).toBeGreaterThan(10);
    const imported = new Set(files.flatMap(packagesImported));
    expect([...imported].sort()).toEqual([
      "@bufbuild/protobuf",
      "@connectrpc/connect",
      "@grpc/grpc-js",
    ]);
    const connectUsers = files.filter((f) => packagesImported(f).includes("@connectrpc/connect"));
    expect(connectUsers).toEqual([join(DIR, "dist/src/connect-interceptor.js")]);
  });

  it("resolves by name to its entries", async () => {
    // Names in variables: tsc (in lint) runs before the package's dist/ is built.
    const entries = ["@govd/engine", "@govd/engine/connect"];
    const main = await import(entries[0] as string);
    expect(typeof main.createEngine).toBe("function");
    expect(typeof main.withReservation).toBe("function");
    const connect = await import(entries[1] as string);
    expect(typeof connect.goLiveInterceptor).toBe("function");
  });

  it("packs its built code and descriptors, not its sources", () => {
    const out = execFileSync("npm", ["pack", "--dry-run", "--json", "--ignore-scripts"], {
      cwd: DIR,
      encoding: "utf8",
    });
    const files = (JSON.parse(out) as { files: { path: string }[] }[])[0]?.files.map((f) => f.path);
    expect(files).toContain("dist/src/index.js");
    expect(files).toContain("dist/src/index.d.ts");
    expect(files).toContain("dist/gen/governance/v1/golive_pb.js");
    expect(files?.some((f) => f.startsWith("src/"))).toBe(false);
  });
});
