/**
 * RiskService.ListEvents and RegressionService.ListTripwireEvents on central (SQLite and PostgreSQL): the risk events every sidecar
 * shipped, each with its sidecar and hash, paged exactly: by after_seq within one sidecar, by
 * page_token across the fleet; after_seq without a sidecar and a foreign token are refused.
 */
import { Code } from "@connectrpc/connect";
import { afterEach, describe, expect, it } from "vitest";
import { RegressionService } from "../gen/governance/v1/regression_pb.js";
import { RiskAction, RiskService } from "../gen/governance/v1/risk_pb.js";
import { SyncService } from "../gen/governance/v1/sync_pb.js";
import { listingStart, pageTokenOf } from "../src/sync/central/fleet-events.js";
import {
  inProcessCentralStores,
  postgresReachable,
  type RunningCentral,
  startCentral,
} from "./support/central.js";
import { rejects } from "./support/expect-error.js";
import { type ChainRow, linkedEvents } from "./support/shipped-chain.js";

const pgUp = await postgresReachable();
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe("listingStart", () => {
  it("reads after_seq within a sidecar and a page token anywhere", () => {
    expect(listingStart({ sidecarId: "sc-1", afterSeq: 4n, pageToken: "" })).toEqual({
      sidecarId: "sc-1",
      seq: 4,
    });
    const token = pageTokenOf({ sidecarId: "sc-2", seq: 17 });
    expect(listingStart({ sidecarId: "", afterSeq: 0n, pageToken: token })).toEqual({
      sidecarId: "sc-2",
      seq: 17,
    });
  });
  it("refuses after_seq without a sidecar, a malformed token and one of another sidecar", () => {
    expect(() => listingStart({ sidecarId: "", afterSeq: 3n, pageToken: "" })).toThrow(
      /after_seq: on central a seq counts one sidecar's events/,
    );
    expect(() => listingStart({ sidecarId: "", afterSeq: 0n, pageToken: "x" })).toThrow(
      /page_token/,
    );
    const token = pageTokenOf({ sidecarId: "sc-2", seq: 1 });
    expect(() => listingStart({ sidecarId: "sc-1", afterSeq: 0n, pageToken: token })).toThrow(
      /same sidecar_id/,
    );
  });
});

/** 5 risk decisions (two on CAPITAL), a go-live event and a tripwire trip (seq 7). */
const ROWS: ChainRow[] = [
  { action: "RESERVE", subject: "WHOLESALE", amount: 3_000_000n, reservation_id: "r1" },
  { lever: "golive", action: "ENABLE", subject: "", amount: null },
  { action: "DENY", subject: "WHOLESALE", amount: 900_000_000n, reason: "over the cap" },
  { action: "RESERVE", subject: "CAPITAL", amount: 1_500_000n, reservation_id: "r2" },
  { action: "SETTLE", subject: "WHOLESALE", amount: 250_000n, reservation_id: "r1" },
  { action: "RELEASE", subject: "CAPITAL", amount: 1_500_000n, reservation_id: "r2" },
  { lever: "regression", action: "TRIP", subject: "WHOLESALE/contract_rate", amount: null },
];

const stores = inProcessCentralStores(pgUp);

