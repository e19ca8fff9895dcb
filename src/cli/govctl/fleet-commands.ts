/**
 * `govctl fleet` (central's view of its sidecars) and `--wait DURATION` on central's writes:
 * after the write, wait until every connected sidecar acked its revision, and say who did not.
 */
import { type Command, InvalidArgumentError, Option } from "commander";
import {
  ListSidecarsResponseSchema,
  SyncService,
  type WaitForAcksResponse,
} from "../../../gen/governance/v1/sync_pb.js";
import { Exit, GovctlError } from "./client.js";
import { type Ctx, withCtx } from "./context.js";
import { json, table, when } from "./output.js";

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000 };

/** Parses a duration such as 500ms, 2s or 1m into milliseconds (at most 5 minutes). */
export function duration(value: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)$/.exec(value.trim());
  const ms = m ? Math.round(Number(m[1]) * (UNITS[m[2] ?? ""] ?? 0)) : Number.NaN;
  if (!Number.isFinite(ms) || ms <= 0 || ms > 300_000) {
    throw new InvalidArgumentError("must be a duration such as 500ms, 2s or 1m (at most 5m)");
  }
  return ms;
}

/** The --wait option of central's writes. */
export function waitOption(): Option {
  return new Option(
    "--wait <duration>",
    "on central: then wait until every connected sidecar acked the change (e.g. 2s); exit 1 naming those that did not",
  ).argParser(duration);
}

/** The wait's report: "N/N acked in X ms" and each sidecar's ack time. */
export function ackReport(r: WaitForAcksResponse): string {
  const acked = r.acks.filter((a) => a.acked);
  const slowest = acked.reduce((m, a) => (a.ackMs > m ? a.ackMs : m), 0n);
  const head =
    r.connected === 0
      ? `0/0 acked: no sidecar is connected to central (revision ${r.revision})`
      : `${r.acked}/${r.connected} acked in ${slowest} ms (revision ${r.revision})`;
  const rows = r.acks.map((a) => [
    a.sidecarId,
    a.acked ? "acked" : "NOT ACKED",
    a.acked ? `${a.ackMs} ms` : "-",
    a.appliedRevision,
  ]);
  return rows.length === 0
    ? head
    : `${head}\n${table(["sidecar", "ack", "after", "applied revision"], rows)}`;
}

/**
 * After a write at `revision`: with --wait, waits for the connected sidecars' acks and prints
 * the report (to stderr with --json, so stdout stays one JSON document). Throws (exit 1) naming
 * the sidecars that did not ack in time.
 */
export async function waitForFleet(
  ctx: Ctx,
  waitMs: number | undefined,
  revision: bigint | undefined,
): Promise<void> {
  if (waitMs === undefined) return;
  const target =
    revision && revision > 0n
      ? revision
      : (await ctx.client.call(SyncService, "listSidecars", {})).revision;
  const res = await ctx.client.call(
    SyncService,
    "waitForAcks",
    { revision: target, timeoutMs: BigInt(waitMs) },
    false,
    waitMs + 5_000,
  );
  const report = ackReport(res);
  if (ctx.out.json) process.stderr.write(`${report}\n`);
  else process.stdout.write(`${report}\n`);
  const missing = res.acks.filter((a) => !a.acked).map((a) => a.sidecarId);
  if (missing.length > 0) {
    throw new GovctlError(
      `${missing.length} of ${res.connected} connected sidecars did not ack revision ${res.revision} within ${waitMs} ms: ${missing.join(", ")}`,
      Exit.FAILED,
    );
  }
}

/** Adds `fleet` to `program`. */
export function addFleetCommand(program: Command): void {
  program
    .command("fleet")
    .description(
      "central's view of its sidecars: applied revision, lag, connection, last NACK, shipped events, outbox, anchor",
    )
    .addHelpText("after", "\nExample:\n  govctl --addr central:9013 fleet")
    .action(
      withCtx(async (ctx) => {
        const res = await ctx.client.call(SyncService, "listSidecars", {});
        ctx.out.print(
          () =>
            `${table(
              [
                "sidecar",
                "engines",
                "applied",
                "lag",
                "connected",
                "replica",
                "last heard",
                "staleness",
                "last NACK",
                "resync",
                "shipped",
                "outbox",
                "anchor",
                "ship conflict",
              ],
              res.sidecars.map((s) => [
                s.sidecarId,
                s.engines.join(","),
                s.appliedRevision,
                s.lag,
                s.connected,
                s.replica,
                when(s.lastHeard),
                `${s.stalenessMs} ms`,
                s.lastNackRevision > 0n ? `${s.lastNackRevision}: ${s.lastNackError}` : "",
                s.lastResync,
                s.shippedSeq,
                `${s.outboxEvents} (oldest ${s.outboxOldestMs} ms)`,
                s.shippedHash ? `${s.shippedSeq}:${s.shippedHash.slice(0, 12)}` : "",
                s.shipConflict,
              ]),
            )}\n\ncentral revision: ${res.revision}; ${res.sidecars.filter((s) => s.connected).length} of ${res.sidecars.length} sidecars connected`,
          json(ListSidecarsResponseSchema, res),
        );
      }),
    );
}
