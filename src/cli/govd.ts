#!/usr/bin/env node
/** The `govd` command: serve a sidecar or the central node, migrate a store, verify its audit trail. */
import { existsSync, mkdirSync } from "node:fs";
import { hostname } from "node:os";
import { Command, Option } from "commander";
import { verifyChain } from "../store/audit-trail.js";
import { migrateTo, openDatabase, StoreError, schemaVersion } from "../store/database.js";
import { LATEST_VERSION, migrations } from "../store/migrations.js";
import { recordedSidecarId } from "../store/sidecar-identity.js";
import { checkAgainstAnchor, fetchAnchor } from "../sync/follower/anchor-check.js";
import { clientCredentials } from "../sync/tls/client-credentials.js";
import { addCentralCommand } from "./central.js";
import { exitQuietlyOnClosedPipe, isEntryPoint } from "./entry-point.js";
import { duration, integer, keepOrDuration, list } from "./flag-values.js";
import { withNodeFlags } from "./node-flags.js";
import { serve, storeFile } from "./serve.js";

function dataDirOption(): Option {
  return new Option("--data-dir <dir>", "folder of the store and the operator token")
    .env("GOVD_DATA_DIR")
    .default("./data");
}

function openExisting(dataDir: string) {
  const file = storeFile(dataDir);
  if (!existsSync(file))
    throw new StoreError(`no store at ${file}: start 'govd serve' or run 'govd migrate up'`);
  return openDatabase(file);
}

/** The flags of `govd audit verify`. */
interface VerifyOptions {
  dataDir: string;
  central?: string;
  sidecarId?: string;
  centralCa?: string;
  tlsCert?: string;
  tlsKey?: string;
  allowRemote?: boolean;
  centralStore?: string;
}

