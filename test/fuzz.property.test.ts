/**
 * Hostile input on both ports: random messages of every request type, and the bytes of valid
 * ones mutated, sent over gRPC, Connect binary and Connect JSON. The process stays up, every
 * answer is a decision or a clear client error (never internal or unknown), and afterwards the
 * risk ledgers equal what the audit trail's events add up to.
 */
import {
  create,
  type DescField,
  type DescMessage,
  type DescMethodUnary,
  type DescService,
  toBinary,
} from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ExecutionClass } from "../gen/governance/v1/common_pb.js";
import { GoLiveService } from "../gen/governance/v1/golive_pb.js";
import { HeimdallService } from "../gen/governance/v1/heimdall_pb.js";
import { RegressionService } from "../gen/governance/v1/regression_pb.js";
import { RiskService } from "../gen/governance/v1/risk_pb.js";
import { utcDay } from "../src/clock.js";
import { verifyChain } from "../src/store/audit-trail.js";
import { enableGoLive, type RunningSidecar, startSidecar, T0, TOKEN } from "./support/sidecar.js";

const SERVICES: DescService[] = [GoLiveService, RiskService, HeimdallService, RegressionService];
const METHODS = SERVICES.flatMap((s) =>
  s.methods.filter((m): m is DescMethodUnary => m.methodKind === "unary").map((m) => ({ s, m })),
);
/** The codes a client error may carry; anything else (internal, unknown) is a fault. */
const CLIENT_CODES = new Set([
  Code.InvalidArgument,
  Code.NotFound,
  Code.AlreadyExists,
  Code.FailedPrecondition,
  Code.Unauthenticated,
  Code.PermissionDenied,
  Code.ResourceExhausted,
  Code.OutOfRange,
]);

/** Strings that reach past validation often enough: names, money, ids, and noise. */
const text = fc.oneof(
  fc.constantFrom("WHOLESALE", "CAPITAL", "NOTIFY", "GLOBAL", "BUYER_MATCH", "contract_rate"),
  fc.constantFrom("1", "0.01", "250.00", "999999999.999999", "0", "-1", "1e3", "", "{}", "ops"),
  fc.string({ maxLength: 24 }),
  fc.string({ unit: "grapheme", maxLength: 12 }),
);

/** Reservations made before the run, so that Settle and Release reach open ones. */
const reservationIds: string[] = [];

/** Strings by field name, so that many calls get past validation to the handlers. */
function textFor(name: string): fc.Arbitrary<string> {
  const pick = <T>(likely: fc.Arbitrary<T>, other: fc.Arbitrary<T>) =>
    fc.oneof({ arbitrary: likely, weight: 4 }, { arbitrary: other, weight: 1 });
  if (name === "engine")
    return pick(fc.constantFrom("WHOLESALE", "CAPITAL", "NOTIFY", "ROUTER"), text);
  if (name === "domain") return pick(fc.constantFrom("WHOLESALE", "BUYER_MATCH", "CAPITAL"), text);
  if (name === "metric") return pick(fc.constantFrom("contract_rate", "match_success"), text);
  if (/amount|loss|exposure|risk$/i.test(name))
    return pick(fc.constantFrom("0.01", "1", "12.50", "0", "999999999.999999"), text);
  if (name === "correlationId") return pick(fc.uuid(), text);
  if (name === "reservationId")
    // Read when the value is made: the reservations exist only once beforeAll has run.
    return pick(
      fc.nat().map((i) => reservationIds[i % Math.max(1, reservationIds.length)] ?? "none"),
      text,
    );
  if (/json$/i.test(name)) return pick(fc.constantFrom("{}", '{"buyer":"b-1"}'), text);
  return text;
}

function fieldValue(f: DescField, depth: number): fc.Arbitrary<unknown> | undefined {
  const scalar = (kind: DescField & { scalar?: number }): fc.Arbitrary<unknown> => {
    switch (kind.scalar) {
      case 9: // string
        return textFor(f.localName);
      case 8: // bool
        return fc.boolean();
      case 1: // double
      case 2: // float
        return fc.oneof(fc.double(), fc.constantFrom(0.5, 0.95, 1, 0));
      case 3: // int64
      case 4: // uint64
      case 16: // sint64
      case 6: // fixed64
      case 18:
      case 15:
        return fc
          .bigInt({ min: -(2n ** 40n), max: 2n ** 40n })
          .map((b) => (kind.scalar === 4 || kind.scalar === 6 ? (b < 0n ? -b : b) : b));
      case 12: // bytes
        return fc.uint8Array({ maxLength: 8 });
      default:
        return fc
          .integer({ min: -5, max: 5_000 })
          .map((n) => (kind.scalar === 13 || kind.scalar === 7 ? Math.abs(n) : n));
    }
  };
  switch (f.fieldKind) {
    case "scalar":
      return scalar(f as never);
    case "enum":
      return fc.integer({ min: -1, max: 12 });
    case "message":
      return depth < 2 ? messageInit(f.message, depth + 1) : undefined;
    case "list":
      if (f.listKind === "message")
        return depth < 2
          ? fc.array(messageInit(f.message, depth + 1), { maxLength: 2 })
          : undefined;
      if (f.listKind === "enum") return fc.array(fc.integer({ min: 0, max: 5 }), { maxLength: 3 });
      return fc.array(scalar(f as never), { maxLength: 3 });
    case "map":
      return f.mapKind === "scalar"
        ? fc.dictionary(fc.string({ maxLength: 8 }), text, { maxKeys: 3 })
        : undefined;
  }
  return undefined;
}

