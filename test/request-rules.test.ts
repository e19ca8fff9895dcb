/**
 * The request rules checked in plain code (src/server/request-rules.ts) answer exactly as
 * protovalidate does: on generated requests of every request type whose rules compile, near
 * every bound (lengths in code points, surrogate pairs, lone surrogates, item and pair counts,
 * integer bounds, enum values, non-finite doubles, patterns). The hot request types must
 * compile; a type with other rules falls back to protovalidate, and errors read as its own.
 */
import {
  create,
  type DescField,
  type DescMessage,
  type DescService,
  getOption,
  hasOption,
  type Message,
  ScalarType,
} from "@bufbuild/protobuf";
import { createValidator } from "@bufbuild/protovalidate";
import { field as fieldRules } from "@bufbuild/protovalidate/gen/buf/validate/validate_pb.js";
import { Code, ConnectError } from "@connectrpc/connect";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { CheckGoLiveRequestSchema, GoLiveService } from "../gen/governance/v1/golive_pb.js";
import { HeimdallService } from "../gen/governance/v1/heimdall_pb.js";
import { RecordKpiRequestSchema, RegressionService } from "../gen/governance/v1/regression_pb.js";
import {
  ReserveRequestSchema,
  RiskService,
  SettleRequestSchema,
} from "../gen/governance/v1/risk_pb.js";
import {
  ShipEventsRequestSchema,
  SyncService,
  WatchRequestSchema,
} from "../gen/governance/v1/sync_pb.js";
import { matchRequestPattern } from "../src/server/request-patterns.js";
import { compileRuleCheck, RequestRules } from "../src/server/request-rules.js";

const SERVICES: DescService[] = [
  GoLiveService,
  RiskService,
  HeimdallService,
  RegressionService,
  SyncService,
];
const REQUEST_TYPES = [...new Set(SERVICES.flatMap((s) => s.methods.map((m) => m.input)))];
const protovalidate = createValidator({ regexMatch: matchRequestPattern });
const valid = (schema: DescMessage, m: Message) =>
  protovalidate.validate(schema, m).kind === "valid";

/** Strings near our rules: names, money, hex, ids, bounds in code points, and noise. */
const text: fc.Arbitrary<string> = fc.oneof(
  fc.string({ unit: fc.constantFrom(..."ABZ09_"), minLength: 1, maxLength: 6 }),
  fc.string({ unit: fc.constantFrom(..."abz09_.-"), minLength: 1, maxLength: 6 }),
  fc.string({ unit: fc.constantFrom(..."0123456789."), maxLength: 12 }),
  fc.string({ unit: fc.constantFrom(..."0123456789abcdef"), minLength: 63, maxLength: 65 }),
  fc.constantFrom("", "WHOLESALE", "150.25", "0", "01", "1.1234567", "conv_rate", "-1"),
  // Lengths at our bounds, counted in code points: a pair is one, a lone surrogate one.
  fc
    .tuple(
      fc.constantFrom(1, 32, 64, 128, 256, 1024, 4096),
      fc.integer({ min: -1, max: 1 }),
      fc.constantFrom("a", "\u{1F600}", "\ud800", "é"),
    )
    .map(([n, d, c]) => c.repeat(Math.max(0, n + d))),
  fc.string({ unit: "grapheme", maxLength: 8 }),
  fc.string({ unit: "binary", maxLength: 8 }),
);

function scalarValue(scalar: ScalarType): fc.Arbitrary<unknown> {
  switch (scalar) {
    case ScalarType.STRING:
      return text;
    case ScalarType.BOOL:
      return fc.boolean();
    case ScalarType.DOUBLE:
    case ScalarType.FLOAT:
      return fc.oneof(fc.double(), fc.constantFrom(0, 0.5, Number.NaN, Number.POSITIVE_INFINITY));
    case ScalarType.BYTES:
      return fc.uint8Array({ maxLength: 4 });
    case ScalarType.INT64:
    case ScalarType.SINT64:
    case ScalarType.SFIXED64:
      return fc.oneof(
        fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }),
        fc.bigInt({ min: -3n, max: 3n }),
      );
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
      return fc.oneof(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), fc.bigInt({ min: 0n, max: 3n }));
    case ScalarType.UINT32:
    case ScalarType.FIXED32:
      return fc.oneof(fc.nat(), fc.integer({ min: 0, max: 3 }));
    default:
      return fc.oneof(fc.integer(), fc.integer({ min: -3, max: 3 }));
  }
}

