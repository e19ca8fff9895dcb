import { create, toBinary } from "@bufbuild/protobuf";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { CheckGoLiveRequestSchema } from "../gen/governance/v1/golive_pb.js";
import { ReserveRequestSchema } from "../gen/governance/v1/risk_pb.js";
import { canonicalBytes } from "../src/server/canonical-request.js";

const reserve = (entries: [string, string][]) =>
  create(ReserveRequestSchema, {
    engine: "WHOLESALE",
    amount: "1.50",
    correlationId: "c-1",
    metadata: Object.fromEntries(entries),
  });

describe("canonicalBytes", () => {
  it("gives one encoding for any order of a map's entries, and another for other entries", () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.tuple(fc.string({ maxLength: 8 }), fc.string({ maxLength: 8 })), {
          selector: ([k]) => k,
          maxLength: 12,
        }),
        fc.integer(),
        (entries, seed) => {
          const shuffled = [...entries].sort(
            (a, b) => ((a[0].length * 31 + seed) % 7) - ((b[0].length * 31 + seed) % 7),
          );
          const reversed = [...entries].reverse();
          const bytes = canonicalBytes(ReserveRequestSchema, reserve(entries));
          expect(canonicalBytes(ReserveRequestSchema, reserve(shuffled))).toEqual(bytes);
          expect(canonicalBytes(ReserveRequestSchema, reserve(reversed))).toEqual(bytes);
          const changed = reserve([...entries, ["\u0000extra", "v"]]);
          expect(canonicalBytes(ReserveRequestSchema, changed)).not.toEqual(bytes);
        },
      ),
    );
  });

  it("is the plain encoding for a type without maps, and leaves the request as it was", () => {
    const check = create(CheckGoLiveRequestSchema, { executionClass: 2, engine: "WHOLESALE" });
    expect(Buffer.from(canonicalBytes(CheckGoLiveRequestSchema, check))).toEqual(
      Buffer.from(toBinary(CheckGoLiveRequestSchema, check)),
    );
    const request = reserve([
      ["b", "2"],
      ["a", "1"],
    ]);
    canonicalBytes(ReserveRequestSchema, request);
    expect(Object.keys(request.metadata)).toEqual(["b", "a"]);
  });
});
