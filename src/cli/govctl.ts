#!/usr/bin/env node
import { Command, CommanderError, Option } from "commander";
/**
 * `govctl`: every admin operation of the four levers against a govd node, over gRPC.
 * Exit codes: 0 ok, 1 refused or failed call, 2 usage, 3 unreachable, 4 unauthenticated,
 * 5 `review` found something that needs attention.
 */
import { exitQuietlyOnClosedPipe, isEntryPoint } from "./entry-point.js";
import { Exit, GovctlError } from "./govctl/client.js";
import { whole } from "./govctl/context.js";
import { addFleetCommand } from "./govctl/fleet-commands.js";
import { addGoLiveCommands } from "./govctl/golive-commands.js";
import { addHeimdallCommands } from "./govctl/heimdall-commands.js";
import { addRegressionCommands } from "./govctl/regression-commands.js";
import { addReviewCommand } from "./govctl/review.js";
import { addRiskCommands } from "./govctl/risk-commands.js";

const EXIT_CODES = `
Exit codes:
  0  ok
  1  the node refused or failed the call (invalid value, precondition not met, internal error)
  2  usage error (unknown command, missing or malformed option)
  3  server unreachable at --addr
  4  not authenticated (no operator token, or the node rejected it)
  5  review: at least one section needs attention`;

/** The govctl program, ready to parse arguments. */
export function govctlProgram(): Command {
  const program = new Command("govctl")
    .description(
      "Operate govd: go-live, kill switch, risk caps, Heimdall gates, regression tripwires",
    )
    .exitOverride()
    .showHelpAfterError("(add --help for usage)")
    .addOption(
      new Option("--addr <host:port>", "govd gRPC address (https://host:port for TLS)")
        .env("GOVCTL_ADDR")
        .default("127.0.0.1:8013"),
    )
    .addOption(
      new Option("--data-dir <dir>", "the sidecar's data dir, where admin.token is")
        .env("GOVD_DATA_DIR")
        .default("./data"),
    )
    .addOption(
      new Option("--token-file <file>", "read the operator token from this file").env(
        "GOVCTL_TOKEN_FILE",
      ),
    )
    .option("--json", "print protobuf JSON for scripts instead of tables", false)
    .addOption(
      new Option("--timeout <seconds>", "give up on the node after")
        .default(5)
        .argParser(whole("--timeout")),
    )
    .addOption(
      new Option("--actor <name>", "who acts (audit trail); default: your user name").env(
        "GOVCTL_ACTOR",
      ),
    )
    .addOption(
      new Option("--correlation-id <id>", "idempotency key of a write (default: a new one)"),
    )
    .addOption(
      new Option(
        "--central-ca <file>",
        "with --addr https://...: PEM CA bundle the node's certificate is checked against",
      ).env("GOVCTL_CENTRAL_CA"),
    )
    .addOption(
      new Option(
        "--tls-cert <file>",
        "with --addr https://...: a client certificate, for central with --client-ca (mTLS)",
      ).env("GOVCTL_TLS_CERT"),
    )
    .addOption(new Option("--tls-key <file>", "the key of --tls-cert").env("GOVCTL_TLS_KEY"))
    .addHelpText(
      "after",
      `\nThe operator token (admin writes only) comes from --token-file, else GOVD_ADMIN_TOKEN, else <data-dir>/admin.token; it is never printed.
${EXIT_CODES}

Examples:
  govctl review
  govctl --addr 127.0.0.1:8013 --data-dir /var/lib/govd killswitch engage --reason "bad deals"
  govctl risk ledger --json | jq '.entries[] | select(.engine == "GLOBAL")'
  govctl --addr central:9013 --data-dir /var/lib/govd-central killswitch engage --reason "bad deals" --wait 2s
  govctl --addr central:9013 fleet
  govctl --addr https://central:9013 --central-ca ca.crt --tls-cert ops.crt --tls-key ops.key fleet`,
    );
  addGoLiveCommands(program);
  addRiskCommands(program);
  addHeimdallCommands(program);
  addRegressionCommands(program);
  addReviewCommand(program);
  addFleetCommand(program);
  return program;
}

/** Runs govctl with `argv`; every failure is one line on stderr and a documented exit code. */
export async function main(argv: string[]): Promise<number> {
  try {
    await govctlProgram().parseAsync(argv);
    return typeof process.exitCode === "number" ? process.exitCode : Exit.OK;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Commander already printed the message; help and version are not errors.
      return err.exitCode === 0 ? Exit.OK : Exit.USAGE;
    }
    if (err instanceof GovctlError) {
      console.error(`govctl: ${err.message}`);
      return err.exitCode;
    }
    console.error(`govctl: ${(err as Error).message ?? String(err)}`);
    return Exit.FAILED;
  }
}

if (isEntryPoint(import.meta.url)) {
  exitQuietlyOnClosedPipe();
  process.exitCode = await main(process.argv);
}