/** A random init object of a message type, each field present or not. */
function messageInit(schema: DescMessage, depth = 0): fc.Arbitrary<Record<string, unknown>> {
  const fields: Record<string, fc.Arbitrary<unknown>> = {};
  for (const f of schema.fields) {
    const a = fieldValue(f, depth);
    // Present four times in five.
    if (a) fields[f.localName] = fc.option(a, { nil: undefined, freq: 5 });
  }
  return fc
    .record(fields)
    .map((r) => Object.fromEntries(Object.entries(r).filter(([, v]) => v !== undefined)));
}

/** How a port answered: a decision or a client error is fine; a fault is not. */
type Outcome = { ok: true } | { ok: false; code: Code; message: string };

let s: RunningSidecar;
let raw: grpc.Client;
beforeAll(async () => {
  s = await startSidecar();
  raw = new grpc.Client(s.grpcAddress, grpc.credentials.createInsecure());
  await enableGoLive(s.grpc);
  for (let i = 0; i < 20; i++) {
    const r = await s.grpc.call(RiskService, "reserve", {
      engine: i % 2 ? "WHOLESALE" : "CAPITAL",
      amount: "1.25",
      correlationId: `fuzz-seed-${i}`,
    });
    reservationIds.push(r.reservationId);
  }
});
afterAll(async () => {
  raw?.close();
  await s?.stop();
});

function grpcBytes(path: string, body: Buffer, token: boolean): Promise<Outcome> {
  const metadata = new grpc.Metadata();
  if (token) metadata.set("authorization", `Bearer ${TOKEN}`);
  return new Promise((resolve) =>
    raw.makeUnaryRequest(
      path,
      (b: Buffer) => b,
      (b: Buffer) => b,
      body,
      metadata,
      (err) =>
        resolve(
          err
            ? { ok: false, code: err.code as number as Code, message: err.details }
            : { ok: true },
        ),
    ),
  );
}

async function connectBytes(
  path: string,
  body: Buffer | string,
  json: boolean,
  token: boolean,
): Promise<Outcome> {
  const headers: Record<string, string> = {
    "content-type": json ? "application/json" : "application/proto",
  };
  if (token) headers.authorization = `Bearer ${TOKEN}`;
  const res = await fetch(`${s.httpUrl}${path}`, {
    method: "POST",
    headers,
    body: typeof body === "string" ? body : new Uint8Array(body),
  });
  if (res.ok) {
    await res.arrayBuffer();
    return { ok: true };
  }
  const error = (await res.json().catch(() => ({}))) as { code?: string; message?: string };
  const code = Object.entries(Code).find(
    ([k]) => k.replace(/([a-z])([A-Z])/g, "$1_$2").toLowerCase() === error.code,
  )?.[1] as Code | undefined;
  expect(res.status, `${path}: HTTP ${res.status} ${JSON.stringify(error)}`).toBeLessThan(500);
  return { ok: false, code: code ?? Code.Unknown, message: error.message ?? "" };
}

/** Answers that were decisions or results, per port: the run must reach the handlers. */
const answered = { grpc: 0, binary: 0, json: 0 };

function expectClear(outcome: Outcome, what: string): void {
  if (outcome.ok) {
    answered[what.startsWith("grpc") ? "grpc" : what.includes("binary") ? "binary" : "json"] += 1;
    return;
  }
  expect(CLIENT_CODES.has(outcome.code), `${what}: ${Code[outcome.code]} ${outcome.message}`).toBe(
    true,
  );
  expect(outcome.message.length, what).toBeGreaterThan(0);
}

/** Any method; the money-moving ones more often, so the ledger check has much to add up. */
const call = fc
  .oneof(
    ...METHODS.map((entry) => ({
      arbitrary: fc.constant(entry),
      weight: ["Reserve", "Settle", "Release"].includes(entry.m.name) ? 8 : 1,
    })),
  )
  .chain(({ s: service, m }) =>
    fc.record({
      path: fc.constant(`/${service.typeName}/${m.name}`),
      method: fc.constant(m),
      init: messageInit(m.input),
      token: fc.boolean(),
    }),
  );

