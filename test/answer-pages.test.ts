/**
 * Free-form fields are bounded, and list answers are paged by count and by bytes: a trail of
 * the largest events an unauthenticated caller can write is read in pages, none over the limit.
 */
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RegressionService } from "../gen/governance/v1/regression_pb.js";
import { RiskEventSchema, RiskPolicySchema, RiskService } from "../gen/governance/v1/risk_pb.js";
import { eventPage, keyedPage } from "../src/levers/answer-pages.js";
import { rejects } from "./support/expect-error.js";
import { type RunningSidecar, startSidecar, TOKEN } from "./support/sidecar.js";

/** The largest metadata a Reserve may carry: 32 entries of 64-character keys, 1,024-byte values. */
const largest = () =>
  Object.fromEntries(
    Array.from({ length: 32 }, (_, i) => [`k${String(i).padStart(63, "0")}`, "v".repeat(1024)]),
  );

let s: RunningSidecar;
beforeAll(async () => {
  s = await startSidecar();
});
afterAll(async () => {
  await s?.stop();
});

describe("bounded free-form fields", () => {
  it("refuses metadata past its bounds, naming the field, on both ports", async () => {
    for (const c of s.callers) {
      for (const metadata of [
        { big: "x".repeat(1025) },
        { ["k".repeat(65)]: "v" },
        { "": "v" },
        Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`k${i}`, "v"])),
      ]) {
        await rejects(
          c.call(RiskService, "reserve", {
            engine: "WHOLESALE",
            amount: "1",
            correlationId: `big-${Math.random()}`,
            metadata,
          }),
          Code.InvalidArgument,
          /metadata/,
        );
      }
    }
    expect(s.db.prepare("SELECT count(*) AS n FROM audit_event").get()).toEqual({ n: 0 });
  });
});

describe("event lists paged by count and bytes", () => {
  it("reads 120 of the largest events in pages under the message limit, none lost", async () => {
    for (let i = 0; i < 120; i++) {
      // Denied (go-live is off) and still recorded, with its metadata.
      await s.grpc.call(RiskService, "reserve", {
        engine: "WHOLESALE",
        amount: "1",
        correlationId: `large-${i}`,
        metadata: largest(),
      });
    }
    for (const c of s.callers) {
      const seen: bigint[] = [];
      let after = 0n;
      let pages = 0;
      for (;;) {
        const page = await c.call(RiskService, "listEvents", { afterSeq: after });
        pages += 1;
        seen.push(...page.events.map((e) => e.seq));
        if (page.nextAfterSeq === 0n) break;
        expect(page.nextAfterSeq).toBe(page.events[page.events.length - 1]?.seq);
        after = page.nextAfterSeq;
      }
      expect(seen).toEqual(Array.from({ length: 120 }, (_, i) => BigInt(i + 1)));
      // 120 events of about 35 KB need five or more pages of under 1 MiB.
      expect(pages).toBeGreaterThanOrEqual(5);
      const two = await c.call(RiskService, "listEvents", { limit: 2 });
      expect(two.events.map((e) => e.seq)).toEqual([1n, 2n]);
      expect(two.nextAfterSeq).toBe(2n);
    }
  });
});

describe("a sidecar's own trail", () => {
  it("is listed without a sidecar id; another's id and central's page_token are refused", async () => {
    for (const c of s.callers) {
      await rejects(
        c.call(RiskService, "listEvents", { sidecarId: "pod-7" }),
        Code.InvalidArgument,
        /has not followed central under any id .*ask central for sidecar pod-7's events/,
      );
      await rejects(
        c.call(RegressionService, "listTripwireEvents", { sidecarId: "pod-7" }),
        Code.InvalidArgument,
        /ask central for sidecar pod-7's events/,
      );
      await rejects(
        c.call(RiskService, "listEvents", { pageToken: "c2lkZWNhcg" }),
        Code.InvalidArgument,
        /on a sidecar, read on with after_seq/,
      );
    }
  });
});

describe("eventPage", () => {
  const event = (seq: number, reason: string) => ({ seq: BigInt(seq), reason });

  it("keeps what fits the budget, at least one event, and says where to read on", () => {
    const events = [event(1, "a".repeat(100)), event(2, "b".repeat(100)), event(3, "c")];
    expect(eventPage(RiskEventSchema, events, 10, 225)).toMatchObject({ nextAfterSeq: 2n });
    expect(eventPage(RiskEventSchema, events, 10, 225).events).toHaveLength(2);
    expect(eventPage(RiskEventSchema, events, 10, 10).events).toHaveLength(1);
    // All fit and fewer than the count read: the newest event was reached.
    expect(eventPage(RiskEventSchema, events, 10, 10_000)).toMatchObject({ nextAfterSeq: 0n });
    // All fit but the count was reached: more may follow.
    expect(eventPage(RiskEventSchema, events, 3, 10_000)).toMatchObject({ nextAfterSeq: 3n });
    expect(eventPage(RiskEventSchema, [], 3, 10_000)).toEqual({ events: [], nextAfterSeq: 0n });
  });
});

describe("policy lists paged with a token", () => {
  it("reads every policy page by page, each page at most the limit asked for", async () => {
    for (let i = 0; i < 12; i++) {
      await s.grpc.call(
        RiskService,
        "upsertPolicy",
        {
          engine: `ENGINE_${String(i).padStart(2, "0")}`,
          maxDailyLoss: "1",
          maxDailyExposure: "10",
          maxOpenRisk: "5",
          maxActionsPerDay: 10,
          enabled: true,
          actor: "ops",
          reason: "paging",
        },
        { token: TOKEN },
      );
    }
    for (const c of s.callers) {
      const all = await c.call(RiskService, "listPolicies", {});
      expect(all.nextPageToken).toBe("");
      expect(all.policies).toHaveLength(16);
      const paged: string[] = [];
      let pageToken = "";
      do {
        const page = await c.call(RiskService, "listPolicies", { limit: 5, pageToken });
        expect(page.policies.length).toBeLessThanOrEqual(5);
        paged.push(...page.policies.map((p) => p.engine));
        pageToken = page.nextPageToken;
      } while (pageToken !== "");
      expect(paged).toEqual(all.policies.map((p) => p.engine));
      expect(paged[0]).toBe("GLOBAL");
      const unknown = await c.call(RiskService, "listPolicies", { pageToken: "NO_SUCH" });
      expect(unknown.policies).toEqual([]);
    }
  });

  it("keyedPage cuts by bytes too, keeping at least one item", () => {
    const items = ["A", "B", "C"].map((engine) => ({ engine, updatedBy: "x".repeat(100) }));
    const key = (p: { engine?: string }) => p.engine ?? "";
    expect(keyedPage(RiskPolicySchema, items, key, "", 0, 250)).toMatchObject({
      nextPageToken: "B",
    });
    expect(keyedPage(RiskPolicySchema, items, key, "B", 0, 250).items).toEqual([items[2]]);
    expect(keyedPage(RiskPolicySchema, items, key, "", 0, 1).items).toHaveLength(1);
    expect(keyedPage(RiskPolicySchema, items, key, "", 2, 10_000)).toMatchObject({
      nextPageToken: "B",
    });
    expect(keyedPage(RiskPolicySchema, items, key, "", 0, 10_000).nextPageToken).toBe("");
  });
});
