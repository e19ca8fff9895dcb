/**
 * kill -9 under load: a real `govd serve` process is killed while engines reserve as fast as
 * they can, then started again on the same store. Every answered reservation is there, none is
 * booked twice (retries with the same correlation_id get the first answer), the ledgers equal
 * the sum of the events, and the audit chain verifies. Bounded to a few seconds a round.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { launcherNodeFlags } from "../bench/processes.js";
import { RiskService } from "../gen/governance/v1/risk_pb.js";
import { openDatabase } from "../src/store/database.js";
import { type Caller, grpcCaller } from "./support/callers.js";
import { freePort, type Program, startProgram, waitForOk } from "./support/program.js";
import { enableGoLive, TOKEN } from "./support/sidecar.js";

const dir = mkdtempSync(join(tmpdir(), "govd-kill-"));
const running: Program[] = [];
afterAll(() => {
  for (const p of running) p.signal("SIGKILL");
  rmSync(dir, { recursive: true, force: true });
});

/** Starts the installed program's way: node with the launcher's flags, on free ports. */
async function start(): Promise<{ program: Program; grpc: Caller }> {
  const [grpcPort, httpPort] = [await freePort(), await freePort()];
  const program = startProgram(
    "node",
    [...launcherNodeFlags("serve"), "dist/src/cli/govd.js", "serve"],
    {
      GOVD_DATA_DIR: dir,
      GOVD_GRPC_PORT: String(grpcPort),
      GOVD_HTTP_PORT: String(httpPort),
      GOVD_ADMIN_TOKEN: TOKEN,
      GOVD_LOG_LEVEL: "warn",
    },
  );
  running.push(program);
  await waitForOk(`http://127.0.0.1:${httpPort}/readyz`, 30_000, program);
  return { program, grpc: grpcCaller(`127.0.0.1:${grpcPort}`) };
}

/** Reserves from `engines` loops until stopped; returns the ids of the answered reservations. */
function load(grpc: Caller, round: number, engines = 4) {
  const answered = new Map<string, string>();
  const sent: string[] = [];
  let stop = false;
  const loops = Array.from({ length: engines }, async (_, e) => {
    for (let i = 0; !stop; i++) {
      const correlationId = `r${round}-e${e}-${i}`;
      sent.push(correlationId);
      try {
        const r = await grpc.call(RiskService, "reserve", {
          engine: e % 2 ? "WHOLESALE" : "CAPITAL",
          amount: "0.01",
          correlationId,
        });
        if (r.allowed) answered.set(correlationId, r.reservationId);
      } catch {
        return; // the process is gone
      }
    }
  });
  return {
    answered,
    sent,
    stop: async () => {
      stop = true;
      await Promise.all(loops);
    },
  };
}

describe("kill -9 under load", () => {
  it("loses no answered reservation and books none twice, round after round", async () => {
    let current = await start();
    await enableGoLive(current.grpc);
    for (let round = 0; round < 2; round++) {
      const run = load(current.grpc, round);
      await new Promise((r) => setTimeout(r, 700));
      current.program.signal("SIGKILL");
      await current.program.exited;
      await run.stop();
      current.grpc.close();
      expect(run.answered.size, `round ${round}`).toBeGreaterThan(10);

      // Started again on the same store: every answered reservation is there, and a retry of
      // every call sent (answered or cut off) books nothing twice.
      current = await start();
      const engineOf = (id: string) =>
        Number(id.split("-e")[1]?.split("-")[0]) % 2 ? "WHOLESALE" : "CAPITAL";
      for (const [id, reservationId] of run.answered) {
        const retry = await current.grpc.call(RiskService, "reserve", {
          engine: engineOf(id),
          amount: "0.01",
          correlationId: id,
        });
        expect(retry.reservationId, id).toBe(reservationId);
      }
      // Calls cut off by the kill, retried: each books at most once, whatever the kill left.
      for (const id of run.sent.filter((id) => !run.answered.has(id))) {
        await current.grpc.call(RiskService, "reserve", {
          engine: engineOf(id),
          amount: "0.01",
          correlationId: id,
        });
      }

      const db = openDatabase(join(dir, "sidecar.db"), { readonly: true });
      try {
        const twice = db
          .prepare(
            "SELECT correlation_id FROM audit_event WHERE action = 'RESERVE' GROUP BY correlation_id HAVING count(*) > 1",
          )
          .all();
        expect(twice).toEqual([]);
        // Each answered reservation's decision is in the trail (the one row a Reserve writes).
        const missing = [...run.answered.values()].filter(
          (id) =>
            !db
              .prepare("SELECT 1 FROM audit_event WHERE action = 'RESERVE' AND reservation_id = ?")
              .get(id),
        );
        expect(missing).toEqual([]);
        // The ledgers the restarted sidecar rebuilt equal what the trail's Reserves add up to.
        const ledger = await current.grpc.call(RiskService, "getLedgerToday", {});
        const engines = ledger.entries.filter((e) => e.engine !== "GLOBAL" && e.actions > 0);
        const booked = [
          engines.reduce((t, e) => t + Math.round(Number(e.exposureUsed) * 1e6), 0),
          engines.reduce((t, e) => t + e.actions, 0),
        ];
        const events = db
          .prepare("SELECT sum(amount), count(*) FROM audit_event WHERE action = 'RESERVE'")
          .raw()
          .get();
        expect(booked).toEqual(events);
      } finally {
        db.close();
      }
      const verify = spawnSync(
        "node",
        ["dist/src/cli/govd.js", "audit", "verify", "--data-dir", dir],
        {
          encoding: "utf8",
        },
      );
      expect(verify.stdout).toMatch(/audit chain intact/);
    }
    current.program.signal("SIGTERM");
    await current.program.exited;
    current.grpc.close();
  });
});