/** An item of a repeated field or a value of a map: a message, an enum number or a scalar. */
function elementOf(
  kind: "message" | "enum" | "scalar",
  f: DescField & { fieldKind: "list" | "map" },
  depth: number,
): fc.Arbitrary<unknown> | undefined {
  if (kind === "message")
    return depth < 3 ? messageOf(f.message as DescMessage, depth + 1) : undefined;
  if (kind === "enum") return fc.integer({ min: -1, max: (f.enum?.values.length ?? 0) + 1 });
  return scalarValue(f.scalar as ScalarType);
}

/** An integer field's own bounds (gt, gte, lt, lte), each with its neighbours, as the field holds them. */
function nearBounds(f: DescField & { fieldKind: "scalar" }): fc.Arbitrary<unknown>[] {
  if (!hasOption(f, fieldRules)) return [];
  const rules = getOption(f, fieldRules).type.value as {
    greaterThan?: { value?: number | bigint };
    lessThan?: { value?: number | bigint };
  };
  const bounds = [rules?.greaterThan?.value, rules?.lessThan?.value].filter((b) => b !== undefined);
  if (bounds.length === 0) return [];
  const near = bounds.flatMap((b): (number | bigint)[] =>
    typeof b === "bigint" ? [b - 1n, b, b + 1n] : [b - 1, b, b + 1],
  );
  return [fc.constantFrom(...near)];
}

function fieldValue(f: DescField, depth: number): fc.Arbitrary<unknown> | undefined {
  switch (f.fieldKind) {
    case "scalar": {
      const near = nearBounds(f);
      return near.length > 0 ? fc.oneof(scalarValue(f.scalar), ...near) : scalarValue(f.scalar);
    }
    case "enum":
      return fc.integer({ min: -1, max: f.enum.values.length + 1 });
    case "message":
      return depth < 3 ? messageOf(f.message, depth + 1) : undefined;
    case "list": {
      const item = elementOf(f.listKind, f, depth);
      return item && fc.array(item, { maxLength: 3 });
    }
    case "map": {
      const value = elementOf(f.mapKind, f, depth);
      return (
        value &&
        fc.oneof(
          fc.dictionary(text, value, { maxKeys: 3 }),
          // Pair counts at a bound of 32.
          fc
            .integer({ min: 31, max: 33 })
            .chain((n) =>
              fc.constant(Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, "v"]))),
            ),
        )
      );
    }
  }
}

/** A random message of `schema`: each field present or not, one member of each oneof or none. */
function messageOf(schema: DescMessage, depth = 0): fc.Arbitrary<Message> {
  const fields: Record<string, fc.Arbitrary<unknown>> = {};
  for (const f of schema.fields) {
    if (f.oneof) continue;
    const a = fieldValue(f, depth);
    if (a) fields[f.localName] = fc.option(a, { nil: undefined, freq: 5 });
  }
  for (const o of schema.oneofs) {
    const members = o.fields.flatMap((f) => {
      const a = fieldValue(f, depth);
      return a ? [a.map((value) => ({ case: f.localName, value }))] : [];
    });
    if (members.length > 0)
      fields[o.localName] = fc.option(fc.oneof(...members), { nil: undefined });
  }
  return fc.record(fields).map((init) => {
    const present = Object.fromEntries(Object.entries(init).filter(([, v]) => v !== undefined));
    return create(schema, present as never) as Message;
  });
}

