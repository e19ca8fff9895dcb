/** Our request patterns, matched with the platform RegExp, must answer exactly as RE2 does. */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { RE2JS } from "@bufbuild/re2";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { matchRequestPattern, SCHEMA_PATTERNS } from "../src/server/request-patterns.js";

const PROTO_DIR = join("proto", "governance", "v1");

/** Every pattern in the schema: string.pattern rules and CEL matches('...') calls. */
function patternsInProto(): Set<string> {
  const found = new Set<string>();
  for (const file of readdirSync(PROTO_DIR).filter((f) => f.endsWith(".proto"))) {
    const text = readFileSync(join(PROTO_DIR, file), "utf8");
    for (const m of text.matchAll(/pattern\s*[:=]\s*"((?:[^"\\]|\\.)*)"/g)) found.add(m[1] ?? "");
    for (const m of text.matchAll(/matches\('((?:[^'\\]|\\.)*)'\)/g)) found.add(m[1] ?? "");
  }
  return found;
}

/** Strings near each pattern's language: its own characters, edge lengths and strangers. */
const candidate = fc.oneof(
  fc.string({ unit: fc.constantFrom(..."AZaz09_.-ÄZ\n"), maxLength: 70 }),
  fc.string({ unit: fc.constantFrom(..."ABC0123456789_"), minLength: 60, maxLength: 70 }),
  fc.string({ unit: fc.constantFrom(..."0123456789."), maxLength: 20 }),
  fc.string({ unit: "grapheme", maxLength: 10 }),
);

describe("request patterns", () => {
  it("lists every pattern of the schema, and nothing else", () => {
    expect([...patternsInProto()].sort()).toEqual([...SCHEMA_PATTERNS].sort());
  });

  it.each(SCHEMA_PATTERNS)("answers as RE2 for %s", (pattern) => {
    const re2 = RE2JS.compile(pattern);
    fc.assert(
      fc.property(candidate, (s) => {
        expect(matchRequestPattern(pattern, s)).toBe(re2.test(s));
      }),
      { numRuns: 2000 },
    );
    for (const s of [
      "",
      "A",
      "A".repeat(64),
      "A".repeat(65),
      "A\n",
      "0",
      "0.5",
      "01",
      "1.1234567",
    ]) {
      expect(matchRequestPattern(pattern, s), s).toBe(re2.test(s));
    }
  });

  it("matches any other pattern with RE2", () => {
    expect(matchRequestPattern("^a+b$", "aaab")).toBe(true);
    expect(matchRequestPattern("^a+b$", "aaabc")).toBe(false);
    // RE2 syntax, not the platform's: a backreference is refused.
    expect(() => matchRequestPattern("^(a)\\1$", "aa")).toThrow();
  });
});
