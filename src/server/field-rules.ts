/**
 * Checks of one field's rules of the simple kinds (request-rules.ts): lengths in code points
 * and patterns of strings, integer bounds, defined and excluded enum values, finite doubles,
 * item and pair counts, and CEL rules of the form `this.matches('...')`. Each answers only
 * whether a value holds its rules; protovalidate names the violations.
 */
import {
  type DescField,
  type DescMessage,
  isFieldSet,
  type Message,
  ScalarType,
} from "@bufbuild/protobuf";
import {
  type FieldRules,
  FieldRulesSchema,
} from "@bufbuild/protovalidate/gen/buf/validate/validate_pb.js";
import { matchRequestPattern } from "./request-patterns.js";

/** Whether one value (a field's, an item's, a key's) holds its rules. */
export type ValueCheck = (value: unknown) => boolean;

/** protovalidate's CEL rule that is a pattern: `this.matches('...')`, no escapes inside. */
const MATCHES = /^this\.matches\('([^'\\]*)'\)$/;

/** The schema of one kind of rules (StringRules, Int64Rules, ...), by FieldRules' case. */
function kindSchema(kind: string): DescMessage | undefined {
  return FieldRulesSchema.fields.find((f) => f.localName === kind)?.message;
}

/** Proto names of the rules set on a rules message, besides `example` (documentation). */
function setRules(rules: Message & { $unknown?: unknown[] }, schema: DescMessage): string[] {
  // Predefined rules (extensions) arrive as unknown fields: not simple.
  if ((rules.$unknown?.length ?? 0) > 0) return ["(extension)"];
  return schema.fields
    .filter((f) => f.name !== "example" && isFieldSet(rules, f))
    .map((f) => f.name);
}

/** The set rules of `rules` when all are among `allowed`, else undefined. */
function simpleRules(rules: FieldRules, allowed: readonly string[]): Set<string> | undefined {
  const kind = rules.type.case;
  const schema = kind === undefined ? undefined : kindSchema(kind);
  if (!schema) return undefined;
  const set = setRules(rules.type.value as Message, schema);
  return set.every((name) => allowed.includes(name)) ? new Set(set) : undefined;
}

/** The rules of a repeated field: item counts only; items are checked by their own type. */
export function listCheck(rules: FieldRules | undefined, items: ValueCheck | null | undefined) {
  if (items === undefined) return undefined;
  let min = 0n;
  let max: bigint | undefined;
  if (rules?.type.case !== undefined) {
    if (rules.type.case !== "repeated") return undefined;
    const set = simpleRules(rules, ["min_items", "max_items"]);
    if (!set) return undefined;
    min = rules.type.value.minItems;
    if (set.has("max_items")) max = rules.type.value.maxItems;
  }
  if (min === 0n && max === undefined && items === null) return null;
  return (v: unknown) => {
    const list = v as readonly unknown[];
    if (list.length < min || (max !== undefined && list.length > max)) return false;
    if (items) for (const item of list) if (!items(item)) return false;
    return true;
  };
}

/** The rules of a map field: pair counts, and string rules on its keys and string values. */
export function mapCheck(
  f: DescField & { fieldKind: "map" },
  rules: FieldRules | undefined,
  values: ValueCheck | null | undefined,
) {
  if (values === undefined) return undefined;
  let min = 0n;
  let max: bigint | undefined;
  let key: ValueCheck | null = null;
  let value: ValueCheck | null = values;
  if (rules?.type.case !== undefined) {
    if (rules.type.case !== "map") return undefined;
    const set = simpleRules(rules, ["min_pairs", "max_pairs", "keys", "values"]);
    if (!set) return undefined;
    const r = rules.type.value;
    min = r.minPairs;
    if (set.has("max_pairs")) max = r.maxPairs;
    if (r.keys) {
      const k = f.mapKey === ScalarType.STRING ? entryStringCheck(r.keys) : undefined;
      if (!k) return undefined;
      key = k;
    }
    if (r.values) {
      const isString = f.mapKind === "scalar" && f.scalar === ScalarType.STRING;
      const v = isString ? entryStringCheck(r.values) : undefined;
      if (!v) return undefined;
      value = v;
    }
  }
  if (min === 0n && max === undefined && key === null && value === null) return null;
  return (v: unknown) => {
    const entries = Object.entries(v as Record<string, unknown>);
    if (entries.length < min || (max !== undefined && entries.length > max)) return false;
    for (const [k, x] of entries) {
      if (key && !key(k)) return false;
      if (value && !value(x)) return false;
    }
    return true;
  };
}

/**
 * Whether rules leave presence alone and name no CEL of their own (`required`, `ignore` and
 * `cel_expression` are not simple; a field's `cel` list is read where it applies).
 */
export function plainRules(rules: FieldRules): boolean {
  return !rules.required && rules.ignore === 0 && rules.celExpression.length === 0;
}