describe("request rules in plain code", () => {
  const compiled = REQUEST_TYPES.filter((t) => compileRuleCheck(t));

  it("compile for the hot request types", () => {
    for (const t of [
      CheckGoLiveRequestSchema,
      ReserveRequestSchema,
      SettleRequestSchema,
      RecordKpiRequestSchema,
      ShipEventsRequestSchema,
    ]) {
      expect(compiled, t.typeName).toContain(t);
    }
    // Rules of other kinds (here the items of a repeated field) are left to protovalidate.
    expect(compileRuleCheck(WatchRequestSchema)).toBeUndefined();
  });

  it.each(compiled.map((t) => [t.typeName, t] as const))(
    "answer as protovalidate for %s",
    (_, schema) => {
      const check = compileRuleCheck(schema) as (m: Message) => boolean;
      fc.assert(
        fc.property(messageOf(schema), (m) => {
          expect(check(m)).toBe(valid(schema, m));
        }),
        { numRuns: 600 },
      );
    },
  );

  // Valid requests of the hot types, each then changed in one field: near valid, where a
  // check stricter than the rules would show (random requests of these types are rarely valid).
  const hash = "ab".repeat(32);
  const VALID: [DescMessage, Record<string, unknown>][] = [
    [CheckGoLiveRequestSchema, { executionClass: 1, engine: "WHOLESALE" }],
    [
      ReserveRequestSchema,
      {
        engine: "WHOLESALE",
        amount: "150.25",
        actor: "engine",
        reason: "deal 7",
        correlationId: "c-1",
        metadata: { buyer: "b-1" },
      },
    ],
    [
      SettleRequestSchema,
      { reservationId: "r-1", realizedLoss: "0", actor: "a", correlationId: "c-2" },
    ],
    [
      RecordKpiRequestSchema,
      { domain: "WHOLESALE", metric: "conv_rate", success: true, value: 0.5, correlationId: "c-3" },
    ],
    [
      ShipEventsRequestSchema,
      {
        sidecarId: "sc-1",
        headSeq: 2n,
        headHash: hash,
        prevHash: hash,
        events: [
          { seq: 1n, timeMs: 5n, lever: "risk", action: "RESERVE", subject: "WHOLESALE", hash },
          { seq: 2n, timeMs: 5n, lever: "risk", action: "SETTLE", subject: "WHOLESALE", hash },
        ],
      },
    ],
  ];

  it.each(VALID.map(([t, init]) => [t.typeName, t, init] as const))(
    "answer as protovalidate for %s one field away from valid",
    (_, schema, init) => {
      const check = compileRuleCheck(schema) as (m: Message) => boolean;
      const base = create(schema, init as never) as Message;
      expect(valid(schema, base)).toBe(true);
      expect(check(base)).toBe(true);
      const changes = fc.oneof(
        ...schema.fields.flatMap((f) => {
          const a = f.oneof ? undefined : fieldValue(f, 0);
          return a ? [a.map((v) => [f.localName, v] as const)] : [];
        }),
      );
      let held = 0;
      fc.assert(
        fc.property(changes, ([name, value]) => {
          const m = create(schema, { ...(init as object), [name]: value } as never) as Message;
          const expected = valid(schema, m);
          if (expected) held++;
          expect(check(m)).toBe(expected);
        }),
        { numRuns: 1000 },
      );
      // Both answers were reached.
      expect(held).toBeGreaterThan(0);
      expect(held).toBeLessThan(1000);
    },
  );

  it("answer as protovalidate for shipments at the item bound, valid and not", () => {
    const check = compileRuleCheck(ShipEventsRequestSchema) as (m: Message) => boolean;
    const event = (seq: number) => ({
      seq: BigInt(seq),
      timeMs: 1n,
      lever: "risk",
      action: "RESERVE",
      subject: "WHOLESALE",
      amount: 10_000n,
      ok: true,
      reason: "within caps",
      actor: "engine",
      correlationId: `c-${seq}`,
      reservationId: "r-1",
      metadataJson: "{}",
      hash,
    });
    for (const [count, change, expected] of [
      [1000, {}, true],
      [1001, {}, false],
      [3, { hash: hash.toUpperCase() }, false],
      [3, { seq: 0n }, false],
      [3, { lever: "r".repeat(33) }, false],
      [3, { lever: "\u{1F600}".repeat(32) }, true],
      [3, { metadataJson: "x".repeat(65_537) }, false],
    ] as const) {
      const request = create(ShipEventsRequestSchema, {
        sidecarId: "sc-1",
        headSeq: BigInt(count),
        headHash: hash,
        events: Array.from({ length: count }, (_, i) => ({ ...event(i + 1), ...change })),
      });
      expect(
        valid(ShipEventsRequestSchema, request),
        `${count} events, ${Object.keys(change).join(",") || "as made"}`,
      ).toBe(expected);
      expect(check(request)).toBe(expected);
    }
  });

  it("refuse a request with protovalidate's own words", () => {
    const rules = new RequestRules();
    const request = create(ReserveRequestSchema, {
      engine: "wholesale",
      amount: "1.5",
      correlationId: "c-1",
    });
    let err: ConnectError | undefined;
    try {
      rules.enforce(ReserveRequestSchema, request);
    } catch (e) {
      err = e as ConnectError;
    }
    expect(err).toBeInstanceOf(ConnectError);
    expect(err?.code).toBe(Code.InvalidArgument);
    const words = (
      protovalidate.validate(ReserveRequestSchema, request) as {
        violations: { toString(): string }[];
      }
    ).violations.map((v) => v.toString());
    expect(err?.rawMessage).toBe(`invalid request: ${words.join("; ")}`);
    // A type left to protovalidate is still checked.
    expect(() =>
      rules.enforce(
        WatchRequestSchema,
        create(WatchRequestSchema, { sidecarId: "sc-1", engines: ["bad"] }),
      ),
    ).toThrow(/invalid request/);
    rules.enforce(
      ReserveRequestSchema,
      create(ReserveRequestSchema, { ...request, engine: "WHOLESALE" }),
    );
  });
});
