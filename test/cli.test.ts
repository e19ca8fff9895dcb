import { execFileSync, spawnSync } from "node:child_process";
import { chmodSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
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
    const versions = Array.from({ length: LATEST_VERSION }, (_, i) => i + 1);
    const L = LATEST_VERSION;
    expect(govd("migrate", "up").out).toMatch(
      new RegExp(versions.map((v) => `applied ${v}: .*`).join("\\n")),
    );
    expect(govd("migrate", "up").out).toMatch(`already at ${L}`);
    expect(govd("migrate", "status").out).toMatch(
      new RegExp(`at version ${L} .*\\n${versions.map((v) => `applied {2}${v} .*`).join("\\n")}`),
    );
    expect(govd("migrate", "down").out).toMatch(new RegExp(`reverted ${L}: `));
    expect(govd("migrate", "status").out).toMatch(
      new RegExp(`applied {2}${L - 1} .*\\npending {2}${L} `),
    );
    expect(govd("migrate", "up").code).toBe(0);
    expect(govd("migrate", "down", "--to", "0").out).toMatch(
      new RegExp(
        [...versions]
          .reverse()
          .map((v) => `reverted ${v}: .*`)
          .join("\\n"),
      ),
    );
    const db = openDatabase(join(dir, "sidecar.db"));
    expect(schemaVersion(db)).toBe(0);
    expect(
      db.prepare("SELECT count(*) AS n FROM sqlite_master WHERE type = 'table'").get(),
    ).toEqual({ n: 0 });
    db.close();
    expect(govd("migrate", "down", "--to", String(L + 1)).err).toMatch(
      new RegExp(`unknown schema version ${L + 1}`),
    );
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

  it("refuses an operator token file other users can read, unless told to accept it", () => {
    govd("migrate", "up");
    const file = join(dir, "admin.token");
    writeFileSync(file, "a-token-others-can-read\n", { mode: 0o644 });
    chmodSync(file, 0o644);
    const r = govd("serve", "--grpc-port", "0", "--http-port", "0");
    expect(r.code).toBe(1);
    expect(r.err).toMatch(
      /admin\.token can be read by other users \(mode 0644\): .*chmod 600 .*--allow-readable-token/,
    );
    expect(r.err).not.toMatch(/a-token-others-can-read/);
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

  it("reads GOVD_ALLOW_REMOTE strictly: 0, false and no keep the guard on, other values stop start-up", () => {
    for (const value of ["0", "false", "no", "NO", " False "]) {
      const r = spawnSync("node", ["dist/src/cli/govd.js", "serve", "--grpc-host", "0.0.0.0"], {
        encoding: "utf8",
        env: { ...process.env, GOVD_ALLOW_REMOTE: value, GOVD_DATA_DIR: dir },
      });
      expect(r.status, value).toBe(1);
      expect(r.stderr, value).toMatch(/refusing to listen on 0\.0\.0\.0/);
    }
    for (const value of ["", "maybe", "2", "on"]) {
      const r = spawnSync("node", ["dist/src/cli/govd.js", "serve"], {
        encoding: "utf8",
        env: { ...process.env, GOVD_ALLOW_REMOTE: value, GOVD_DATA_DIR: dir },
      });
      expect(r.status, value).toBe(1);
      expect(r.stderr, value).toMatch(
        /GOVD_ALLOW_REMOTE' is invalid\. must be 1\/0, true\/false or yes\/no/,
      );
    }
  });

  it("reads --retain-shipped as keep or a duration of at least 10m, and only with --central", () => {
    const central = ["--central", "127.0.0.1:1", "--sidecar-id", "r-1"];
    const short = govd("serve", ...central, "--retain-shipped", "5m");
    expect(short.code).toBe(1);
    expect(short.err).toMatch(/--retain-shipped must be keep or at least 10m/);
    const bad = govd("serve", ...central, "--retain-shipped", "forever");
    expect(bad.code).toBe(1);
    expect(bad.err).toMatch(/must be keep or a duration such as 30m, 12h or 7d/);
    const standalone = govd("serve", "--retain-shipped", "7d");
    expect(standalone.code).toBe(1);
    expect(standalone.err).toMatch(/--retain-shipped needs --central/);
    // keep is the default, so it is also fine on a standalone sidecar's environment.
    expect(execFileSync("node", ["dist/src/cli/govd.js", "serve", "--help"]).toString()).toMatch(
      /--retain-shipped <keep\|duration>[\s\S]*\(default: keep, prune nothing\)/,
    );
  });

  it("reads --max-concurrent-streams as a whole number from 1 to 2^32-1, on serve and central", () => {
    for (const command of ["serve", "central"]) {
      for (const value of ["0", "-1", "4294967296", "many"]) {
        const r = govd(command, "--max-concurrent-streams", value);
        expect(r.code, `${command} ${value}`).toBe(1);
        expect(r.err, `${command} ${value}`).toMatch(
          /--max-concurrent-streams <n>' argument '.*' is invalid\. must be a whole number/,
        );
      }
      const env = spawnSync("node", ["dist/src/cli/govd.js", command], {
        encoding: "utf8",
        env: { ...process.env, GOVD_MAX_CONCURRENT_STREAMS: "0", GOVD_DATA_DIR: dir },
      });
      expect(env.status).toBe(1);
      expect(env.stderr).toMatch(/GOVD_MAX_CONCURRENT_STREAMS' is invalid/);
      expect(execFileSync("node", ["dist/src/cli/govd.js", command, "--help"]).toString()).toMatch(
        /--max-concurrent-streams <n>[\s\S]*\(default:\s+1000,\s+env:\s+GOVD_MAX_CONCURRENT_STREAMS\)/,
      );
    }
  });

  it("prints help with examples and refuses a non-loopback address without --allow-remote", () => {
    expect(execFileSync("node", ["dist/src/cli/govd.js", "serve", "--help"]).toString()).toMatch(
      /--allow-remote[\s\S]*--grpc-socket[\s\S]*GOVD_ADMIN_TOKEN[\s\S]*Example/,
    );
    const r = govd("serve", "--grpc-host", "0.0.0.0");
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/refusing to listen on 0\.0\.0\.0.*--allow-remote/);
  });
});
