/**
 * Central's event ingest, measured: central in this process on a fresh SQLite store (or
 * `--store postgres://...`), S stand-in sidecars in a process of their own (or with
 * `--in-process` on central's event loop) each shipping N chain-linked risk events in batches
 * of B over real gRPC, one batch in flight per sidecar (as the shipper does). Reports events
 * ingested per second and the batch round trip (p50/p99), and checks the fleet ledger booked
 * every RESERVE once.
 *
 *   node dist/bench/ship-ingest.js [--sidecars 8] [--events 20000] [--batch 500] [--store URL] [--in-process]
 *
 * A PostgreSQL `--store` must be an empty database of its own: central's tables are made there.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { ShippedEventSchema } from "../gen/governance/v1/sync_pb.js";
import { systemClock, utcDay } from "../src/clock.js";
import { createCentral } from "../src/server/central.js";
import { GENESIS_HASH, linkHash } from "../src/store/audit-log.js";
import { seedCentral } from "../src/sync/central/central-entities.js";
import { CentralStore } from "../src/sync/central/central-store.js";
import { fleetLedgerOf } from "../src/sync/central/event-ingest.js";
import { SyncClient } from "../src/sync/follower/sync-client.js";
import { shippedEventOf } from "../src/sync/shipped-event.js";
import { clientCredentials } from "../src/sync/tls/client-credentials.js";
import { latencySummary } from "./stats.js";

const arg = (name: string, fallback: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? (process.argv[i + 1] ?? fallback) : fallback;
};
const SIDECARS = Number(arg("sidecars", "8"));
const EVENTS = Number(arg("events", "20000"));
const BATCH = Number(arg("batch", "500"));
const STORE = arg("store", "");
/** The stand-ins on central's own event loop (the figure is then a floor), as before. */
const IN_PROCESS = process.argv.includes("--in-process");

type Shipped = MessageInitShape<typeof ShippedEventSchema>;

/** One sidecar's trail: RESERVE of 1.00 and SETTLE of 0.25, alternating, linked. */
function trail(count: number): Shipped[] {
  let prev = GENESIS_HASH;
  const now = Date.now();
  const out: Shipped[] = [];
  for (let seq = 1; seq <= count; seq++) {
    const reserve = seq % 2 === 1;
    const row = {
      seq,
      time_ms: now,
      lever: "risk",
      action: reserve ? "RESERVE" : "SETTLE",
      subject: "WHOLESALE",
      amount: reserve ? 1_000_000n : 250_000n,
      ok: 1,
      reason: "bench",
      actor: "engine",
      correlation_id: `c-${seq}`,
      reservation_id: `r-${Math.ceil(seq / 2)}`,
      metadata: '{"deal":"bench"}',
    };
    const hash = linkHash(prev, row);
    out.push(shippedEventOf({ ...row, hash }));
    prev = hash;
  }
  return out;
}

/** Ships `events` as S stand-in sidecars to central's gRPC port; the batch round trips (ms). */
async function shipAll(grpcPort: number, events: Shipped[]): Promise<number[]> {
  const rounds: number[] = [];
  await Promise.all(
    Array.from({ length: SIDECARS }, async (_, i) => {
      const sidecarId = `bench-${i}-${Date.now()}`;
      const endpoint = clientCredentials({
        central: `127.0.0.1:${grpcPort}`,
        allowRemote: false,
        sidecarId,
      });
      const client = new SyncClient(endpoint);
      let prevHash = "";
      for (let at = 0; at < events.length; at += BATCH) {
        const batch = events.slice(at, at + BATCH);
        const t = performance.now();
        await client.shipEvents({
          sidecarId,
          events: batch,
          prevHash,
          headSeq: BigInt(events.length),
          headHash: events.at(-1)?.hash ?? "",
        });
        rounds.push(performance.now() - t);
        prevHash = batch.at(-1)?.hash ?? "";
      }
      client.close();
      endpoint.close();
    }),
  );
  return rounds;
}

/**
 * The stand-ins in a process of their own, as real sidecars are: their trail is built before
 * the clock starts; they print their round trips and the seconds from first to last ship.
 */
async function standIns(grpcPort: number): Promise<void> {
  const events = trail(EVENTS);
  const started = performance.now();
  const rounds = await shipAll(grpcPort, events);
  const seconds = (performance.now() - started) / 1000;
  process.stdout.write(`${JSON.stringify({ seconds, rounds })}\n`);
}

/** Runs the stand-ins' process against `grpcPort` and waits for its figures. */
function shipFromChild(grpcPort: number): Promise<{ seconds: number; rounds: number[] }> {
  const args = [fileURLToPath(import.meta.url), "--ship-to", String(grpcPort)];
  args.push("--sidecars", String(SIDECARS), "--events", String(EVENTS), "--batch", String(BATCH));
  const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "inherit"] });
  let out = "";
  child.stdout.on("data", (d: Buffer) => {
    out += d.toString();
  });
  return new Promise((resolve, reject) => {
    child.on("error", reject);
    child.on("exit", (code) => {
      if (code !== 0) reject(new Error(`the stand-ins' process exited with ${code}`));
      else resolve(JSON.parse(out.trim()) as { seconds: number; rounds: number[] });
    });
  });
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "govd-ship-bench-"));
  const location = STORE || `sqlite:${join(dir, "central.db")}`;
  const { store } = await CentralStore.open(location, systemClock);
  await seedCentral(store);
  const central = createCentral({ store, token: "bench", replica: "bench", heartbeatMs: 1000 });
  const { grpcPort } = await central.listen();
  let seconds: number;
  let rounds: number[];
  // Central's CPU (this process's, both threads and all): per event, the figure that does not
  // depend on how the stand-ins share the cores with it.
  const cpu0 = process.cpuUsage();
  if (IN_PROCESS) {
    const events = trail(EVENTS);
    const started = performance.now();
    rounds = await shipAll(grpcPort, events);
    seconds = (performance.now() - started) / 1000;
  } else {
    ({ seconds, rounds } = await shipFromChild(grpcPort));
  }
  const total = SIDECARS * EVENTS;
  const cpu = process.cpuUsage(cpu0);
  const cpuUsPerEvent = (cpu.user + cpu.system) / total;
  const ledger = await fleetLedgerOf(store.db, utcDay(Date.now()));
  const global = ledger.find((r) => r.engine === "GLOBAL");
  const expected = (SIDECARS * Math.ceil(EVENTS / 2)) as number;
  const { p50, p99 } = latencySummary(rounds);
  console.log(
    `${STORE ? "PostgreSQL" : "SQLite"}: ${total} events from ${SIDECARS} sidecars in batches of ${BATCH}` +
      ` (stand-ins ${IN_PROCESS ? "in central's process" : "in a process of their own"}): ` +
      `${Math.round(total / seconds)} events/s; batch round trip p50 ${p50.toFixed(1)} ms, p99 ${p99.toFixed(1)} ms; ` +
      `central's CPU ${cpuUsPerEvent.toFixed(1)} us per event${IN_PROCESS ? " (the stand-ins' included)" : ""}`,
  );
  console.log(
    `fleet ledger GLOBAL actions ${global?.actions ?? 0} (expected ${expected}): ${global?.actions === expected ? "ok" : "MISMATCH"}`,
  );
  await central.close();
  await store.close();
  rmSync(dir, { recursive: true, force: true });
  if (global?.actions !== expected) process.exitCode = 1;
}

const shipTo = arg("ship-to", "");
if (shipTo) await standIns(Number(shipTo));
else await main();
