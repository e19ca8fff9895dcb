/**
 * A full disk: the sidecar refuses writes with UNAVAILABLE and says so in /readyz, keeps
 * answering reads, and once space is freed truncates its WAL and writes again without a
 * restart, having lost no answered decision. Runs on a small tmpfs, which needs root (mount);
 * without it the test is skipped with one line, and .ci/run (root) sets GOVD_REQUIRE_TMPFS=1.
 */
import { execFileSync } from "node:child_process";
import { closeSync, mkdtempSync, openSync, rmSync, statSync, unlinkSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ExecutionClass } from "../gen/governance/v1/common_pb.js";
import { GoLiveService } from "../gen/governance/v1/golive_pb.js";
import { RiskService } from "../gen/governance/v1/risk_pb.js";
import { ManualClock } from "../src/clock.js";
import { createSidecar, type Sidecar } from "../src/server/sidecar.js";
import { verifyChain } from "../src/store/audit-trail.js";
import { type Db, migrateTo, openDatabase } from "../src/store/database.js";
import { DiskSpace } from "../src/store/disk-space.js";
import { type Caller, grpcCaller } from "./support/callers.js";
import { enableGoLive, T0, TOKEN } from "./support/sidecar.js";

/** Mounts a tmpfs of `size` at `dir`; false where this user may not mount. */
function mountTmpfs(dir: string, size: string): boolean {
  try {
    execFileSync("mount", ["-t", "tmpfs", "-o", `size=${size},mode=0700`, "tmpfs", dir], {
      stdio: "ignore",
    });
    return true;
  } catch {
    return false;
  }
}

const probe = mkdtempSync(join(tmpdir(), "govd-tmpfs-probe-"));
const canMount = mountTmpfs(probe, "1m");
if (canMount) execFileSync("umount", [probe]);
rmSync(probe, { recursive: true, force: true });
const required = process.env.GOVD_REQUIRE_TMPFS === "1";
if (!canMount && !required) {
  console.warn(
    "skipped: the full-disk test mounts a small tmpfs, which needs root (run as root, as .ci/run does)",
  );
}

/** Fills the file system of `dir` until `leave` bytes are free; returns the filler's path. */
function fill(dir: string, space: DiskSpace, leave: number): string {
  const file = join(dir, "filler");
  const fd = openSync(file, "w");
  const chunk = Buffer.alloc(64 * 1024);
  try {
    while (space.freeBytes() > leave + chunk.length) writeSync(fd, chunk);
  } finally {
    closeSync(fd);
  }
  return file;
}

describe("store on a full disk", () => {
  it.runIf(required)("can mount a tmpfs (GOVD_REQUIRE_TMPFS=1)", () => {
    expect(canMount, "mount -t tmpfs failed: run the suite as root").toBe(true);
  });
});

describe.skipIf(!canMount)("store on a full disk (tmpfs)", () => {
  let dir: string;
  let db: Db;
  let sidecar: Sidecar;
  let grpc: Caller;
  let httpUrl: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "govd-full-"));
    expect(mountTmpfs(dir, "16m")).toBe(true);
    const file = join(dir, "sidecar.db");
    db = openDatabase(file);
    migrateTo(db);
    sidecar = createSidecar({
      db,
      clock: new ManualClock(T0),
      token: TOKEN,
      storeFile: file,
      sweepIntervalMs: 3_600_000,
    });
    const bound = await sidecar.listen({ grpcPort: 0, httpPort: 0 });
    grpc = grpcCaller(`127.0.0.1:${bound.grpcPort}`);
    httpUrl = `http://127.0.0.1:${bound.httpPort}`;
    await enableGoLive(grpc);
  });
  afterAll(async () => {
    grpc?.close();
    await sidecar?.close();
    if (db?.open) db.close();
    if (dir) {
      try {
        execFileSync("umount", [dir]);
      } catch {
        // not mounted
      }
      rmSync(dir, { recursive: true, force: true });
    }
  });

  const reserve = (id: string) =>
    grpc.call(RiskService, "reserve", { engine: "WHOLESALE", amount: "0.01", correlationId: id });

  it("refuses writes while full, serves reads, and recovers by itself without losing a decision", async () => {
    const space = new DiskSpace(db);
    const filler = fill(dir, space, 256 * 1024);
    let allowed = 0;
    let refusal: ConnectError | undefined;
    for (let i = 0; i < 5_000 && !refusal; i++) {
      try {
        if ((await reserve(`fill-${i}`)).allowed) allowed += 1;
      } catch (err) {
        refusal = ConnectError.from(err);
      }
    }
    expect(refusal?.code).toBe(Code.Unavailable);
    expect(refusal?.message).toMatch(/disk is full/);
    expect(allowed).toBeGreaterThan(0);

    const ready = await fetch(`${httpUrl}/readyz`);
    expect(ready.status).toBe(503);
    expect(await ready.text()).toMatch(/not ready: the store's disk is full/);
    // Refused up front now, without touching the store; reads go on.
    const again = await reserve("while-full").catch((err: unknown) => ConnectError.from(err));
    expect(again).toBeInstanceOf(ConnectError);
    expect((again as ConnectError).message).toMatch(/writes are refused until space is freed/);
    const check = await grpc.call(GoLiveService, "checkGoLive", {
      executionClass: ExecutionClass.PROD_EXEC,
    });
    expect(check.allowed).toBe(true);

    unlinkSync(filler);
    const deadline = Date.now() + 10_000;
    while ((await fetch(`${httpUrl}/readyz`)).status !== 200) {
      expect(Date.now()).toBeLessThan(deadline);
      await new Promise((r) => setTimeout(r, 100));
    }
    // The WAL was truncated before writes were accepted again.
    expect(statSync(`${db.name}-wal`).size).toBeLessThan(256 * 1024);
    expect((await reserve("after-recovery")).allowed).toBe(true);

    const ledger = await grpc.call(RiskService, "getLedgerToday", { engine: "WHOLESALE" });
    expect(ledger.entries[0]?.actions).toBe(allowed + 1);
    const reserves = db
      .prepare("SELECT count(*) FROM audit_event WHERE action = 'RESERVE'")
      .pluck()
      .get();
    expect(reserves).toBe(allowed + 1);
    expect(verifyChain(db).ok).toBe(true);
  });
});
