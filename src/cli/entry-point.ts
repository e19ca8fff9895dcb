/** Whether a module is the program node was asked to run, however it was started; how a served program ends. */
import { realpathSync } from "node:fs";
import { fileURLToPath } from "node:url";

/**
 * True when the module at `moduleUrl` is the script node started. npm installs bins as
 * symlinks (`node_modules/.bin/govctl`, `npx govctl`, a global prefix's `bin/`), and node
 * resolves the symlink for `import.meta.url` but not for `process.argv[1]`, so the two paths
 * are compared once both are real.
 */
export function isEntryPoint(moduleUrl: string, script = process.argv[1]): boolean {
  if (!script) return false;
  try {
    return realpathSync(script) === realpathSync(fileURLToPath(moduleUrl));
  } catch {
    return false;
  }
}

/**
 * Ends the program quietly when its reader goes away (`govctl fleet | head`): a closed pipe is
 * the reader's choice, not a failure worth a stack trace.
 */
export function exitQuietlyOnClosedPipe(): void {
  for (const stream of [process.stdout, process.stderr]) {
    stream.on("error", (err: NodeJS.ErrnoException) => {
      if (err.code === "EPIPE") process.exit(process.exitCode ?? 0);
      throw err;
    });
  }
}

/**
 * Resolves once a served program has shut down: on the first SIGTERM or SIGINT, `shutDown`
 * runs with the signal's name (it logs its own failures), then the program ends.
 */
export function servingUntilSignal(shutDown: (signal: string) => Promise<void>): Promise<void> {
  return new Promise<void>((done) => {
    const stop = (signal: string) => {
      shutDown(signal).finally(done);
    };
    process.once("SIGTERM", () => stop("SIGTERM"));
    process.once("SIGINT", () => stop("SIGINT"));
  });
}
