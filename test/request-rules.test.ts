/**
 * The request rules checked in plain code (src/server/request-rules.ts) answer exactly as
 * protovalidate does: on generated requests of every request type whose rules compile, near
 * every bound (lengths in code points, surrogate pairs, lone surrogates, item and pair counts,
 * integer bounds, enum values, non-finite doubles, patterns). The hot request types must
 * compile; a type with other rules falls back to protovalidate, and errors read as its own.
 */
import {
  create,
  createFileRegistry,
  type DescMessage,
  type DescService,
  type Message,
  setExtension,
} from "@bufbuild/protobuf";
import {
  FieldOptionsSchema,
  FileDescriptorProtoSchema,
  file_google_protobuf_descriptor,
  FieldDescriptorProto_Label as Label,
  FieldDescriptorProto_Type as Type,
} from "@bufbuild/protobuf/wkt";
import { createValidator } from "@bufbuild/protovalidate";
import {
  FieldRulesSchema,
  field as fieldRules,
  file_buf_validate_validate,
} from "@bufbuild/protovalidate/gen/buf/validate/validate_pb.js";
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
import { fieldValue, messageOf } from "./support/message-arbitrary.js";

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

  // Schemas built here, for what no request type of ours has: explicit presence, a oneof,
  // min_len above 1 with surrogate pairs, rules that do not fit their field's type.
  it("answer as protovalidate on presence, oneofs and code points, or leave it to protovalidate", () => {
    const s = (name: string, number: number, type: Type, rules: object, more: object = {}) => {
      const options = create(FieldOptionsSchema);
      setExtension(options, fieldRules, create(FieldRulesSchema, rules as never));
      return { name, jsonName: name, number, type, label: Label.OPTIONAL, options, ...more };
    };
    const schemaOf = (syntax: string, field: object[], oneofDecl: object[] = []) =>
      createFileRegistry(
        create(FileDescriptorProtoSchema, {
          name: `t${syntax}.proto`,
          package: "t",
          syntax,
          dependency: ["buf/validate/validate.proto"],
          messageType: [{ name: "M", field, oneofDecl }],
        } as never),
        (f) =>
          f === "buf/validate/validate.proto"
            ? file_buf_validate_validate
            : f === "google/protobuf/descriptor.proto"
              ? file_google_protobuf_descriptor
              : undefined,
      ).getMessage("t.M") as DescMessage;
    const minLen = (n: bigint) => ({ type: { case: "string", value: { minLen: n } } });
    const cases: [string, DescMessage, Record<string, unknown>, boolean][] = [
      [
        "min_len 2, one pair",
        schemaOf("proto3", [s("x", 1, Type.STRING, minLen(2n))]),
        { x: "\u{1F600}" },
        false,
      ],
      [
        "min_len 2, two pairs",
        schemaOf("proto3", [s("x", 1, Type.STRING, minLen(2n))]),
        { x: "\u{1F600}\u{1F600}" },
        true,
      ],
      [
        "proto2 optional, unset",
        schemaOf("proto2", [s("x", 1, Type.STRING, minLen(1n))]),
        {},
        true,
      ],
      [
        "proto2 optional, set empty",
        schemaOf("proto2", [s("x", 1, Type.STRING, minLen(1n))]),
        { x: "" },
        false,
      ],
      [
        "proto3 optional, unset",
        schemaOf(
          "proto3",
          [s("x", 1, Type.STRING, minLen(1n), { proto3Optional: true, oneofIndex: 0 })],
          [{ name: "_x" }],
        ),
        {},
        true,
      ],
      [
        "proto3 optional, set empty",
        schemaOf(
          "proto3",
          [s("x", 1, Type.STRING, minLen(1n), { proto3Optional: true, oneofIndex: 0 })],
          [{ name: "_x" }],
        ),
        { x: "" },
        false,
      ],
    ];
    const choice = schemaOf(
      "proto3",
      [
        s("a", 1, Type.STRING, minLen(3n), { oneofIndex: 0 }),
        s(
          "b",
          2,
          Type.INT32,
          { type: { case: "int32", value: { greaterThan: { case: "gt", value: 0 } } } },
          { oneofIndex: 0 },
        ),
      ],
      [{ name: "pick" }],
    );
    cases.push(
      ["oneof, none set", choice, {}, true],
      ["oneof, a too short", choice, { pick: { case: "a", value: "ab" } }, false],
      ["oneof, b set", choice, { pick: { case: "b", value: 5 } }, true],
      ["oneof, b out of bounds", choice, { pick: { case: "b", value: 0 } }, false],
    );
    for (const [label, schema, init, expected] of cases) {
      const m = create(schema, init as never) as Message;
      expect(valid(schema, m), label).toBe(expected);
      expect((compileRuleCheck(schema) as (m: Message) => boolean)(m), label).toBe(expected);
    }
    // Rules that do not fit the field's type are protovalidate's to report (a compile error).
    const int32Rules = {
      type: { case: "int32", value: { greaterThan: { case: "gt", value: 0 } } },
    };
    for (const [label, schema] of [
      ["int32 rules on a string", schemaOf("proto3", [s("x", 1, Type.STRING, int32Rules)])],
      ["int32 rules on a uint32", schemaOf("proto3", [s("x", 1, Type.UINT32, int32Rules)])],
      [
        "double rules on a float",
        schemaOf("proto3", [
          s("x", 1, Type.FLOAT, { type: { case: "double", value: { finite: true } } }),
        ]),
      ],
      [
        "string rules on bytes",
        schemaOf("proto3", [
          s("x", 1, Type.BYTES, { type: { case: "string", value: { maxLen: 5n } } }),
        ]),
      ],
    ] as const) {
      expect(compileRuleCheck(schema), label).toBeUndefined();
      expect(protovalidate.validate(schema, create(schema)).kind, label).toBe("error");
    }
  });
});
