/** govctl's output: aligned tables for people, protobuf JSON for scripts. */
import { type DescMessage, type MessageShape, toJson } from "@bufbuild/protobuf";
import type { Timestamp } from "@bufbuild/protobuf/wkt";

/** One cell value. */
export type Cell = string | number | bigint | boolean | undefined;

function text(c: Cell): string {
  if (c === undefined || c === "") return "-";
  if (typeof c === "boolean") return c ? "yes" : "no";
  return String(c);
}

/** An aligned table with a header row. */
export function table(headers: readonly string[], rows: readonly Cell[][]): string {
  const cells = [headers.map(String), ...rows.map((r) => r.map(text))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? "").length)));
  return cells
    .map((r) =>
      r
        .map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
        .join("  ")
        .trimEnd(),
    )
    .join("\n");
}

/** `key: value` lines, aligned. */
export function fields(pairs: readonly [string, Cell][]): string {
  const width = Math.max(...pairs.map(([k]) => k.length));
  return pairs.map(([k, v]) => `${`${k}:`.padEnd(width + 1)} ${text(v)}`).join("\n");
}

/** A message as protobuf JSON (enum names, camelCase fields, defaults included). */
export function json<D extends DescMessage>(schema: D, message: MessageShape<D>): unknown {
  return toJson(schema, message, { alwaysEmitImplicit: true });
}

/** A timestamp as ISO 8601 in UTC, or "-". */
export function when(t: Timestamp | undefined): string {
  if (!t) return "-";
  return new Date(Number(t.seconds) * 1000 + Math.floor(t.nanos / 1e6)).toISOString();
}

/** A fraction as a percentage with one decimal. */
export function percent(x: number): string {
  return `${(x * 100).toFixed(1)}%`;
}

/** An enum value's name without its prefix (TRIPWIRE_STATUS_OK -> OK). */
export function enumName(names: Record<number, string>, value: number): string {
  return names[value] ?? String(value);
}

/** Where a command writes: stdout, as a table or as JSON. */
export interface Printer {
  json: boolean;
  /** Prints `human()` for people or `machine` as JSON for scripts. */
  print(human: () => string, machine: unknown): void;
}

/** A printer on stdout. */
export function stdoutPrinter(asJson: boolean): Printer {
  return {
    json: asJson,
    print(human, machine) {
      process.stdout.write(
        asJson ? `${JSON.stringify(machine, null, 2)}\n` : `${human().trimEnd()}\n`,
      );
    },
  };
}

/**
 * The line under a page of events that tells how to read on (nothing on the last page): by
 * `--after` on a sidecar (and on central within one sidecar), else by central's page token.
 */
export function morePages(nextAfterSeq: bigint, nextPageToken = ""): string {
  if (nextAfterSeq > 0n) return `\nmore events: add --after ${nextAfterSeq}`;
  return nextPageToken === "" ? "" : `\nmore events: add --page-token ${nextPageToken}`;
}
