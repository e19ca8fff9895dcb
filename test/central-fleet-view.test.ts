/**
 * Central's fleet view, its `--wait` and its refusals, against a real `govd central` process:
 * ListSidecars and `govctl fleet` (table and JSON) show when each sidecar was last heard
 * (moving with heartbeats while it is connected; once it stopped, not connected, last heard
 * fixed at the stop and its staleness growing) and its last NACK with the error; `--wait` on
 * `golive enable/disable`, `heimdall upsert` and `regression upsert` prints "N/N acked in X ms"
 * and exits 0 once every connected sidecar acked, and names a sidecar that did not and exits 1;
 * every decision RPC (Reserve, Settle, Release, RecordSandboxTrial, Recommend,
 * RequireProdEligible, Evaluate, RecordKpi, CheckGoLive, WatchGoLive) is refused with
 * UNIMPLEMENTED and the src's sentence, whatever the request or token, over gRPC and Connect,
 * and writes nothing.
 */
import { rmSync } from "node:fs";
import { create, type DescService, fromBinary, toBinary } from "@bufbuild/protobuf";
import { type Timestamp, timestampMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { afterAll, describe, expect, it } from "vitest";
import { ExecutionClass } from "../gen/governance/v1/common_pb.js";
import {
  GoLiveService,
  type WatchGoLiveRequest,
  WatchGoLiveRequestSchema,
  WatchGoLiveResponseSchema,
} from "../gen/governance/v1/golive_pb.js";
import { HeimdallService } from "../gen/governance/v1/heimdall_pb.js";
import { RegressionService } from "../gen/governance/v1/regression_pb.js";
import { RiskService } from "../gen/governance/v1/risk_pb.js";
import { type ListSidecarsResponse, SyncService } from "../gen/governance/v1/sync_pb.js";
import { type Caller, type CallOptions, connectJsonCaller } from "./support/callers.js";
import { eventually } from "./support/eventually.js";
import {
  type CentralProcess,
  type Follower,
  follow,
  startCentralProcess,
} from "./support/fleet.js";
import { govctl } from "./support/govctl.js";
import { TOKEN } from "./support/sidecar.js";

/** Central's heartbeat in these tests (startCentralProcess's default). */
const HEARTBEAT_MS = 200;

const processes: CentralProcess[] = [];
const followers: Follower[] = [];
afterAll(() => {
  for (const f of followers) f.stop();
  for (const p of processes) {
    p.caller.close();
    p.program.signal("SIGKILL");
    rmSync(p.dataDir, { recursive: true, force: true });
  }
});

async function startCentral(): Promise<CentralProcess> {
  const central = await startCentralProcess({ replica: "central-a", heartbeatMs: HEARTBEAT_MS });
  processes.push(central);
  return central;
}

function follower(central: CentralProcess, id: string, options: Parameters<typeof follow>[2]) {
  const f = follow(central.grpcAddress, id, options);
  followers.push(f);
  return f;
}

/** govctl against central as an operator. */
function govctlOn(central: CentralProcess) {
  return (...args: string[]) =>
    govctl(["--addr", central.grpcAddress, "--actor", "test-ops", ...args], {
      GOVD_ADMIN_TOKEN: TOKEN,
    });
}

type SidecarView = ListSidecarsResponse["sidecars"][number];

/** ListSidecars, by sidecar id, with the test's clock when it answered. */
async function fleetView(central: CentralProcess) {
  const res = await central.caller.call(SyncService, "listSidecars", {});
  const byId = new Map<string, SidecarView>(res.sidecars.map((s) => [s.sidecarId, s]));
  const of = (id: string): SidecarView => {
    const s = byId.get(id);
    if (!s) throw new Error(`no sidecar ${id} in the fleet view`);
    return s;
  };
  return { atMs: Date.now(), revision: res.revision, of };
}

function heardMs(t: Timestamp | undefined): number {
  if (!t) throw new Error("last_heard is not set");
  return timestampMs(t);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("central's fleet view", () => {
  it("shows last heard moving while connected, staleness growing once stopped, and the last NACK", async () => {
    const central = await startCentral();
    const live = follower(central, "sc-live", { engines: ["WHOLESALE"] });
    const gone = follower(central, "sc-gone", { engines: ["CAPITAL"] });
    const nacking = follower(central, "sc-nack", { ack: false, engines: ["NOTIFY"] });
    await Promise.all([live.reached(13n), gone.reached(13n), nacking.reached(13n)]);
    // sc-nack acks the snapshot (revision 13) by hand; it will refuse the next revision.
    await central.caller.call(SyncService, "ack", {
      sidecarId: "sc-nack",
      revision: 13n,
      digest: nacking.applied().digest,
    });
    await eventually("every sidecar at revision 13", async () => {
      const v = await fleetView(central);
      return ["sc-live", "sc-gone", "sc-nack"].every((id) => v.of(id).appliedRevision === 13n);
    });

    // Connected: heard within three heartbeats of now, by central's clock and by ours.
    const first = await fleetView(central);
    const firstLive = first.of("sc-live");
    expect(firstLive).toMatchObject({ connected: true, replica: "central-a", lag: 0n });
    expect(firstLive.engines).toEqual(["WHOLESALE"]);
    expect(firstLive.stalenessMs).toBeLessThanOrEqual(BigInt(3 * HEARTBEAT_MS));
    expect(Math.abs(first.atMs - heardMs(firstLive.lastHeard))).toBeLessThan(2_000);
    // ... and it moves with the heartbeats, staying fresh.
    await sleep(3 * HEARTBEAT_MS + 100);
    const later = await fleetView(central);
    const laterLive = later.of("sc-live");
    expect(heardMs(laterLive.lastHeard)).toBeGreaterThan(heardMs(firstLive.lastHeard));
    expect(laterLive.connected).toBe(true);
    expect(laterLive.stalenessMs).toBeLessThanOrEqual(BigInt(3 * HEARTBEAT_MS));
    expect(Math.abs(later.atMs - heardMs(laterLive.lastHeard))).toBeLessThan(2_000);

    // Stopped: not connected, last heard stays where its stream closed, staleness grows.
    const stopAtMs = Date.now();
    gone.stop();
    const stopped = await eventually("sc-gone shown as not connected", async () => {
      const v = await fleetView(central);
      return v.of("sc-gone").connected ? undefined : v;
    });
    const stoppedHeard = heardMs(stopped.of("sc-gone").lastHeard);
    // Last heard is when it was last heard alive (a heartbeat, or its stream closing).
    expect(stoppedHeard).toBeGreaterThanOrEqual(stopAtMs - 3 * HEARTBEAT_MS);
    expect(stoppedHeard).toBeLessThanOrEqual(stopped.atMs);
    expect(stopped.of("sc-gone")).toMatchObject({ replica: "", appliedRevision: 13n });
    await sleep(4 * HEARTBEAT_MS);
    const staler = await fleetView(central);
    const gOne = staler.of("sc-gone");
    expect(gOne.connected).toBe(false);
    expect(heardMs(gOne.lastHeard)).toBe(stoppedHeard);
    expect(gOne.stalenessMs).toBeGreaterThanOrEqual(
      stopped.of("sc-gone").stalenessMs + BigInt(4 * HEARTBEAT_MS - 50),
    );
    expect(gOne.stalenessMs).toBeGreaterThan(BigInt(3 * HEARTBEAT_MS));
    // Staleness is central's now minus last heard (the test's clock is central's: one host).
    expect(Math.abs(Number(gOne.stalenessMs) - (staler.atMs - stoppedHeard))).toBeLessThan(500);
    // The others are still fresh.
    expect(staler.of("sc-live").connected).toBe(true);
    expect(staler.of("sc-live").stalenessMs).toBeLessThanOrEqual(BigInt(3 * HEARTBEAT_MS));

    // A NACK: sc-nack refuses revision 14 (as a sidecar does, by the Ack call with an error).
    const run = govctlOn(central);
    const engaged = await run("killswitch", "engage", "--reason", "nack test");
    expect(engaged.code).toBe(0);
    await Promise.all([live.reached(14n), nacking.reached(14n)]);
    const error = "could not apply revision 14 (change): disk full";
    await central.caller.call(SyncService, "ack", {
      sidecarId: "sc-nack",
      revision: 14n,
      digest: "",
      error,
    });
    const nacked = await eventually("sc-live at 14", async () => {
      const v = await fleetView(central);
      return v.of("sc-live").appliedRevision === 14n ? v : undefined;
    });
    expect(nacked.revision).toBe(14n);
    expect(nacked.of("sc-nack")).toMatchObject({
      lastNackRevision: 14n,
      lastNackError: error,
      appliedRevision: 13n,
      lag: 1n,
      connected: true,
    });
    expect(nacked.of("sc-live")).toMatchObject({ lastNackRevision: 0n, lastNackError: "" });

    // The same in `govctl fleet`: last heard, staleness and the last NACK with its error.
    const fleet = await run("fleet");
    expect(fleet.code).toBe(0);
    expect(fleet.stderr).toBe("");
    const printedAtMs = Date.now();
    const row = (id: string) => {
      const line = fleet.stdout.split("\n").find((l) => l.startsWith(`${id} `));
      if (!line) throw new Error(`no row for ${id} in:\n${fleet.stdout}`);
      return line;
    };
    expect(fleet.stdout.split("\n")[0]).toMatch(
      /^sidecar\s+engines\s+applied\s+lag\s+connected\s+replica\s+last heard\s+staleness\s+last NACK\s+resync/,
    );
    const cells =
      /^(\S+)\s+(\S+)\s+(\d+)\s+(\d+)\s+(yes|no)\s+(\S+)\s+(\S+)\s+(\d+) ms\s+(.+?)\s{2,}/;
    const nackRow = cells.exec(row("sc-nack"));
    expect(nackRow?.slice(1, 7)).toEqual(["sc-nack", "NOTIFY", "13", "1", "yes", "central-a"]);
    expect(nackRow?.[9]).toBe(`14: ${error}`);
    expect(Math.abs(printedAtMs - Date.parse(nackRow?.[7] ?? ""))).toBeLessThan(5_000);
    expect(Number(nackRow?.[8])).toBeLessThanOrEqual(3 * HEARTBEAT_MS);
    const liveRow = cells.exec(row("sc-live"));
    expect(liveRow?.slice(1, 7)).toEqual(["sc-live", "WHOLESALE", "14", "0", "yes", "central-a"]);
    expect(liveRow?.[9]).toBe("-");
    const goneRow = cells.exec(row("sc-gone"));
    expect(goneRow?.slice(1, 7)).toEqual(["sc-gone", "CAPITAL", "13", "1", "no", "-"]);
    expect(Date.parse(goneRow?.[7] ?? "")).toBe(stoppedHeard);
    expect(Number(goneRow?.[8])).toBeGreaterThanOrEqual(Number(gOne.stalenessMs));
    expect(goneRow?.[9]).toBe("-");
    expect(fleet.stdout).toMatch(/central revision: 14; 2 of 3 sidecars connected/);

    // And in its JSON.
    const asJson = await run("--json", "fleet");
    expect(asJson.code).toBe(0);
    const doc = JSON.parse(asJson.stdout) as {
      sidecars: {
        sidecarId: string;
        lastHeard: string;
        stalenessMs: string;
        lastNackRevision: string;
        lastNackError: string;
        connected: boolean;
      }[];
    };
    const jsonNack = doc.sidecars.find((s) => s.sidecarId === "sc-nack");
    expect(jsonNack).toMatchObject({ lastNackRevision: "14", lastNackError: error });
    const jsonGone = doc.sidecars.find((s) => s.sidecarId === "sc-gone");
    expect(jsonGone?.connected).toBe(false);
    expect(Date.parse(jsonGone?.lastHeard ?? "")).toBe(stoppedHeard);
    expect(Number(jsonGone?.stalenessMs)).toBeGreaterThanOrEqual(Number(gOne.stalenessMs));
    expect(live.problems).toEqual([]);
  });
});

describe("--wait on central's go-live and policy writes", () => {
  it("prints N/N acked and exits 0 once every connected sidecar acked; names one that did not and exits 1", async () => {
    const central = await startCentral();
    const run = govctlOn(central);
    const a = follower(central, "sc-a", { engines: ["WHOLESALE"] });
    const b = follower(central, "sc-b", { engines: ["CAPITAL"] });
    await Promise.all([a.reached(13n), b.reached(13n)]);

    /** Each write and the line it prints before the wait's report. */
    const writes = (round: number): { args: string[]; prints: RegExp }[] => [
      {
        args: ["golive", "enable", "--reason", `launch ${round}`],
        prints: /go-live:\s+ENABLED/,
      },
      {
        args: ["golive", "disable", "--reason", `pause ${round}`],
        prints: /go-live:\s+disabled/,
      },
      {
        args: [
          "heimdall",
          "upsert",
          "BUYER_MATCH",
          "--min-sandbox-trials",
          String(40 + round),
          "--reason",
          `trials ${round}`,
        ],
        prints: new RegExp(`policy BUYER_MATCH: .*min trials ${40 + round}`),
      },
      {
        args: [
          "regression",
          "upsert",
          "WHOLESALE",
          "contract_rate",
          "--max-drop-fraction",
          `0.${25 + round}`,
          "--reason",
          `drop ${round}`,
        ],
        prints: new RegExp(`tripwire WHOLESALE/contract_rate: .*max drop 0\\.${25 + round}`),
      },
    ];

    let revision = 13;
    for (const w of writes(0)) {
      revision += 1;
      const r = await run(...w.args, "--wait", "5s");
      expect(r.stderr, w.args.join(" ")).toBe("");
      expect(r.code, w.args.join(" ")).toBe(0);
      expect(r.stdout).toMatch(w.prints);
      expect(r.stdout).toMatch(
        new RegExp(`(^|\\n)2/2 acked in \\d+ ms \\(revision ${revision}\\)`),
      );
      expect(r.stdout).toMatch(new RegExp(`sc-a\\s+acked\\s+\\d+ ms\\s+${revision}\\n`));
      expect(r.stdout).toMatch(new RegExp(`sc-b\\s+acked\\s+\\d+ ms\\s+${revision}(\\n|$)`));
      // It returned after the acks: central already holds both at this revision.
      const v = await fleetView(central);
      expect(v.of("sc-a").appliedRevision).toBe(BigInt(revision));
      expect(v.of("sc-b").appliedRevision).toBe(BigInt(revision));
    }

    // A third sidecar that receives every change and acks none.
    const frozen = follower(central, "sc-frozen", { ack: false, engines: ["NOTIFY"] });
    await frozen.reached(BigInt(revision));
    for (const w of writes(1)) {
      revision += 1;
      const started = Date.now();
      const r = await run(...w.args, "--wait", "1s");
      expect(r.code, w.args.join(" ")).toBe(1);
      expect(Date.now() - started).toBeGreaterThanOrEqual(1_000);
      expect(r.stdout).toMatch(w.prints);
      expect(r.stdout).toMatch(
        new RegExp(`(^|\\n)2/3 acked in \\d+ ms \\(revision ${revision}\\)`),
      );
      expect(r.stdout).toMatch(new RegExp(`sc-a\\s+acked\\s+\\d+ ms\\s+${revision}\\n`));
      expect(r.stdout).toMatch(new RegExp(`sc-b\\s+acked\\s+\\d+ ms\\s+${revision}\\n`));
      expect(r.stdout).toMatch(/sc-frozen\s+NOT ACKED\s+-\s+0(\n|$)/);
      expect(r.stderr).toMatch(
        new RegExp(
          `1 of 3 connected sidecars did not ack revision ${revision} within 1000 ms: sc-frozen`,
        ),
      );
    }

    // Once it stopped (not connected), it is no longer waited for.
    frozen.stop();
    await eventually("sc-frozen shown as not connected", async () => {
      const v = await fleetView(central);
      return !v.of("sc-frozen").connected;
    });
    revision += 1;
    const after = await run(...(writes(2)[3]?.args ?? []), "--wait", "5s");
    expect(after.stderr).toBe("");
    expect(after.code).toBe(0);
    expect(after.stdout).toMatch(new RegExp(`2/2 acked in \\d+ ms \\(revision ${revision}\\)`));
    expect(after.stdout).not.toMatch(/sc-frozen/);
    expect(a.problems).toEqual([]);
    expect(b.problems).toEqual([]);
  });
});

/** Calls any unary method by name (the decision RPCs differ in request type). */
function callAny(
  caller: Caller,
  service: DescService,
  method: string,
  request: object,
  options?: CallOptions,
): Promise<unknown> {
  return (
    caller.call as (s: DescService, m: string, r: object, o?: CallOptions) => Promise<unknown>
  )(service, method, request, options);
}

/** The ConnectError `p` rejects with (fails when it resolves). */
async function refusal(p: Promise<unknown>): Promise<ConnectError> {
  const err = await p.then(
    () => new Error("the call was answered"),
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ConnectError);
  return err as ConnectError;
}

const DECISIONS_ON_SIDECARS =
  "is a decision, served by the sidecars (govd serve) next to each engine, not by central";

describe("decisions on central", () => {
  it("are refused with UNIMPLEMENTED and the reason, whatever the request, over gRPC and Connect", async () => {
    const central = await startCentral();
    const json = connectJsonCaller(central.httpUrl);
    const decisions: {
      service: DescService;
      method: string;
      name: string;
      request: object;
      extra?: string;
    }[] = [
      {
        service: RiskService,
        method: "reserve",
        name: "Reserve",
        request: { engine: "CAPITAL", amount: "10", actor: "engine", correlationId: "r-1" },
      },
      {
        service: RiskService,
        method: "settle",
        name: "Settle",
        request: { reservationId: "res-1", realizedLoss: "0", correlationId: "s-1" },
      },
      {
        service: RiskService,
        method: "release",
        name: "Release",
        request: { reservationId: "res-1", correlationId: "l-1" },
      },
      {
        service: HeimdallService,
        method: "recordSandboxTrial",
        name: "RecordSandboxTrial",
        request: { domain: "BUYER_MATCH", success: true, confidence: 0.9 },
      },
      {
        service: HeimdallService,
        method: "recommend",
        name: "Recommend",
        request: { domain: "BUYER_MATCH", confidence: 0.95, recommendationJson: "{}" },
      },
      {
        service: HeimdallService,
        method: "requireProdEligible",
        name: "RequireProdEligible",
        request: { recommendationId: "rec-1" },
      },
      {
        service: RegressionService,
        method: "evaluate",
        name: "Evaluate",
        request: { domain: "WHOLESALE" },
        extra: " (KPI events are recorded there)",
      },
      {
        service: RegressionService,
        method: "recordKpi",
        name: "RecordKpi",
        request: { domain: "WHOLESALE", metric: "contract_rate", success: true, value: 1 },
      },
      {
        service: GoLiveService,
        method: "checkGoLive",
        name: "CheckGoLive",
        request: { executionClass: ExecutionClass.PROD, engine: "CAPITAL" },
      },
    ];
    for (const d of decisions) {
      const sentence = `${d.name} ${DECISIONS_ON_SIDECARS}${d.extra ?? ""}`;
      const attempts: [string, () => Promise<unknown>][] = [
        // A well-formed request with the operator token: the token does not unlock it.
        [
          "gRPC, well-formed, with token",
          () => callAny(central.caller, d.service, d.method, d.request, { token: TOKEN }),
        ],
        // An empty (invalid) request without a token: refused as unserved before anything else.
        ["gRPC, empty, no token", () => callAny(central.caller, d.service, d.method, {})],
        // Connect JSON on the HTTP port.
        ["Connect JSON", () => callAny(json, d.service, d.method, d.request)],
      ];
      for (const [how, attempt] of attempts) {
        const err = await refusal(attempt());
        expect(err.code, `${d.name} over ${how}`).toBe(Code.Unimplemented);
        expect(err.rawMessage, `${d.name} over ${how}`).toBe(sentence);
      }
    }

    // WatchGoLive, a stream: over gRPC framing...
    const watchSentence = `WatchGoLive ${DECISIONS_ON_SIDECARS}; sidecars follow central with SyncService.Watch`;
    const client = new grpc.Client(central.grpcAddress, grpc.credentials.createInsecure());
    const call = client.makeServerStreamRequest(
      "/governance.v1.GoLiveService/WatchGoLive",
      (m: WatchGoLiveRequest) => Buffer.from(toBinary(WatchGoLiveRequestSchema, m)),
      (b: Buffer) => fromBinary(WatchGoLiveResponseSchema, b),
      create(WatchGoLiveRequestSchema, { engine: "CAPITAL" }),
      new grpc.Metadata(),
    );
    const received: unknown[] = [];
    call.on("data", (m: unknown) => received.push(m));
    call.on("error", () => {
      // the status below says why
    });
    const status = await new Promise<grpc.StatusObject>((resolve) => call.on("status", resolve));
    client.close();
    expect(received).toEqual([]);
    expect(status.code).toBe(grpc.status.UNIMPLEMENTED);
    expect(status.details).toBe(watchSentence);
    // ... and over the Connect protocol on the HTTP port.
    const golive = createClient(
      GoLiveService,
      createConnectTransport({ baseUrl: central.httpUrl, httpVersion: "1.1" }),
    );
    const streamed = await refusal(
      (async () => {
        for await (const _ of golive.watchGoLive({ engine: "CAPITAL" })) {
          // a message here would be an answer
          return;
        }
      })(),
    );
    expect(streamed.code).toBe(Code.Unimplemented);
    expect(streamed.rawMessage).toBe(watchSentence);

    // Nothing was written: central is still at its seed revision, with no events of anyone.
    expect((await fleetView(central)).revision).toBe(13n);
    const events = await central.caller.call(RiskService, "listEvents", {});
    expect(events.events).toEqual([]);
  });
});
