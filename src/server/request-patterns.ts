/**
 * Matching for the regular expressions in our request rules (protovalidate's `regexMatch`).
 *
 * protovalidate matches schema patterns with an RE2 engine written in JavaScript: three of
 * them on a Reserve, 1-2% of its CPU. This schema's patterns are few, fixed and simple
 * (anchored character classes with bounded repeats), where the platform RegExp gives the same
 * answer in linear time. A test checks that every pattern in proto/ is listed here and that
 * both engines agree on each. Any other pattern is matched by RE2, as protovalidate would.
 */
import { RE2JS } from "@bufbuild/re2";

/** The patterns of proto/governance/v1 (string.pattern rules and CEL matches() calls). */
export const SCHEMA_PATTERNS: readonly string[] = [
  "^[A-Z][A-Z0-9_]{0,63}$",
  "^([A-Z][A-Z0-9_]{0,63})?$",
  "^[a-z][a-z0-9_]{0,63}$",
  "^(0|[1-9][0-9]{0,8})([.][0-9]{1,6})?$",
  "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$",
  "^([A-Za-z0-9][A-Za-z0-9._-]{0,127})?$",
  "^([0-9a-f]{64})?$",
];

const platform = new Map(SCHEMA_PATTERNS.map((p) => [p, new RegExp(p, "u")]));
const re2 = new Map<string, RE2JS>();
/** Bound on compiled RE2 patterns kept, should a rule ever build patterns from input. */
const RE2_KEPT = 1024;

/** Answers whether `against` matches `pattern` with RE2 semantics. */
export function matchRequestPattern(pattern: string, against: string): boolean {
  const fast = platform.get(pattern);
  if (fast) return fast.test(against);
  let compiled = re2.get(pattern);
  if (!compiled) {
    if (re2.size >= RE2_KEPT) re2.clear();
    compiled = RE2JS.compile(pattern);
    re2.set(pattern, compiled);
  }
  return compiled.test(against);
}
