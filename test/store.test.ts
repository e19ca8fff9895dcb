import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  type AuditEntry,
  AuditLog,
  type AuditRow,
  GENESIS_HASH,
  linkHash,
} from "../src/store/audit-log.js";
import { verifyChain } from "../src/store/audit-trail.js";
import {
  assertServable,
  type Db,
  migrateTo,
  openDatabase,
  StoreError,
  schemaVersion,
} from "../src/store/database.js";
import { LATEST_VERSION, migrations } from "../src/store/migrations.js";

const M = 1_000_000;

let dir: string;
const open: Db[] = [];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "govd-store-"));
});
afterEach(() => {
  for (const db of open.splice(0)) if (db.open) db.close();
  rmSync(dir, { recursive: true, force: true });
});

function fresh(name = "govd.db"): Db {
  const db = openDatabase(join(dir, name));
  open.push(db);
  return db;
}

function migrated(): Db {
  const db = fresh();
  migrateTo(db);
  return db;
}

/** User tables, indexes and triggers (SQLite's own objects left out). */
function schemaObjects(db: Db): string[] {
  return db
    .prepare<[], { type: string; name: string; sql: string | null }>(
      "SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name",
    )
    .all()
    .map((r) => `${r.type}:${r.name}:${(r.sql ?? "").replace(/\s+/g, " ")}`);
}

function tables(db: Db): string[] {
  return schemaObjects(db).filter((o) => o.startsWith("table:"));
}

function seedSummary(db: Db) {
  return {
    risk: db
      .prepare(
        `SELECT engine, max_daily_loss AS loss, max_daily_exposure AS exposure,
                max_open_risk AS openRisk, enabled FROM risk_policy ORDER BY engine`,
      )
      .all(),
    heimdall: db
      .prepare(
        `SELECT domain, min_confidence_prod AS confidence, min_sandbox_trials AS trials,
                min_sandbox_success_rate AS rate, prod_use_enabled AS prod
         FROM heimdall_policy ORDER BY domain`,
      )
      .all(),
    regression: db
      .prepare(
        `SELECT domain, metric, window_events AS "window", baseline_events AS baseline,
                max_drop_fraction AS "drop", action, enabled
         FROM regression_policy ORDER BY domain, metric`,
      )
      .all(),
    golive: db
      .prepare("SELECT go_live_enabled AS goLive, kill_switch_engaged AS kill FROM golive_state")
      .all(),
  };
}

