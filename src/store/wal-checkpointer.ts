/**
 * Moves SQLite's WAL checkpoints off the deciding thread. With synchronous=NORMAL a commit does
 * not fsync; the checkpoint that copies the WAL back into the database does, and SQLite runs it
 * inside whichever commit crosses wal_autocheckpoint: on the thread that decides, every ~130
 * reservations, for milliseconds (bench: Reserve p99 10.8 ms in-process). Here the serving
 * connection never checkpoints; a worker thread with its own connection runs a PASSIVE
 * checkpoint on a timer, which in WAL mode waits for no writer and blocks none. Once a
 * checkpoint has copied every frame, the next writer starts the WAL over, so it stays bounded.
 */
import { createRequire } from "node:module";
import { Worker } from "node:worker_threads";
import type { Db } from "./database.js";

// The worker's code: plain CommonJS, so it runs the same from src (tests) and dist.
const WORKER = `
const { parentPort, workerData } = require("node:worker_threads");
const Database = require(workerData.sqlite);
const db = new Database(workerData.file, { fileMustExist: true });
db.pragma("busy_timeout = 5000");
const checkpoint = () => {
  try {
    const [r] = db.pragma("wal_checkpoint(PASSIVE)");
    parentPort.postMessage({ kind: "checkpoint", log: r.log, checkpointed: r.checkpointed });
  } catch (err) {
    parentPort.postMessage({ kind: "error", message: String(err && err.message) });
  }
};
const timer = setInterval(checkpoint, workerData.intervalMs);
parentPort.on("message", (m) => {
  if (m !== "stop") return;
  clearInterval(timer);
  checkpoint();
  db.close();
  parentPort.close();
});
`;

/** The last checkpoint the worker ran: WAL frames, and how many of them were copied. */
export interface CheckpointReport {
  log: number;
  checkpointed: number;
}

/** A worker thread that checkpoints the store's WAL every `intervalMs`. */
export class WalCheckpointer {
  private readonly worker: Worker;
  private readonly exited: Promise<void>;
  /** The latest report, for tests and metrics. */
  last: CheckpointReport | undefined;
  /** Checkpoints run so far. */
  runs = 0;

  constructor(db: Db, file: string, intervalMs: number, onError: (message: string) => void) {
    db.pragma("wal_autocheckpoint = 0");
    this.worker = new Worker(WORKER, {
      eval: true,
      workerData: {
        file,
        intervalMs,
        sqlite: createRequire(import.meta.url).resolve("better-sqlite3"),
      },
    });
    this.worker.on(
      "message",
      (m: { kind: string; log?: number; checkpointed?: number; message?: string }) => {
        if (m.kind === "checkpoint") {
          this.runs++;
          this.last = { log: m.log ?? 0, checkpointed: m.checkpointed ?? 0 };
        } else if (m.kind === "error") {
          onError(m.message ?? "checkpoint failed");
        }
      },
    );
    this.worker.on("error", (err) => onError(err.message));
    this.exited = new Promise((resolve) => this.worker.once("exit", () => resolve()));
    this.worker.unref();
  }

  /** Runs a last checkpoint, closes the worker's connection and waits for it to end. */
  async stop(): Promise<void> {
    // Unreferenced while serving; referenced now, so the process waits for the last checkpoint.
    this.worker.ref();
    this.worker.postMessage("stop");
    await this.exited;
  }
}
