import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { AuditLog } from "../src/store/audit-log.js";
import { openDatabase, schemaVersion } from "../src/store/database.js";
import { LATEST_VERSION } from "../src/store/migrations.js";

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "govd-cli-"));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

function govd(...args: string[]) {
  const r = spawnSync("node", ["dist/src/cli/govd.js", ...args, "--data-dir", dir], {
    encoding: "utf8",
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

describe("govd migrate, backup and audit", () => {
  it("migrates up, reports status, and goes down step by step or --to a version", () => {
    expect(govd("migrate", "status").code).toBe(1);
    expect(govd("migrate", "status").err).toMatch(
      /^govd: no store at .*sidecar.db: start 'govd serve'/,
    );
    expect(govd("migrate", "up").out).toMatch(
      /applied 1: .*\napplied 2: .*\napplied 3: .*\napplied 4: .*\napplied 5: /,
    );
    expect(govd("migrate", "up").out).toMatch(`already at ${LATEST_VERSION}`);
    expect(govd("migrate", "status").out).toMatch(
      /at version 5 .*\napplied {2}1 .*\napplied {2}2 .*\napplied {2}3 .*\napplied {2}4 .*\napplied {2}5 /,
    );
    expect(govd("migrate", "down").out).toMatch(/reverted 5: /);
    expect(govd("migrate", "status").out).toMatch(/applied {2}4 .*\npending {2}5 /);
    expect(govd("migrate", "up").code).toBe(0);
    expect(govd("migrate", "down", "--to", "0").out).toMatch(
      /reverted 5: .*\nreverted 4: .*\nreverted 3: .*\nreverted 2: .*\nreverted 1: /,
    );
    const db = openDatabase(join(dir, "sidecar.db"));
    expect(schemaVersion(db)).toBe(0);
    expect(
      db.prepare("SELECT count(*) AS n FROM sqlite_master WHERE type = 'table'").get(),
    ).toEqual({ n: 0 });
    db.close();
    expect(govd("migrate", "down", "--to", "7").err).toMatch(/unknown schema version 7/);
  });

  it("migrate up creates a data folder that does not exist yet, readable by its owner only", () => {
    const nested = join(dir, "new", "data");
    const r = spawnSync("node", ["dist/src/cli/govd.js", "migrate", "up", "--data-dir", nested], {
      encoding: "utf8",
    });
    expect(r.stderr).toBe("");
    expect(r.stdout).toMatch(/applied 1: /);
    expect(statSync(nested).mode & 0o777).toBe(0o700);
  });

  it("refuses to serve a store newer than it knows", () => {
    govd("migrate", "up");
    const db = openDatabase(join(dir, "sidecar.db"));
    db.pragma(`user_version = ${LATEST_VERSION + 1}`);
    db.close();
    const r = govd("serve", "--grpc-port", "0", "--http-port", "0");
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/newer than this build knows/);
    expect(r.err).not.toMatch(/\n\s+at /);
  });

  it("backs up the store online, and the copy is a complete store", () => {
    govd("migrate", "up");
    const copy = join(dir, "copy.db");
    expect(govd("backup", copy).out).toMatch(/backed up/);
    const db = openDatabase(copy);
    expect(schemaVersion(db)).toBe(LATEST_VERSION);
    expect(db.prepare("SELECT count(*) AS n FROM risk_policy").get()).toEqual({ n: 4 });
    db.close();
    expect(govd("backup", copy).err).toMatch(/exists/);
  });

  it("verifies the audit chain and names the first broken link", () => {
    govd("migrate", "up");
    const db = openDatabase(join(dir, "sidecar.db"));
    const log = new AuditLog(db);
    for (let i = 0; i < 5; i++) {
      log.append(
        {
          lever: "risk",
          action: "RESERVE",
          subject: "WHOLESALE",
          amount: 1_000_000n * BigInt(i),
          ok: true,
          reason: "",
          actor: "e",
          correlationId: `c${i}`,
        },
        1000 + i,
      );
    }
    expect(govd("audit", "verify").out).toMatch(/audit chain intact: 5 events/);
    db.exec(
      "DROP TRIGGER audit_event_no_update; UPDATE audit_event SET amount = 99 WHERE seq = 3;",
    );
    db.close();
    const r = govd("audit", "verify");
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/audit chain BROKEN at event 3: .*edited/);
  });

  it("prints help with examples and refuses a non-loopback address without --allow-remote", () => {
    expect(execFileSync("node", ["dist/src/cli/govd.js", "serve", "--help"]).toString()).toMatch(
      /--grpc-socket[\s\S]*--allow-remote[\s\S]*GOVD_ADMIN_TOKEN[\s\S]*Example/,
    );
    const r = govd("serve", "--grpc-host", "0.0.0.0");
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/refusing to listen on 0\.0\.0\.0.*--allow-remote/);
  });
});
