/** Idempotency keys: kept in arrival order, pruned by age, and carried across migration 5. */
import { Code } from "@connectrpc/connect";
import { afterEach, describe, expect, it } from "vitest";
import { GoLiveService } from "../gen/governance/v1/golive_pb.js";
import { HeimdallService } from "../gen/governance/v1/heimdall_pb.js";
import { RiskService } from "../gen/governance/v1/risk_pb.js";
import { AuditLog } from "../src/store/audit-log.js";
import { type Db, migrateTo } from "../src/store/database.js";
import { rejects } from "./support/expect-error.js";
import { type RunningSidecar, startSidecar, TOKEN } from "./support/sidecar.js";
import { openTempStore } from "./support/temp-store.js";

const DAY = 86_400_000;
const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

async function sidecar(): Promise<RunningSidecar> {
  const s = await startSidecar();
  cleanup.push(() => s.stop());
  return s;
}

/** An operator write with its own correlation_id (answered once per id). */
const engage = (s: RunningSidecar, correlationId: string, reason = "drill") =>
  s.grpc.call(
    GoLiveService,
    "engageKillSwitch",
    { actor: "ops", reason, correlationId },
    { token: TOKEN },
  );

const keys = (db: Db) =>
  db
    .prepare<[], { correlation_id: string }>("SELECT correlation_id FROM idempotency ORDER BY id")
    .all()
    .map((r) => r.correlation_id);

/**
 * Every remembered key of a store at the latest version: those on audit events (in their order)
 * and then those of the table (in arrival order).
 */
const remembered = (db: Db) =>
  db
    .prepare<[], { scope: string; correlation_id: string }>(
      `SELECT call_scope AS scope, correlation_id FROM audit_event
        WHERE call_scope IS NOT NULL ORDER BY seq`,
    )
    .all()
    .concat(
      db
        .prepare<[], { scope: string; correlation_id: string }>(
          "SELECT method AS scope, correlation_id FROM idempotency ORDER BY id",
        )
        .all(),
    );

describe("idempotency keys", () => {
  it("are pruned after the retention (7 days) and only then, oldest first", async () => {
    const s = await sidecar();
    await engage(s, "old-1");
    await engage(s, "old-2");
    s.clock.advance(3 * DAY);
    await engage(s, "mid");
    s.clock.advance(4 * DAY + 1);
    await engage(s, "new");
    s.sidecar.sweep();
    expect(remembered(s.db).map((k) => k.correlation_id)).toEqual(["mid", "new"]);
    // A pruned id is a new request again; a kept one still gets its first answer.
    await rejects(engage(s, "mid", "another reason"), Code.AlreadyExists, /correlation_id mid/);
    await engage(s, "old-1", "another reason");
    expect(remembered(s.db).map((k) => k.correlation_id)).toEqual(["mid", "new", "old-1"]);
  });

  it("never prunes a key younger than the retention, even after the clock stepped back", async () => {
    const s = await sidecar();
    await engage(s, "first");
    s.clock.advance(-DAY); // a clock correction: this key is stored after, but older
    await engage(s, "older-after");
    s.clock.advance(7 * DAY + DAY / 2); // "older-after" is past the retention, "first" not
    s.sidecar.sweep();
    expect(remembered(s.db).map((k) => k.correlation_id)).toEqual(["first", "older-after"]);
    s.clock.advance(DAY);
    s.sidecar.sweep();
    expect(remembered(s.db).map((k) => k.correlation_id)).toEqual([]);
  });
});

describe("idempotency keys after the clock jumped ahead", () => {
  it("do not let a key stamped in the future hold back the pruning of the keys after it", async () => {
    const s = await sidecar();
    await engage(s, "before");
    s.clock.advance(365 * DAY); // the clock jumps a year ahead, then is corrected
    await engage(s, "from-the-future");
    s.clock.advance(-365 * DAY + 60_000);
    await engage(s, "after");
    s.clock.advance(7 * DAY + 120_000);
    await engage(s, "young");
    s.sidecar.sweep();
    expect(remembered(s.db).map((k) => k.correlation_id)).toEqual(["young"]);
  });
});

/** A store at an older schema version, and a statement that writes keys as that version did. */
function oldStore(version: number) {
  const store = openTempStore(version);
  cleanup.push(() => store.remove());
  const insert = store.db.prepare(
    "INSERT INTO idempotency (method, correlation_id, request_hash, response, created_ms) VALUES (?, ?, ?, ?, ?)",
  );
  return { db: store.db, insert };
}