/** The govd program, ready to parse arguments. */
export function govdProgram(): Command {
  const program = new Command("govd")
    .description("Governance sidecar: go-live, risk caps, Heimdall gates and regression tripwires")
    .showHelpAfterError();

  withNodeFlags(
    program
      .command("serve")
      .description(
        "serve a standalone sidecar on its own SQLite store (created, migrated and seeded on first start)",
      )
      .addOption(dataDirOption()),
    { grpcPort: 8013, httpPort: 8014, maxMessageBytes: 1048576 },
  )
    .addOption(
      new Option("--grpc-socket <path>", "also serve gRPC on this unix socket").env(
        "GOVD_GRPC_SOCKET",
      ),
    )
    .addOption(
      new Option("--reservation-ttl-seconds <n>", "release unsettled reservations after")
        .env("GOVD_RESERVATION_TTL_SECONDS")
        .default(900)
        .argParser(integer),
    )
    .addOption(
      new Option(
        "--central <address>",
        "follow this central node (host:port, or https://host:port); repeat or comma-separate replicas, tried in turn",
      )
        .env("GOVD_CENTRAL")
        .argParser(list),
    )
    .addOption(
      new Option("--sidecar-id <id>", "this sidecar's id at central (default: the host name)").env(
        "GOVD_SIDECAR_ID",
      ),
    )
    .addOption(
      new Option("--engine <names>", "the engines this sidecar serves, for central's fleet view")
        .env("GOVD_ENGINES")
        .argParser(list),
    )
    .addOption(
      new Option(
        "--stale-after <duration>",
        "with --central: PROD and PROD_EXEC fail closed once central has not been heard from for this long",
      )
        .env("GOVD_STALE_AFTER")
        .default(30_000, "30s")
        .argParser(duration),
    )
    .addOption(
      new Option(
        "--retain-shipped <keep|duration>",
        "with --central: prune audit events central acked once older than this, at least 10m (default: keep, prune nothing)",
      )
        .env("GOVD_RETAIN_SHIPPED")
        .argParser(keepOrDuration),
    )
    .addOption(
      new Option(
        "--central-ca <file>",
        "with --central https://...: PEM CA bundle central's certificate is checked against (default: Node's roots)",
      ).env("GOVD_CENTRAL_CA"),
    )
    .addOption(
      new Option(
        "--tls-cert <file>",
        "with --central https://...: this sidecar's client certificate (SAN URI govd-sidecar://<sidecar-id>), reloaded when it changes",
      ).env("GOVD_TLS_CERT"),
    )
    .addOption(
      new Option("--tls-key <file>", "with --tls-cert: its private key").env("GOVD_TLS_KEY"),
    )
    .addOption(
      new Option(
        "--central-token-file <path>",
        "with --central: the operator token central asks for when a trip is reported (or GOVD_CENTRAL_TOKEN)",
      ).env("GOVD_CENTRAL_TOKEN_FILE"),
    )
    .addHelpText(
      "after",
      "\nThe operator token is read from GOVD_ADMIN_TOKEN, else <data-dir>/admin.token (made on first start, mode 0600).\n\nExamples:\n  govd serve --data-dir /var/lib/govd --grpc-socket /run/govd.sock\n  govd serve --central 10.0.0.5:9013,10.0.0.6:9013 --sidecar-id wholesale-7 --engine WHOLESALE --stale-after 30s",
    )
    .action(serve);

  addCentralCommand(program, dataDirOption);

  const migrate = program.command("migrate").description("move the store's schema up or down");
  migrate
    .command("up")
    .description("apply every pending migration (creates the store when missing)")
    .addOption(dataDirOption())
    .action((o: { dataDir: string }) => {
      mkdirSync(o.dataDir, { recursive: true, mode: 0o700 });
      const db = openDatabase(storeFile(o.dataDir));
      const applied = migrateTo(db, LATEST_VERSION);
      console.log(
        applied.length
          ? applied.map((m) => `applied ${m.version}: ${m.name}`).join("\n")
          : `already at ${LATEST_VERSION}`,
      );
      db.close();
    });
  migrate
    .command("down")
    .description("revert migrations, one step or down to --to")
    .addOption(dataDirOption())
    .option("--to <version>", "target version (0 removes every table)", integer)
    .action((o: { dataDir: string; to?: number }) => {
      const db = openExisting(o.dataDir);
      const target = o.to ?? Math.max(0, schemaVersion(db) - 1);
      const reverted = migrateTo(db, target);
      console.log(
        reverted.length
          ? reverted.map((m) => `reverted ${m.version}: ${m.name}`).join("\n")
          : `already at ${target}`,
      );
      db.close();
    });
  migrate
    .command("status")
    .description("show the store's schema version and the known migrations")
    .addOption(dataDirOption())
    .action((o: { dataDir: string }) => {
      const db = openExisting(o.dataDir);
      const current = schemaVersion(db);
      db.close();
      console.log(
        `store ${storeFile(o.dataDir)} is at version ${current} (this build knows ${LATEST_VERSION})`,
      );
      for (const m of migrations)
        console.log(`${m.version <= current ? "applied" : "pending"}  ${m.version}  ${m.name}`);
    });

  program
    .command("backup")
    .description(
      "copy the store to <file> with SQLite's online backup (safe while the sidecar serves)",
    )
    .argument("<file>", "where to write the copy (must not exist)")
    .addOption(dataDirOption())
    .action(async (file: string, o: { dataDir: string }) => {
      if (existsSync(file)) throw new Error(`${file} exists: choose a new file name`);
      const db = openExisting(o.dataDir);
      try {
        await db.backup(file);
      } finally {
        db.close();
      }
      console.log(`backed up ${storeFile(o.dataDir)} to ${file}`);
    });

  program
    .command("audit")
    .description("audit trail tools")
    .command("verify")
    .description(
      "walk the hash chain and report the first broken link; with --central, also check it against the anchor central holds of this sidecar; with --central-store, walk every sidecar's trail central holds (exit 1 when broken)",
    )
    .addOption(dataDirOption())
    .addOption(
      new Option(
        "--central-store <location>",
        "on central: its store (sqlite:PATH or postgres://...), whose every sidecar's shipped trail is walked and checked against central's anchor",
      ),
    )
    .addOption(
      new Option(
        "--central <address>",
        "a connected sidecar's central (host:port or https://host:port): the newest events it holds must be here",
      ).env("GOVD_CENTRAL"),
    )
    .addOption(
      new Option("--sidecar-id <id>", "this sidecar's id at central (default: the host name)").env(
        "GOVD_SIDECAR_ID",
      ),
    )
    .addOption(new Option("--central-ca <file>", "with https: the CA of central's certificate"))
    .addOption(new Option("--tls-cert <file>", "with https: this sidecar's client certificate"))
    .addOption(new Option("--tls-key <file>", "with --tls-cert: its private key"))
    .addOption(new Option("--allow-remote", "allow a plaintext central off loopback"))
    .action(async (o: VerifyOptions) => {
      if (o.centralStore !== undefined) {
        if (o.central) throw new Error("--central-store and --central: pick one");
        // Central's store code is loaded only here: a sidecar's process never holds it.
        const { verifyCentralTrails } = await import("./central-audit.js");
        if (!(await verifyCentralTrails(o.centralStore))) process.exitCode = 1;
        return;
      }
      const db = openExisting(o.dataDir);
      try {
        const report = verifyChain(db);
        if (report.ok) {
          const pruned =
            report.prunedSeq > 0
              ? ` (events 1-${report.prunedSeq} pruned after central acked them; central holds them)`
              : "";
          console.log(`audit chain intact: ${report.events} events, head ${report.head}${pruned}`);
        } else {
          console.log(
            `audit chain BROKEN at event ${report.firstBroken?.seq}: ${report.firstBroken?.problem}`,
          );
          process.exitCode = 1;
        }
        if (!o.central) return;
        // The id the store ships as (recorded at its connected start), as `govd serve` picks it.
        const sidecarId = o.sidecarId ?? recordedSidecarId(db) ?? hostname();
        const endpoint = clientCredentials({
          central: o.central,
          allowRemote: o.allowRemote ?? false,
          sidecarId,
          centralCaFile: o.centralCa,
          certFile: o.tlsCert,
          keyFile: o.tlsKey,
        });
        const anchor = await fetchAnchor(endpoint, sidecarId);
        if (!anchor) {
          console.log(`central ${o.central} holds no anchor of sidecar ${sidecarId} yet`);
          return;
        }
        const problems = checkAgainstAnchor(db, anchor);
        for (const p of problems) console.log(`audit chain BROKEN against central's anchor: ${p}`);
        if (problems.length > 0) process.exitCode = 1;
        else console.log(`central's anchor holds: event ${anchor.shippedSeq} matches central's`);
      } finally {
        db.close();
      }
    });
  return program;
}

/** Runs govd with the process arguments; errors become one line and exit code 1. */
export async function main(argv: string[]): Promise<void> {
  try {
    await govdProgram().parseAsync(argv);
  } catch (err) {
    console.error(`govd: ${(err as Error).message}`);
    process.exitCode = 1;
  }
}

if (isEntryPoint(import.meta.url)) {
  exitQuietlyOnClosedPipe();
  await main(process.argv);
}