describe.each(stores)("ListEvents on central ($name)", ({ up, location }) => {
  if (!up) return void it.skip("PostgreSQL at 127.0.0.1:5432 is unreachable", () => undefined);

  async function fleet() {
    const db = await location();
    cleanups.push(db.drop);
    const c = await startCentral(db.url);
    cleanups.push(c.close);
    const hashes: Record<string, string[]> = {};
    for (const sidecarId of ["sc-1", "sc-2"]) {
      const { events, head } = linkedEvents(ROWS);
      await c.caller.call(SyncService, "shipEvents", {
        sidecarId,
        events,
        prevHash: "",
        headSeq: BigInt(events.length),
        headHash: head,
      });
      hashes[sidecarId] = events.filter((e) => e.lever === "risk").map((e) => e.hash);
    }
    return { c, hashes };
  }

  const list = (c: RunningCentral, req: Record<string, unknown>) =>
    c.caller.call(RiskService, "listEvents", req);

  it("pages one sidecar's risk events by after_seq, with their sidecar and hashes", async () => {
    const { c, hashes } = await fleet();
    const seen: string[] = [];
    let afterSeq = 0n;
    let pages = 0;
    do {
      const page = await list(c, { sidecarId: "sc-2", afterSeq, limit: 2 });
      for (const e of page.events) {
        expect(e.sidecarId).toBe("sc-2");
        seen.push(e.hash);
      }
      afterSeq = page.nextAfterSeq;
      pages++;
    } while (afterSeq > 0n);
    expect(seen).toEqual(hashes["sc-2"]);
    expect(pages).toBe(3);
    const first = (await list(c, { sidecarId: "sc-1", limit: 1 })).events[0];
    expect(first).toMatchObject({
      seq: 1n,
      engine: "WHOLESALE",
      action: RiskAction.RESERVE,
      amount: "3.00",
      reservationId: "r1",
    });
    const capital = await list(c, { sidecarId: "sc-1", engine: "CAPITAL" });
    expect(capital.events.map((e) => [e.seq, e.action])).toEqual([
      [4n, RiskAction.RESERVE],
      [6n, RiskAction.RELEASE],
    ]);
    expect(capital.nextAfterSeq).toBe(0n);
  });

  it("pages the whole fleet by page_token in (sidecar, seq) order", async () => {
    const { c, hashes } = await fleet();
    const seen: string[] = [];
    let pageToken = "";
    do {
      const page = await list(c, { pageToken, limit: 3 });
      for (const e of page.events) seen.push(`${e.sidecarId}/${e.hash}`);
      expect(page.nextAfterSeq).toBe(0n);
      pageToken = page.nextPageToken;
    } while (pageToken !== "");
    expect(seen).toEqual([
      ...(hashes["sc-1"] ?? []).map((h) => `sc-1/${h}`),
      ...(hashes["sc-2"] ?? []).map((h) => `sc-2/${h}`),
    ]);
    await rejects(
      list(c, { afterSeq: 2n }),
      Code.InvalidArgument,
      /name the sidecar in sidecar_id/,
    );
  });

  it("lists the tripwire events the sidecars shipped, with their sidecar", async () => {
    const { c } = await fleet();
    const all = await c.caller.call(RegressionService, "listTripwireEvents", {});
    expect(all.events.map((e) => [e.sidecarId, e.seq, e.domain, e.metric, e.action])).toEqual([
      ["sc-1", 7n, "WHOLESALE", "contract_rate", "TRIP"],
      ["sc-2", 7n, "WHOLESALE", "contract_rate", "TRIP"],
    ]);
    const one = await c.caller.call(RegressionService, "listTripwireEvents", {
      sidecarId: "sc-2",
      domain: "WHOLESALE",
    });
    expect(one.events.map((e) => e.sidecarId)).toEqual(["sc-2"]);
    expect(one.nextAfterSeq).toBe(0n);
  });

  it("matches a domain exactly (no wildcards) and lists no KPI outcomes", async () => {
    const db = await location();
    cleanups.push(db.drop);
    const c = await startCentral(db.url);
    cleanups.push(c.close);
    const { events, head } = linkedEvents([
      { lever: "kpi", action: "KPI", subject: "BUYER_MATCH/match_success", amount: null },
      { lever: "regression", action: "TRIP", subject: "BUYERXMATCH/match_success", amount: null },
      { lever: "regression", action: "TRIP", subject: "BUYER_MATCH/match_success", amount: null },
    ]);
    await c.caller.call(SyncService, "shipEvents", {
      sidecarId: "sc-3",
      events,
      prevHash: "",
      headSeq: BigInt(events.length),
      headHash: head,
    });
    const listed = await c.caller.call(RegressionService, "listTripwireEvents", {
      domain: "BUYER_MATCH",
    });
    expect(listed.events.map((e) => [e.seq, e.domain, e.action])).toEqual([
      [3n, "BUYER_MATCH", "TRIP"],
    ]);
  });
});