describe("fuzzed requests on both ports", () => {
  it("answers random messages of every request type with a decision or a clear error", async () => {
    await fc.assert(
      fc.asyncProperty(call, async ({ path, method, init, token }) => {
        const message = create(method.input, init as never);
        const bytes = Buffer.from(toBinary(method.input, message));
        expectClear(await grpcBytes(path, bytes, token), `grpc ${path}`);
        expectClear(await connectBytes(path, bytes, false, token), `connect binary ${path}`);
        // JSON built by hand from the init: wrong types and names reach the JSON parser too.
        const json = JSON.stringify(init, (_k, v) =>
          typeof v === "bigint"
            ? v.toString()
            : v instanceof Uint8Array
              ? Buffer.from(v).toString("base64")
              : v,
        );
        expectClear(await connectBytes(path, json, true, token), `connect json ${path}`);
      }),
      { numRuns: 300, seed: 20261201 },
    );
    // A fifth or more of the calls got past validation to a handler on each port.
    for (const n of Object.values(answered)) expect(n).toBeGreaterThan(60);
  });

  it("answers mutated bytes of valid requests with a decision or a clear error", async () => {
    const mutation = fc.record({
      at: fc.nat(),
      kind: fc.constantFrom("flip", "cut", "insert", "junk"),
      byte: fc.integer({ min: 0, max: 255 }),
    });
    await fc.assert(
      fc.asyncProperty(
        call,
        fc.array(mutation, { minLength: 1, maxLength: 4 }),
        async (c, mutations) => {
          let bytes = Buffer.from(
            toBinary(c.method.input, create(c.method.input, c.init as never)),
          );
          for (const m of mutations) {
            const at = bytes.length === 0 ? 0 : m.at % bytes.length;
            if (m.kind === "flip" && bytes.length > 0)
              bytes[at] = (bytes[at] ?? 0) ^ (1 << (m.byte % 8));
            else if (m.kind === "cut") bytes = bytes.subarray(0, at);
            else if (m.kind === "insert")
              bytes = Buffer.concat([
                bytes.subarray(0, at),
                Buffer.from([m.byte]),
                bytes.subarray(at),
              ]);
            else bytes = Buffer.concat([bytes, Buffer.from([m.byte, 0xff, 0xff, 0xff, 0x0f])]);
          }
          expectClear(await grpcBytes(c.path, bytes, c.token), `grpc ${c.path}`);
          expectClear(
            await connectBytes(c.path, bytes, false, c.token),
            `connect binary ${c.path}`,
          );
          expectClear(
            await connectBytes(c.path, bytes.toString("latin1"), true, c.token),
            `connect json ${c.path}`,
          );
        },
      ),
      { numRuns: 250, seed: 20261202 },
    );
  });

  it("is still serving, and every ledger equals the sum of its events", async () => {
    const check = await s.grpc.call(GoLiveService, "checkGoLive", {
      executionClass: ExecutionClass.EXEMPT,
    });
    expect(check.allowed).toBe(true);
    const day = utcDay(T0);
    // The ledgers live in memory; the tables hold them once folded (as the sweep does).
    s.db.transaction(() => s.sidecar.context.risk.fold(Number.MAX_SAFE_INTEGER))();
    const ledger = s.db
      .prepare(
        "SELECT engine, exposure, realized_loss, actions FROM risk_ledger WHERE day = ? ORDER BY engine",
      )
      .raw()
      .all(day) as unknown[][];
    const fromEvents = s.db
      .prepare(
        `WITH e AS (SELECT subject AS engine, action, amount FROM audit_event WHERE lever = 'risk'
                    AND action IN ('RESERVE', 'SETTLE')
                    UNION ALL SELECT 'GLOBAL', action, amount FROM audit_event WHERE lever = 'risk'
                    AND action IN ('RESERVE', 'SETTLE'))
         SELECT engine, total(CASE action WHEN 'RESERVE' THEN amount END),
                total(CASE action WHEN 'SETTLE' THEN amount END),
                count(CASE action WHEN 'RESERVE' THEN 1 END)
         FROM e GROUP BY engine ORDER BY engine`,
      )
      .raw()
      .all() as unknown[][];
    const numbers = (rows: unknown[][]) =>
      rows.map((r) => r.map((v) => (typeof v === "string" ? v : Number(v))));
    expect(numbers(ledger.filter((r) => Number(r[3]) > 0))).toEqual(numbers(fromEvents));
    // The run reached the risk handlers: settles, and Reserves decided beyond the 20 made before it.
    const count = (sql: string) => s.db.prepare(sql).pluck().get() as number;
    expect(count("SELECT count(*) FROM audit_event WHERE action = 'SETTLE'")).toBeGreaterThan(0);
    expect(
      count(
        "SELECT count(*) FROM audit_event WHERE action IN ('RESERVE', 'DENY') AND correlation_id NOT LIKE 'fuzz-seed-%'",
      ),
    ).toBeGreaterThan(0);
    const open = s.db
      .prepare(
        "SELECT engine, open_risk FROM risk_open WHERE engine <> 'GLOBAL' AND open_risk <> 0 ORDER BY engine",
      )
      .raw()
      .all() as unknown[][];
    const reservations = s.db
      .prepare(
        "SELECT engine, sum(amount) FROM risk_reservation WHERE status = 'OPEN' GROUP BY engine ORDER BY engine",
      )
      .raw()
      .all() as unknown[][];
    expect(numbers(open)).toEqual(numbers(reservations));
    expect(verifyChain(s.db).ok).toBe(true);
  });
});
