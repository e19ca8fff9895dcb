/**
 * `npm run bench:engine`: what the engine library's go-live middleware costs per request with
 * the pushed state (decided in-process), against a CheckGoLive round trip per request over
 * grpc-js to a sidecar process, in the same run. Target: at least 50 times cheaper, and under
 * 5 us per request. Writes bench/results/engine-middleware.json.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import type { ServerResponse } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  createEngine,
  ExecutionClass,
  type ExpressLikeRequest,
  GoLiveService,
} from "../packages/engine/src/index.js";
import { startSidecar } from "./processes.js";
import { percentile } from "./stats.js";

const TOKEN = "bench-operator-token";
const REPS = 7;
const PER_REP = 200_000;
const ROUND_TRIPS = 5_000;

/** A route table of the size an engine has: a dozen routes, the asked one near the end. */
const TABLE = {
  "GET /health": "EXEMPT",
  "GET /metrics": "EXEMPT",
  "GET /deals": "PROD",
  "GET /deals/:id": "PROD",
  "POST /deals": "PROD",
  "POST /deals/:id/quote": "PROD",
  "POST /deals/:id/cancel": "PROD",
  "/sandbox/*": "EXEMPT",
  "GET /buyers/:id": "PROD",
  "POST /buyers/:id/match": "PROD_EXEC",
  "POST /deals/:id/execute": "PROD_EXEC",
} as const;

function median(values: number[]): number {
  return percentile(
    [...values].sort((a, b) => a - b),
    50,
  );
}

async function main(): Promise<void> {
  const dataDir = mkdtempSync(join(tmpdir(), "govd-bench-engine-"));
  const sidecar = await startSidecar({ dataDir, token: TOKEN });
  const govd = createEngine({ address: `127.0.0.1:${sidecar.port}` });
  try {
    await govd.client.call(
      GoLiveService.method.enable,
      { actor: "bench", reason: "engine middleware benchmark" },
      { token: TOKEN },
    );
    await govd.ready();
    while (!govd.decide("PROD_EXEC").allowed) await new Promise((r) => setTimeout(r, 1));

    // In-process: the Express middleware on an allowed PROD_EXEC request, next() called.
    const middleware = govd.express(TABLE);
    const req = {
      method: "POST",
      url: "/deals/d-1717/execute",
      originalUrl: "/deals/d-1717/execute",
    } as ExpressLikeRequest;
    const res = {} as ServerResponse;
    let passed = 0;
    const next = () => {
      passed++;
    };
    const perRequestUs: number[] = [];
    for (let rep = 0; rep < REPS + 1; rep++) {
      const start = performance.now();
      for (let i = 0; i < PER_REP; i++) middleware(req, res, next);
      const us = ((performance.now() - start) * 1000) / PER_REP;
      if (rep > 0) perRequestUs.push(us); // the first repetition warms the JIT
    }
    if (passed !== PER_REP * (REPS + 1)) throw new Error("the middleware blocked a request");

    // Round trip: one CheckGoLive per request, one at a time, over the same grpc-js channel.
    const rtt: number[] = [];
    for (let i = 0; i < ROUND_TRIPS + 500; i++) {
      const start = performance.now();
      const answer = await govd.client.call(GoLiveService.method.checkGoLive, {
        executionClass: ExecutionClass.PROD_EXEC,
      });
      const us = (performance.now() - start) * 1000;
      if (!answer.allowed) throw new Error("CheckGoLive denied");
      if (i >= 500) rtt.push(us);
    }
    rtt.sort((a, b) => a - b);
    const inProcess = median(perRequestUs);
    const roundTrip = percentile(rtt, 50);
    const result = {
      at: new Date().toISOString(),
      node: process.version,
      inProcessUsPerRequest: { median: inProcess, reps: perRequestUs, requestsPerRep: PER_REP },
      checkGoLiveRoundTripUs: { p50: roundTrip, p99: percentile(rtt, 99), n: rtt.length },
      ratio: roundTrip / inProcess,
      targets: { ratioAtLeast: 50, inProcessUsBelow: 5 },
    };
    mkdirSync("bench/results", { recursive: true });
    writeFileSync("bench/results/engine-middleware.json", `${JSON.stringify(result, null, 2)}\n`);
    const f = (n: number) => n.toFixed(3);
    console.log(
      `in-process middleware (Express, pushed state): ${f(inProcess)} us/request (median of ${REPS} x ${PER_REP})`,
    );
    console.log(
      `CheckGoLive round trip over grpc-js: p50 ${f(roundTrip)} us, p99 ${f(result.checkGoLiveRoundTripUs.p99)} us (n=${rtt.length})`,
    );
    console.log(
      `ratio: ${result.ratio.toFixed(0)}x cheaper (target >= 50x; in-process target < 5 us: ${inProcess < 5 ? "met" : "not met"})`,
    );
  } finally {
    govd.close();
    await sidecar.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

await main();