describe("migrations", () => {
  it("numbers the migrations 1..LATEST_VERSION without gaps", () => {
    expect(LATEST_VERSION).toBeGreaterThanOrEqual(1);
    expect(migrations.map((m) => m.version)).toEqual(
      Array.from({ length: LATEST_VERSION }, (_, i) => i + 1),
    );
  });

  it("migrates a new file up to LATEST_VERSION, one step per version", () => {
    const db = fresh();
    expect(schemaVersion(db)).toBe(0);
    const applied = migrateTo(db);
    expect(applied.map((m) => m.version)).toEqual(migrations.map((m) => m.version));
    expect(schemaVersion(db)).toBe(LATEST_VERSION);
    expect(migrateTo(db)).toEqual([]);
    expect(() => assertServable(db)).not.toThrow();
  });

  it("seeds the rows named in DESIGN.md", () => {
    const db = migrated();
    const seed = seedSummary(db);
    expect(seed.risk).toEqual([
      { engine: "CAPITAL", loss: 150 * M, exposure: 750 * M, openRisk: 300 * M, enabled: 1 },
      {
        engine: "GLOBAL",
        loss: 250 * M,
        exposure: 1500 * M,
        openRisk: expect.any(Number),
        enabled: 1,
      },
      {
        engine: "NOTIFY",
        loss: expect.any(Number),
        exposure: expect.any(Number),
        openRisk: expect.any(Number),
        enabled: 0,
      },
      { engine: "WHOLESALE", loss: 200 * M, exposure: 1000 * M, openRisk: 500 * M, enabled: 1 },
    ]);
    // Where the seed gives no number, the pick must still be a usable positive cap.
    const picks = db
      .prepare<[], { engine: string; open: number; actions: number }>(
        "SELECT engine, max_open_risk AS open, max_actions_per_day AS actions FROM risk_policy",
      )
      .all();
    for (const p of picks) {
      expect(p.actions, p.engine).toBeGreaterThan(0);
      expect(p.open, p.engine).toBeGreaterThan(0);
    }
    expect(seed.heimdall).toEqual([
      { domain: "BUYER_MATCH", confidence: 0.9, trials: 50, rate: 0.8, prod: 0 },
      { domain: "CAPITAL_ROUTE", confidence: 0.95, trials: 100, rate: 0.85, prod: 0 },
      { domain: "FOLLOWUP_ACTION", confidence: 0.9, trials: 60, rate: 0.8, prod: 0 },
      { domain: "WHOLESALE_OFFER", confidence: 0.92, trials: 75, rate: 0.82, prod: 0 },
    ]);
    expect(seed.regression).toEqual([
      {
        domain: "BUYER_MATCH",
        metric: "match_success",
        window: 50,
        baseline: 200,
        drop: 0.25,
        action: "THROTTLE",
        enabled: 0,
      },
      {
        domain: "CAPITAL",
        metric: "roi_event",
        window: 50,
        baseline: 200,
        drop: 0.3,
        action: "KILL_SWITCH",
        enabled: 0,
      },
      {
        domain: "WHOLESALE",
        metric: "contract_rate",
        window: 50,
        baseline: 200,
        drop: 0.2,
        action: "THROTTLE",
        enabled: 0,
      },
      {
        domain: "WHOLESALE",
        metric: "offer_accept_rate",
        window: 50,
        baseline: 200,
        drop: 0.15,
        action: "THROTTLE",
        enabled: 0,
      },
    ]);
    expect(seed.golive).toEqual([{ goLive: 0, kill: 0 }]);
  });

  it("migrates down to 0 leaving no tables, and up again to the same seeded store", () => {
    const db = migrated();
    const schemaAtLatest = schemaObjects(db);
    const seedAtLatest = seedSummary(db);
    expect(tables(db).length).toBeGreaterThan(0);

    const reverted = migrateTo(db, 0);
    expect(reverted.map((m) => m.version)).toEqual(migrations.map((m) => m.version).reverse());
    expect(schemaVersion(db)).toBe(0);
    expect(schemaObjects(db)).toEqual([]);

    migrateTo(db, LATEST_VERSION);
    expect(schemaVersion(db)).toBe(LATEST_VERSION);
    expect(schemaObjects(db)).toEqual(schemaAtLatest);
    expect(seedSummary(db)).toEqual(seedAtLatest);
  });

  it("migrates up and down one version at a time, each down undoing exactly its up", () => {
    const db = fresh();
    const schemaAt: string[][] = [schemaObjects(db)];
    for (let v = 1; v <= LATEST_VERSION; v++) {
      const applied = migrateTo(db, v);
      expect(applied.map((m) => m.version)).toEqual([v]);
      expect(schemaVersion(db)).toBe(v);
      schemaAt.push(schemaObjects(db));
      // Migration 6 rewrites idempotency keys only, 9 and 12 add meta rows (the shipped seq, the
      // KPI fold's seq and id base): the schema stays as it was.
      if (v === 6 || v === 9 || v === 12) expect(schemaAt[v]).toEqual(schemaAt[v - 1]);
      else expect(schemaAt[v]).not.toEqual(schemaAt[v - 1]);
    }
    for (let v = LATEST_VERSION; v >= 1; v--) {
      const reverted = migrateTo(db, v - 1);
      expect(reverted.map((m) => m.version)).toEqual([v]);
      expect(schemaVersion(db)).toBe(v - 1);
      expect(schemaObjects(db)).toEqual(schemaAt[v - 1]);
    }
    expect(tables(db)).toEqual([]);
    migrateTo(db);
    expect(schemaObjects(db)).toEqual(schemaAt[LATEST_VERSION]);
  });

  it.each([-1, LATEST_VERSION + 1, 1.5, Number.NaN])(
    "refuses to migrate to unknown version %s",
    (target) => {
      const db = fresh();
      expect(() => migrateTo(db, target)).toThrow(StoreError);
      expect(schemaVersion(db)).toBe(0);
    },
  );
});