describe("migration 5 (idempotency keys in arrival order)", () => {
  it("keeps every key with its answer, up and down", () => {
    const { db, insert } = oldStore(4);
    const rows = [
      ["Reserve", "b", Buffer.from([1]), Buffer.from([9, 9]), 30],
      ["Reserve", "a", Buffer.from([2]), Buffer.from([8]), 10],
      ["Settle", "a", Buffer.from([3]), Buffer.from([]), 20],
    ] as const;
    for (const r of rows) insert.run(...r);
    const all = () =>
      db
        .prepare(
          "SELECT method, correlation_id, request_hash, response, created_ms FROM idempotency ORDER BY created_ms",
        )
        .raw()
        .all();
    const before = all();
    migrateTo(db, 5);
    expect(all()).toEqual(before);
    // In arrival order: ids follow the keys' ages.
    expect(keys(db)).toEqual(["a", "a", "b"]);
    migrateTo(db, 4);
    expect(all()).toEqual(before);
  });
});

describe("keys are scoped by service and method", () => {
  it("lets UpsertPolicy of two levers use the same correlation_id", async () => {
    const s = await sidecar();
    const who = { actor: "ops", reason: "tune", correlationId: "upsert-1" };
    const risk = await s.grpc.call(
      RiskService,
      "upsertPolicy",
      {
        engine: "WHOLESALE",
        maxDailyLoss: "200",
        maxDailyExposure: "1200",
        maxOpenRisk: "500",
        maxActionsPerDay: 5000,
        enabled: true,
        ...who,
      },
      { token: TOKEN },
    );
    const heimdall = await s.grpc.call(
      HeimdallService,
      "upsertPolicy",
      { domain: "BUYER_MATCH", minConfidenceProd: 0.9, minSandboxTrials: 50, ...who },
      { token: TOKEN },
    );
    expect(risk.policy?.maxDailyExposure).toBe("1200.00");
    expect(heimdall.policy?.domain).toBe("BUYER_MATCH");
    expect(
      remembered(s.db)
        .filter((k) => k.correlation_id === "upsert-1")
        .map((k) => k.scope),
    ).toEqual([
      "governance.v1.RiskService/UpsertPolicy",
      "governance.v1.HeimdallService/UpsertPolicy",
    ]);
  });
});

describe("migration 6 (keys scoped by service and method)", () => {
  it("places every old key under its service, UpsertPolicy by its audit event, and goes back", () => {
    const { db, insert } = oldStore(5);
    const audit = new AuditLog(db);
    for (const [lever, id] of [
      ["heimdall", "u-h"],
      ["regression", "u-r"],
    ] as const) {
      audit.append(
        {
          lever,
          action: "POLICY_UPSERT",
          subject: "X",
          ok: true,
          reason: "",
          actor: "a",
          correlationId: id,
        },
        1,
      );
    }
    const rows = [
      ["Reserve", "a"],
      ["EngageKillSwitch", "b"],
      ["RecordKpi", "c"],
      ["Recommend", "d"],
      ["UpsertPolicy", "u-h"],
      ["UpsertPolicy", "u-r"],
      ["UpsertPolicy", "orphan"],
    ] as const;
    for (const [m, id] of rows) insert.run(m, id, Buffer.from([1]), Buffer.from([2]), 5);
    const all = () =>
      db.prepare("SELECT method, correlation_id FROM idempotency ORDER BY id").raw().all();
    migrateTo(db, 6);
    expect(all()).toEqual([
      ["governance.v1.RiskService/Reserve", "a"],
      ["governance.v1.GoLiveService/EngageKillSwitch", "b"],
      ["governance.v1.RegressionService/RecordKpi", "c"],
      ["governance.v1.HeimdallService/Recommend", "d"],
      ["governance.v1.HeimdallService/UpsertPolicy", "u-h"],
      ["governance.v1.RegressionService/UpsertPolicy", "u-r"],
    ]);
    // Two services' keys under one id: going back keeps one.
    insert.run(
      "governance.v1.RiskService/UpsertPolicy",
      "u-h",
      Buffer.from([1]),
      Buffer.from([2]),
      6,
    );
    migrateTo(db, 5);
    expect(all()).toEqual([
      ["Reserve", "a"],
      ["EngageKillSwitch", "b"],
      ["RecordKpi", "c"],
      ["Recommend", "d"],
      ["UpsertPolicy", "u-h"],
      ["UpsertPolicy", "u-r"],
    ]);
  });
});
