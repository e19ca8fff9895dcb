/**
 * A running sidecar folds KPI outcomes into kpi_event and tripwire_state, and sandbox trials into
 * heimdall_scorecard, off the decision path: a RecordKpi or RecordSandboxTrial writes its audit
 * event alone, the fold every second moves them into the tables, and a clean stop folds the rest.
 * A fold changes no schema: a CREATE or DROP, even of a TEMP table, would make SQLite prepare
 * every statement of the connection again, the next decisions' included.
 */
import { rmSync } from "node:fs";
import { afterEach, expect, it } from "vitest";
import { HeimdallService } from "../gen/governance/v1/heimdall_pb.js";
import { RegressionService } from "../gen/governance/v1/regression_pb.js";
import { RiskService } from "../gen/governance/v1/risk_pb.js";
import { eventually } from "./support/eventually.js";
import { enableGoLive, type RunningSidecar, startSidecar } from "./support/sidecar.js";

let running: RunningSidecar | undefined;
afterEach(async () => {
  await running?.stop();
  running = undefined;
});

it("folds a sidecar's KPI outcomes and sandbox trials every second and on a clean stop", async () => {
  running = await startSidecar();
  const { db, grpc } = running;
  const count = () =>
    db
      .prepare(
        "SELECT count(*) FROM kpi_event WHERE domain = 'WHOLESALE' AND metric = 'contract_rate'",
      )
      .pluck()
      .get() as number;
  const seen = () =>
    db
      .prepare(
        "SELECT events_seen FROM tripwire_state WHERE domain = 'WHOLESALE' AND metric = 'contract_rate'",
      )
      .pluck()
      .get() as number | undefined;
  const record = (i: number) =>
    grpc.call(RegressionService, "recordKpi", {
      domain: "WHOLESALE",
      metric: "contract_rate",
      success: i % 3 !== 0,
      value: i,
      correlationId: `kpi-${i}`,
    });
  const trials = () =>
    db
      .prepare("SELECT sum(trials) FROM heimdall_scorecard WHERE domain = 'BUYER_MATCH'")
      .pluck()
      .get() as number | null;
  const trial = (i: number) =>
    grpc.call(HeimdallService, "recordSandboxTrial", {
      domain: "BUYER_MATCH",
      success: i % 2 === 0,
      confidence: 0.8,
      correlationId: `trial-${i}`,
    });
  for (let i = 0; i < 30; i++) await record(i);
  for (let i = 0; i < 4; i++) await trial(i);
  expect(db.prepare("SELECT count(*) FROM audit_event WHERE lever = 'kpi'").pluck().get()).toBe(30);
  await eventually("the fold to move 30 outcomes into the tables", () => count() === 30, 5_000);
  expect(seen()).toBe(30);
  await eventually("the fold to book 4 sandbox trials", () => trials() === 4, 5_000);
  const state = await grpc.call(RegressionService, "getState", { domain: "WHOLESALE" });
  const wire = state.states.find((s) => s.metric === "contract_rate");
  expect(wire?.eventsSeen).toBe(30n);

  for (let i = 30; i < 35; i++) await record(i);
  await trial(4);
  // A clean stop folds what the timer has not yet.
  grpc.close();
  await running.sidecar.close();
  expect(count()).toBe(35);
  expect(seen()).toBe(35);
  expect(trials()).toBe(5);
  expect(db.prepare("SELECT value FROM meta WHERE key = 'kpi_folded_seq'").pluck().get()).toBe(
    db.prepare("SELECT max(seq) FROM audit_event").pluck().get(),
  );
  db.close();
  rmSync(running.dir, { recursive: true, force: true });
  running = undefined;
});

it("folds risk decisions and KPI outcomes without changing the schema", async () => {
  running = await startSidecar();
  const { db, grpc } = running;
  await enableGoLive(grpc);
  const versions = () => [
    db.pragma("schema_version", { simple: true }),
    db.pragma("temp.schema_version", { simple: true }),
  ];
  const folded = (key: string) =>
    db.prepare("SELECT value FROM meta WHERE key = ?").pluck().get(key) as number;
  const head = () => db.prepare("SELECT max(seq) FROM audit_event").pluck().get() as number;
  const before = versions();
  for (let round = 0; round < 2; round++) {
    for (let i = 0; i < 3; i++) {
      const r = await grpc.call(RiskService, "reserve", {
        engine: "WHOLESALE",
        amount: "10.00",
        correlationId: `reserve-${round}-${i}`,
      });
      await grpc.call(RiskService, "settle", {
        reservationId: r.reservationId,
        realizedLoss: "1.00",
        correlationId: `settle-${round}-${i}`,
      });
      await grpc.call(RegressionService, "recordKpi", {
        domain: "WHOLESALE",
        metric: "contract_rate",
        success: i !== 1,
        value: i,
        correlationId: `kpi-${round}-${i}`,
      });
    }
    const to = head();
    await eventually(
      "the fold to reach the newest event",
      () => folded("risk_folded_seq") >= to && folded("kpi_folded_seq") >= to,
      5_000,
    );
  }
  expect(versions()).toEqual(before);
  // What the folds wrote: six settled reservations and their losses, six KPI outcomes.
  expect(
    db.prepare("SELECT count(*) FROM risk_reservation WHERE status = 'SETTLED'").pluck().get(),
  ).toBe(6);
  expect(
    db
      .prepare(
        "SELECT realized_loss FROM risk_ledger WHERE engine = 'WHOLESALE' AND realized_loss > 0",
      )
      .pluck()
      .get(),
  ).toBe(6_000_000);
  expect(db.prepare("SELECT count(*) FROM kpi_event").pluck().get()).toBe(6);
});