describe("assertServable", () => {
  it("refuses a store migrated by a newer govd, naming it newer", () => {
    const db = migrated();
    db.pragma(`user_version = ${LATEST_VERSION + 1}`);
    expect(() => assertServable(db)).toThrow(StoreError);
    expect(() => assertServable(db)).toThrow(/newer/);
    // Nor will it migrate such a store (up or down).
    expect(() => migrateTo(db)).toThrow(/newer/);
    expect(() => migrateTo(db, 0)).toThrow(/newer/);
    expect(schemaVersion(db)).toBe(LATEST_VERSION + 1);
  });

  it("refuses a store behind this build, telling the operator to run govd migrate up", () => {
    const db = fresh();
    expect(() => assertServable(db)).toThrow(StoreError);
    expect(() => assertServable(db)).toThrow(/govd migrate up/);
    migrateTo(db, LATEST_VERSION - 1);
    expect(() => assertServable(db)).toThrow(/govd migrate up/);
    migrateTo(db);
    expect(() => assertServable(db)).not.toThrow();
  });
});

describe("openDatabase", () => {
  it("refuses a file of random bytes with a StoreError and leaves it untouched", () => {
    const file = join(dir, "garbage.db");
    const bytes = randomBytes(64 * 1024);
    writeFileSync(file, bytes);
    let error: unknown;
    try {
      open.push(openDatabase(file));
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(StoreError);
    expect((error as Error).message).toMatch(/not a valid SQLite database/);
    expect(readFileSync(file).equals(bytes)).toBe(true);
  });

  it("opens a new file in WAL mode with foreign keys on", () => {
    const db = fresh();
    expect(db.pragma("journal_mode", { simple: true })).toBe("wal");
    expect(db.pragma("foreign_keys", { simple: true })).toBe(1);
    expect(db.pragma("synchronous", { simple: true })).toBe(1); // NORMAL
  });

  it("refuses to open a missing file read-only", () => {
    expect(() => openDatabase(join(dir, "missing.db"), { readonly: true })).toThrow(StoreError);
  });
});

function entry(i: number): AuditEntry {
  return {
    lever: "risk",
    action: i % 2 === 0 ? "RESERVE" : "DENY",
    subject: "WHOLESALE",
    amount: BigInt(i) * 1_250_000n,
    ok: i % 2 === 0,
    reason: i % 2 === 0 ? "" : "DENY_REASON_ENGINE_EXPOSURE_CAP",
    actor: "engine",
    correlationId: `c-${i}`,
    reservationId: i % 2 === 0 ? `r-${i}` : undefined,
    metadata: { n: String(i) },
  };
}

/** A migrated store with `n` appended audit events, seq 1..n. */
function withEvents(n: number): Db {
  const db = migrated();
  const log = new AuditLog(db);
  for (let i = 1; i <= n; i++) expect(log.append(entry(i), 1_700_000_000_000 + i)).toBe(i);
  return db;
}

function row(db: Db, seq: number): AuditRow {
  const r = db
    .prepare<[number], AuditRow & { amount: number | null }>(
      "SELECT * FROM audit_event WHERE seq = ?",
    )
    .get(seq);
  if (!r) throw new Error(`no event ${seq}`);
  return { ...r, amount: r.amount === null ? null : BigInt(r.amount) };
}

describe("audit log", () => {
  it("reports a clean chain as ok with its event count", () => {
    expect(verifyChain(migrated())).toMatchObject({
      ok: true,
      events: 0,
      head: expect.stringMatching(/^[0-9a-f]{64}$/),
    });
    const db = withEvents(5);
    expect(verifyChain(db)).toMatchObject({
      ok: true,
      events: 5,
      head: expect.stringMatching(/^[0-9a-f]{64}$/),
    });
  });

  it("stores what was appended, linked to the previous event from the genesis hash", () => {
    const db = withEvents(3);
    const first = row(db, 1);
    expect(first).toMatchObject({
      lever: "risk",
      action: "DENY",
      amount: 1_250_000n,
      ok: 0,
      correlation_id: "c-1",
      reservation_id: "",
      metadata: '{"n":"1"}',
      time_ms: 1_700_000_000_001,
    });
    const { hash: h1, ...f1 } = first;
    expect(h1).toBe(linkHash(GENESIS_HASH, f1));
    const { hash: h2, ...f2 } = row(db, 2);
    expect(h2).toBe(linkHash(h1, f2));
    expect(row(db, 2).reservation_id).toBe("r-2");
  });

  it("links a bigint amount exactly as it linked the same amount as a number", () => {
    const { hash: _h, ...fields } = row(withEvents(2), 2);
    // The formula before money became bigint: JSON of every field, the amount a number.
    const old = (amount: number) =>
      createHash("sha256")
        .update(
          JSON.stringify([
            GENESIS_HASH,
            fields.seq,
            fields.time_ms,
            fields.lever,
            fields.action,
            fields.subject,
            amount,
            fields.ok,
            fields.reason,
            fields.actor,
            fields.correlation_id,
            fields.reservation_id,
            fields.metadata,
          ]),
        )
        .digest("hex");
    expect(linkHash(GENESIS_HASH, fields)).toBe(old(2_500_000));
    expect(linkHash(GENESIS_HASH, { ...fields, amount: 999_999_999_999_999n })).toBe(
      old(999_999_999_999_999),
    );
  });

  it("verifies events whose amounts pass 2^53 micro-units, and sees them edited by one", () => {
    const db = migrated();
    const log = new AuditLog(db);
    const big = 9_223_372_036_854_775_807n;
    log.append({ ...entry(1), amount: big }, 1_700_000_000_001);
    log.append({ ...entry(2), amount: big - 1n }, 1_700_000_000_002);
    expect(verifyChain(db)).toMatchObject({ ok: true, events: 2 });
    db.exec("DROP TRIGGER audit_event_no_update");
    db.prepare("UPDATE audit_event SET amount = ? WHERE seq = 2").run(big - 2n);
    expect(verifyChain(db)).toMatchObject({ ok: false, firstBroken: { seq: 2 } });
  });

  it("makes a plain UPDATE or DELETE of an event throw, leaving the chain intact", () => {
    const db = withEvents(3);
    expect(() => db.prepare("UPDATE audit_event SET amount = 1 WHERE seq = 2").run()).toThrow(
      /immutable/,
    );
    expect(() => db.prepare("DELETE FROM audit_event WHERE seq = 2").run()).toThrow(/immutable/);
    expect(row(db, 2).amount).toBe(2_500_000n);
    expect(verifyChain(db)).toMatchObject({
      ok: true,
      events: 3,
      head: expect.stringMatching(/^[0-9a-f]{64}$/),
    });
  });

  it("detects an event edited behind the store's back, at that event", () => {
    const db = withEvents(5);
    db.exec("DROP TRIGGER audit_event_no_update");
    db.prepare("UPDATE audit_event SET amount = amount + 1 WHERE seq = 3").run();
    const report = verifyChain(db);
    expect(report.ok).toBe(false);
    expect(report.firstBroken?.seq).toBe(3);
    expect(report.firstBroken?.problem).toMatch(/edited/);
    expect(report.events).toBe(3);
  });

  it("detects an edit whose own hash was recomputed, at the next event", () => {
    const db = withEvents(5);
    db.exec("DROP TRIGGER audit_event_no_update");
    const { hash: _old, ...fields } = row(db, 3);
    const forged = { ...fields, amount: 0n };
    const prev = row(db, 2).hash;
    db.prepare("UPDATE audit_event SET amount = ?, hash = ? WHERE seq = 3").run(
      0,
      linkHash(prev, forged),
    );
    const report = verifyChain(db);
    expect(report.ok).toBe(false);
    expect(report.firstBroken?.seq).toBe(4);
  });

  it("detects a deleted middle event, at the next seq", () => {
    const db = withEvents(5);
    db.exec("DROP TRIGGER audit_event_no_delete");
    db.prepare("DELETE FROM audit_event WHERE seq = 3").run();
    const report = verifyChain(db);
    expect(report.ok).toBe(false);
    expect(report.firstBroken?.seq).toBe(4);
    expect(report.firstBroken?.problem).toMatch(/removed/);
  });

  it("keeps chaining across AuditLog instances (a restart)", () => {
    const db = withEvents(2);
    expect(new AuditLog(db).append(entry(3), 1_700_000_000_003)).toBe(3);
    expect(verifyChain(db)).toMatchObject({
      ok: true,
      events: 3,
      head: expect.stringMatching(/^[0-9a-f]{64}$/),
    });
  });
});
