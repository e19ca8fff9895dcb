/**
 * The request rules of the schema (protovalidate's, in proto/), enforced on every call, with
 * the common case answered in plain code. protovalidate walks each request by reflection and
 * copies a field path for every field it checks: about 1.3 KB and a few microseconds per
 * sidecar decision, and about 4.9 KB and 4.4-5.5 us per shipped event on central (a fifth of
 * its ingest; docs/performance.md, What changed item 16).
 * Most of our rules are simple (lengths, patterns, bounds, enum values), so each request type
 * whose rules are all of those kinds gets a check compiled from its descriptors' rules: it
 * answers only whether the request holds every rule. When it holds them, that is the answer;
 * when it does not, protovalidate runs and names the violations, so errors read as before. A
 * type with any other rule (CEL other than `this.matches('...')`, message rules, required
 * fields, ...) is checked by protovalidate alone. test/request-rules.test.ts compares the
 * checks with protovalidate on generated requests of every request type.
 */
import {
  create,
  type DescField,
  type DescMessage,
  getOption,
  hasOption,
  isFieldSet,
  type Message,
} from "@bufbuild/protobuf";
import { FeatureSet_FieldPresence } from "@bufbuild/protobuf/wkt";
import { createValidator, type Validator } from "@bufbuild/protovalidate";
import {
  field as fieldRulesOption,
  message as messageRulesOption,
  oneof as oneofRulesOption,
} from "@bufbuild/protovalidate/gen/buf/validate/validate_pb.js";
import { Code, ConnectError } from "@connectrpc/connect";
import { listCheck, mapCheck, plainRules, scalarCheck, type ValueCheck } from "./field-rules.js";
import { matchRequestPattern } from "./request-patterns.js";

/** Whether a message holds every rule of its type. */
export type RuleCheck = (message: Message) => boolean;

/** The rules enforced on requests: checks compiled per type, protovalidate for the rest. */
export class RequestRules {
  private readonly validator: Validator = createValidator({ regexMatch: matchRequestPattern });
  private readonly checks = new Map<DescMessage, RuleCheck | null>();
  /** Types protovalidate has compiled (it compiles a type on first use). */
  private readonly validated = new Set<DescMessage>();
  private compiledOnCalls = 0;

  /** Throws InvalidArgument naming every violation (protovalidate's words) when a rule fails. */
  enforce(schema: DescMessage, message: Message): void {
    const check = this.checkOf(schema);
    if (check?.(message)) return;
    if (!this.validated.has(schema)) {
      this.validated.add(schema);
      this.compiledOnCalls++;
    }
    const result = this.validator.validate(schema, message);
    if (result.kind === "valid") return;
    if (result.kind === "invalid") {
      const text = result.violations.map((v) => v.toString()).join("; ");
      throw new ConnectError(`invalid request: ${text}`, Code.InvalidArgument);
    }
    throw result.error;
  }

  /** Compiles a type's rules now: protovalidate's first use of a type costs 100+ ms. */
  warmUp(schema: DescMessage): void {
    this.checkOf(schema);
    this.validator.validate(schema, create(schema));
    this.validated.add(schema);
  }

  /** How many request types protovalidate first compiled during a call, not at warm-up. */
  get compiledOnCall(): number {
    return this.compiledOnCalls;
  }

  private checkOf(schema: DescMessage): RuleCheck | null {
    let check = this.checks.get(schema);
    if (check === undefined) {
      check = compileRuleCheck(schema) ?? null;
      this.checks.set(schema, check);
    }
    return check;
  }
}

/** A plain-code check of `schema`'s rules, or undefined when some rule is not of the simple kinds. */
export function compileRuleCheck(schema: DescMessage): RuleCheck | undefined {
  const checks = fieldChecks(schema, new Set());
  return checks && allOf(checks);
}

/** Every rule-bearing field's check of a message type (undefined: some rule is not simple). */
function fieldChecks(schema: DescMessage, inProgress: Set<DescMessage>): RuleCheck[] | undefined {
  // A type that contains itself is left to protovalidate.
  if (inProgress.has(schema)) return undefined;
  if (hasOption(schema, messageRulesOption)) {
    const m = getOption(schema, messageRulesOption);
    if (m.cel.length > 0 || m.celExpression.length > 0 || m.oneof.length > 0) return undefined;
  }
  for (const o of schema.oneofs) {
    if (hasOption(o, oneofRulesOption) && getOption(o, oneofRulesOption).required) return undefined;
  }
  inProgress.add(schema);
  try {
    const checks: RuleCheck[] = [];
    for (const f of schema.fields) {
      const check = fieldCheck(f, inProgress);
      if (check === undefined) return undefined;
      if (check !== null) checks.push(check);
    }
    return checks;
  } finally {
    inProgress.delete(schema);
  }
}

function allOf(checks: readonly RuleCheck[]): RuleCheck {
  return (message) => {
    for (const c of checks) if (!c(message)) return false;
    return true;
  };
}

/** The check of one field of a message (null: nothing to check; undefined: not simple). */
function fieldCheck(f: DescField, inProgress: Set<DescMessage>): RuleCheck | null | undefined {
  const rules = hasOption(f, fieldRulesOption) ? getOption(f, fieldRulesOption) : undefined;
  if (rules && !plainRules(rules)) return undefined;
  let check: ValueCheck | null | undefined;
  switch (f.fieldKind) {
    case "scalar":
    case "enum":
      check = scalarCheck(f, rules);
      break;
    case "message":
      if (rules?.type.case !== undefined || (rules?.cel.length ?? 0) > 0) return undefined;
      check = messageCheck(f.message, inProgress);
      break;
    case "list": {
      if ((rules?.cel.length ?? 0) > 0) return undefined;
      const items = f.listKind === "message" ? messageCheck(f.message, inProgress) : null;
      check = listCheck(rules, items);
      break;
    }
    case "map": {
      if ((rules?.cel.length ?? 0) > 0) return undefined;
      const values = f.mapKind === "message" ? messageCheck(f.message, inProgress) : null;
      check = mapCheck(f, rules, values);
      break;
    }
  }
  if (check === undefined || check === null) return check;
  const test = check;
  const name = f.localName;
  const oneof = f.oneof?.localName;
  if (oneof !== undefined) {
    // A member of a oneof is checked when it is the one set.
    return (m) => {
      const o = (m as unknown as Record<string, { case?: string; value?: unknown }>)[oneof];
      return o?.case !== name || test(o.value);
    };
  }
  // Lists, maps and implicit-presence scalars are always checked; a field with explicit presence
  // (a message, a proto3 `optional`, a proto2 or editions field) only when it is set.
  if (
    f.fieldKind === "list" ||
    f.fieldKind === "map" ||
    f.presence === FeatureSet_FieldPresence.IMPLICIT
  ) {
    return (m) => test((m as unknown as Record<string, unknown>)[name]);
  }
  return (m) => !isFieldSet(m, f) || test((m as unknown as Record<string, unknown>)[name]);
}

/** Nested messages: their own rules (none: not walked); well-known types have none of ours. */
function messageCheck(schema: DescMessage, inProgress: Set<DescMessage>) {
  if (schema.file.name.startsWith("google/protobuf/")) return null;
  const checks = fieldChecks(schema, inProgress);
  if (checks === undefined) return undefined;
  if (checks.length === 0) return null;
  const check = allOf(checks);
  return (v: unknown) => check(v as Message);
}