/** String rules on a map's keys or values, when they are nothing else. */
function entryStringCheck(rules: FieldRules): ValueCheck | undefined {
  if (!plainRules(rules) || rules.cel.length > 0) return undefined;
  return stringRulesCheck(rules);
}

/** The check of string rules (`rules.type` a string case) of the simple kinds, else undefined. */
function stringRulesCheck(rules: FieldRules): ValueCheck | undefined {
  if (rules.type.case !== "string") return undefined;
  const set = simpleRules(rules, ["min_len", "max_len", "len", "pattern"]);
  return set && stringCheck(rules.type.value, set);
}

/** Integer kinds of rules, by their FieldRules case. */
const INTEGER_KINDS = new Set([
  "int32",
  "int64",
  "uint32",
  "uint64",
  "sint32",
  "sint64",
  "fixed32",
  "fixed64",
  "sfixed32",
  "sfixed64",
]);

/** The rules of a scalar or enum field (null: none; undefined: not simple). */
export function scalarCheck(
  f: DescField,
  rules: FieldRules | undefined,
): ValueCheck | null | undefined {
  if (!rules) return null;
  const checks: ValueCheck[] = [];
  for (const rule of rules.cel) {
    const pattern = MATCHES.exec(rule.expression)?.[1];
    if (pattern === undefined || f.fieldKind !== "scalar" || f.scalar !== ScalarType.STRING) {
      return undefined;
    }
    checks.push((v) => matchRequestPattern(pattern, v as string));
  }
  const kind = rules.type.case;
  // Rules of another type than the field's are protovalidate's compile error: left to it.
  if (kind !== undefined && kind !== ruleKindOf(f)) return undefined;
  if (kind === "string") {
    const check = stringRulesCheck(rules);
    if (!check) return undefined;
    checks.push(check);
  } else if (kind !== undefined && INTEGER_KINDS.has(kind)) {
    // An exclusive upper bound (`lt`) is in no rule of ours: left to protovalidate, untested here.
    const set = simpleRules(rules, ["gt", "gte", "lte"]);
    if (!set) return undefined;
    const r = rules.type.value as {
      greaterThan: { case: "gt" | "gte" | undefined; value?: number | bigint };
      lessThan: { case: "lte" | undefined; value?: number | bigint };
    };
    const low = r.greaterThan;
    const high = r.lessThan;
    // Both bounds with the upper below the lower mean "outside the range": left to protovalidate.
    if (low.case && high.case && (high.value as bigint) < (low.value as bigint)) return undefined;
    checks.push((v) => {
      const n = v as number | bigint;
      if (low.case === "gt" && !(n > (low.value as bigint))) return false;
      if (low.case === "gte" && !(n >= (low.value as bigint))) return false;
      if (high.case === "lte" && !(n <= (high.value as bigint))) return false;
      return true;
    });
  } else if (kind === "double" || kind === "float") {
    if (!simpleRules(rules, ["finite"])) return undefined;
    if (rules.type.value.finite) checks.push((v) => Number.isFinite(v));
  } else if (kind === "enum") {
    if (!simpleRules(rules, ["defined_only", "not_in"]) || f.fieldKind !== "enum") return undefined;
    const r = rules.type.value;
    const defined = new Set(f.enum.values.map((e) => e.number));
    const excluded = new Set(r.notIn);
    checks.push((v) => (!r.definedOnly || defined.has(v as number)) && !excluded.has(v as number));
  } else if (kind !== undefined) {
    return undefined;
  }
  if (checks.length === 0) return null;
  return (v) => {
    for (const c of checks) if (!c(v)) return false;
    return true;
  };
}

/** The FieldRules case that fits a scalar or enum field ("int64" for int64, "enum", ...). */
function ruleKindOf(f: DescField): string {
  return f.fieldKind === "enum" ? "enum" : ScalarType[f.scalar as ScalarType].toLowerCase();
}

/** Lengths in code points (as CEL's size()), and an RE2 pattern. */
function stringCheck(
  r: { minLen: bigint; maxLen: bigint; len: bigint; pattern: string },
  set: ReadonlySet<string>,
): ValueCheck {
  const min = set.has("min_len") ? Number(r.minLen) : 0;
  const max = set.has("max_len") ? Number(r.maxLen) : Number.POSITIVE_INFINITY;
  const exact = set.has("len") ? Number(r.len) : undefined;
  const pattern = set.has("pattern") ? r.pattern : undefined;
  return (v) => {
    const s = v as string;
    // UTF-16 units bound code points from above, and from below by half (a pair is two units).
    if (s.length > max || s.length < 2 * min || exact !== undefined) {
      const n = codePoints(s);
      if (n > max || n < min || (exact !== undefined && n !== exact)) return false;
    }
    return pattern === undefined || matchRequestPattern(pattern, s);
  };
}

/** Code points of a string: its UTF-16 units less its surrogate pairs (a lone one counts one). */
function codePoints(s: string): number {
  let n = s.length;
  for (let i = 0; i < s.length - 1; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        n--;
        i++;
      }
    }
  }
  return n;
}
