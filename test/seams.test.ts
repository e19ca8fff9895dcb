/**
 * The seams the fleet code is built on: imports run one way, every decision is stamped from
 * one place, and idempotency keys have one owner in the store.
 */
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { create } from "@bufbuild/protobuf";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ExecutionClass } from "../gen/governance/v1/common_pb.js";
import { CheckGoLiveRequestSchema } from "../gen/governance/v1/golive_pb.js";
import {
  RecommendRequestSchema,
  RequireProdEligibleRequestSchema,
} from "../gen/governance/v1/heimdall_pb.js";
import { ReserveRequestSchema } from "../gen/governance/v1/risk_pb.js";
import { ManualClock } from "../src/clock.js";
import { createLeverContext, type LeverContext } from "../src/levers/context.js";
import { goLiveService } from "../src/levers/golive/service.js";
import { heimdallService } from "../src/levers/heimdall/service.js";
import { riskService } from "../src/levers/risk/service.js";
import { IdempotencyKeys } from "../src/store/idempotency-keys.js";
import { openTempStore, type TempStore } from "./support/temp-store.js";

/** The layers of src/, outermost first: a file may import its own layer or one further in. */
const LAYERS = ["cli", "server", "sync", "levers", "store"] as const;

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory()
      ? sourceFiles(join(dir, e.name))
      : e.name.endsWith(".ts")
        ? [join(dir, e.name)]
        : [],
  );
}

/** The layer of a file under src/ (undefined for shared leaves such as clock.ts and money.ts). */
function layerOf(file: string): number | undefined {
  const top = relative("src", file).split("/")[0] ?? "";
  const i = LAYERS.indexOf(top as (typeof LAYERS)[number]);
  return i < 0 ? undefined : i;
}

/** Relative imports in a file's text, resolved to paths under the project. */
function importsOf(file: string, text = readFileSync(file, "utf8")): string[] {
  return [...text.matchAll(/(?:from|import)\s*\(?\s*"(\.[^"]+)"/g)].map((m) =>
    relative(process.cwd(), resolve(dirname(file), (m[1] as string).replace(/\.js$/, ".ts"))),
  );
}

/** The imports of a file that reach a layer further out than its own. */
function upwardImports(file: string, text?: string): string[] {
  const own = layerOf(file);
  if (own === undefined) return [];
  return importsOf(file, text)
    .filter((target) => {
      const theirs = target.startsWith("src/") ? layerOf(target) : undefined;
      return theirs !== undefined && theirs < own;
    })
    .map((target) => `${file} -> ${target}`);
}

describe("imports run one way: cli -> server -> sync -> levers -> store", () => {
  const files = sourceFiles("src");

  it("finds the layers' files and their imports", () => {
    expect(files.length).toBeGreaterThan(40);
    expect(importsOf("src/server/sidecar.ts")).toContain("src/levers/service-binding.ts");
  });

  it("sees an upward import when there is one", () => {
    const text = 'import { bindService } from "../../server/call-pipeline.js";';
    expect(upwardImports("src/levers/risk/service.ts", text)).toEqual([
      "src/levers/risk/service.ts -> src/server/call-pipeline.ts",
    ]);
    expect(upwardImports("src/store/audit-log.ts", 'import "../levers/context.js";')).toHaveLength(
      1,
    );
    expect(upwardImports("src/server/sidecar.ts", 'import "../levers/context.js";')).toEqual([]);
  });

  it("no file imports a layer further out than its own", () => {
    expect(files.flatMap((file) => upwardImports(file))).toEqual([]);
  });
});

describe("one decision stamp", () => {
  let store: TempStore;
  let ctx: LeverContext;
  beforeEach(() => {
    store = openTempStore();
    ctx = createLeverContext(store.db, new ManualClock(Date.UTC(2026, 2, 2)), {}, () => ({
      stamp: () => ({ policyRevision: 41n, stalenessMs: 1234n }),
      staleBecause: () => undefined,
      freshness: () => ({}),
      tripped: () => undefined,
    }));
  });
  afterEach(() => store.remove());

  it("is what every decision answer reports", () => {
    const golive = goLiveService(ctx).handlers as Record<string, (r: unknown) => unknown>;
    const risk = riskService(ctx).handlers as Record<string, (r: unknown) => unknown>;
    const heimdall = heimdallService(ctx).handlers as Record<string, (r: unknown) => unknown>;
    const stamp = { policyRevision: 41n, stalenessMs: 1234n };
    expect(
      golive.checkGoLive?.(
        create(CheckGoLiveRequestSchema, { executionClass: ExecutionClass.PROD_EXEC }),
      ),
    ).toMatchObject(stamp);
    expect(
      risk.reserve?.(
        create(ReserveRequestSchema, { engine: "WHOLESALE", amount: "1.00", correlationId: "r" }),
      ),
    ).toMatchObject(stamp);
    const rec = heimdall.recommend?.(
      create(RecommendRequestSchema, {
        domain: "BUYER_MATCH",
        confidence: 0.95,
        recommendationJson: "{}",
        correlationId: "rec",
      }),
    ) as { recommendationId: string };
    expect(rec).toMatchObject(stamp);
    expect(
      heimdall.requireProdEligible?.(
        create(RequireProdEligibleRequestSchema, { recommendationId: rec.recommendationId }),
      ),
    ).toMatchObject(stamp);
  });

  it("is the store's revision with no staleness on a standalone sidecar", () => {
    const standalone = createLeverContext(store.db, new ManualClock(Date.UTC(2026, 2, 2)));
    expect(standalone.stamp()).toEqual({
      policyRevision: standalone.revision.current(),
      stalenessMs: 0n,
    });
    store.db.transaction(() => standalone.revision.next())();
    expect(standalone.stamp().policyRevision).toBe(standalone.revision.current());
  });
});

describe("IdempotencyKeys", () => {
  let store: TempStore;
  beforeEach(() => {
    store = openTempStore();
  });
  afterEach(() => store.remove());

  it("finds what it saved, per method and id, and prunes by age in arrival order", () => {
    const keys = new IdempotencyKeys(store.db);
    const call = (n: number) => ({ requestHash: Buffer.from([n]), response: Buffer.from([n, n]) });
    keys.save("Reserve", "a", call(1), 1_000);
    keys.save("Settle", "a", call(2), 2_000);
    expect(keys.find("Reserve", "a", 2_000, 1_000)).toEqual(call(1));
    expect(keys.find("Settle", "a", 2_000, 1_000)).toEqual(call(2));
    expect(keys.find("Release", "a", 2_000, 1_000)).toBeUndefined();
    expect(() => keys.save("Reserve", "a", call(3), 3_000)).toThrow(/UNIQUE/);
    expect(keys.prune(2_500, 1_000)).toBe(1);
    // Gone from the store, not only past the retention of the lookup.
    expect(keys.find("Reserve", "a", 2_500, 10_000)).toBeUndefined();
    expect(keys.find("Settle", "a", 2_500, 1_000)).toEqual(call(2));
    expect(keys.prune(2_500, 1_000)).toBe(0);
  });
});
