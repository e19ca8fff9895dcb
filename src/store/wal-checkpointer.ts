/**
 * Moves SQLite's WAL checkpoints off the deciding thread. With synchronous=NORMAL a commit does
 * not fsync; the checkpoint that copies the WAL back into the database does, and SQLite runs it
 * inside whichever commit crosses wal_autocheckpoint: on the thread that decides, every ~130
 * reservations, for milliseconds (bench: Reserve p99 10.8 ms in-process). Here the serving
 * connection never checkpoints; a worker thread with its own connection runs a PASSIVE
 * checkpoint on a timer, which in WAL mode waits for no writer and blocks none. Once a
 * checkpoint has copied every frame, the next writer starts the WAL over.
 *
 * Under writes that never pause, no PASSIVE checkpoint is ever complete (frames arrive while it
 * copies), so no writer may start the WAL over and it grows without end (measured: 3.2 GB after
 * 20 s of in-process Reserves, every commit slower for it). The worker cannot make room itself:
 * a RESTART checkpoint needs the write lock, and a writer that never pauses wins every race for
 * it. So the worker raises a shared flag when a PASSIVE checkpoint leaves more than
 * RESTART_FRAMES in the WAL, and the writer, between two of its transactions, runs the RESTART
 * itself (`restartIfOvergrown`): the worker has already copied all but the last moments' frames,
 * so it copies little, and the next commit starts the WAL over and cuts its file back to
 * journal_size_limit.
 *
 * The first commit into a WAL that starts over writes the WAL's header and, with
 * synchronous=NORMAL, fsyncs it: on an idle sidecar that is the first decision after a quiet
 * second, or the apply of a change from central (fifty sidecars syncing at the moment a kill
 * switch reaches them). So once a checkpoint has copied every frame of what other connections
 * committed, the worker starts the WAL over itself with a write of its own (a counter in meta,
 * `wal_restarts`), never waiting for the write lock and only when the deciding thread has not
 * committed for QUIET_MS (else its next commit could wait for this one's lock and sync): the
 * header's sync runs on the worker, and the next commit on the deciding thread appends to a WAL
 * already started. A WAL that holds nothing but that write is not checkpointed (nothing in it
 * needs to reach the disk), so an idle store stays idle; any other commit since the read before
 * the last checkpoint is checkpointed at the next tick. A tick that copied every frame but found
 * the writer busy looks once more soon after the writer will have been quiet for QUIET_MS (if
 * it commits nothing more by then), rather than leaving the start-over to the next second.
 */
import { createRequire } from "node:module";
import { Worker } from "node:worker_threads";
import type { Db } from "./database.js";

/** What one look of the worker needs of its connection (see `walTick`). */
export interface WalTickStore {
  /** PRAGMA data_version: changes when another connection commits, never for its own. */
  dataVersion(): number;
  /** A PASSIVE checkpoint: the WAL's frames, and how many of them are now in the database. */
  checkpoint(): { log: number; checkpointed: number };
  /** Whether the deciding thread has been quiet long enough (and the store can start over). */
  quiet(): boolean;
  /** Starts the WAL over with a write of its own, never waiting: false when the lock is busy. */
  startOver(): boolean;
}

/**
 * What one look did: nothing (no commit since), or a checkpoint, perhaps starting over.
 * `retry`: every frame was copied but the deciding thread had committed too recently to start
 * over, so the worker looks once more when that moment has passed (see `walTick`).
 */
export type WalTickReport =
  | { kind: "idle" }
  | { kind: "checkpoint"; log: number; checkpointed: number; restarted: boolean; retry: boolean };

/**
 * One look of the worker (`last`: the one at stop, which always checkpoints and writes nothing).
 * `state.restartedAt` is the data_version read before the checkpoint that preceded the worker's
 * own restart write: unchanged means no other connection committed since that read, so the WAL
 * holds only that write and needs no checkpoint. A commit during the checkpoint changes it, so
 * the next look copies it. Plain JavaScript inside (it runs in the worker as its source text).
 */
export function walTick(
  store: WalTickStore,
  state: { restartedAt: number },
  last: boolean,
): WalTickReport {
  const version = store.dataVersion();
  if (!last && version === state.restartedAt) return { kind: "idle" };
  const r = store.checkpoint();
  const copiedAll = !last && r.log > 0 && r.checkpointed === r.log;
  const quiet = copiedAll && store.quiet();
  let restarted = false;
  if (quiet && store.startOver()) {
    state.restartedAt = version;
    restarted = true;
  }
  return {
    kind: "checkpoint",
    log: r.log,
    checkpointed: r.checkpointed,
    restarted,
    retry: copiedAll && !quiet,
  };
}

// The worker's code: plain CommonJS, so it runs the same from src (tests) and dist.
const WORKER = `
const { parentPort, workerData } = require("node:worker_threads");
const Database = require(workerData.sqlite);
const db = new Database(workerData.file, { fileMustExist: true });
db.pragma("busy_timeout = 5000");
// [0]: the WAL has grown past restartFrames; [1]: a checkpoint of this worker is running;
// [2]: when the deciding thread last committed (Date.now() modulo 2^31 - 1).
const flags = new Int32Array(workerData.flags);
const CLOCK = 0x7fffffff;
const sinceCommit = () => (Date.now() % CLOCK - Atomics.load(flags, 2) + CLOCK) % CLOCK;
const quiet = () => sinceCommit() >= workerData.quietMs;
const dataVersion = db.prepare("PRAGMA data_version").pluck();
// A store without govd's meta table (a bare database) is only checkpointed.
// Its restarts cut the WAL file back as the deciding thread's do.
db.pragma("journal_size_limit = " + workerData.journalSizeLimit);
const restart = db.prepare("SELECT 1 FROM sqlite_master WHERE name = 'meta'").get()
  ? db.prepare(
      "INSERT INTO meta (key, value) VALUES ('wal_restarts', 1) ON CONFLICT (key) DO UPDATE SET value = value + 1",
    )
  : undefined;
const state = { restartedAt: -1 };
const store = {
  dataVersion: () => dataVersion.get(),
  checkpoint: () => {
    Atomics.store(flags, 1, 1);
    try {
      const [r] = db.pragma("wal_checkpoint(PASSIVE)");
      if (r.log > workerData.restartFrames) Atomics.store(flags, 0, 1);
      return r;
    } finally {
      Atomics.store(flags, 1, 0);
    }
  },
  quiet: () => restart !== undefined && quiet(),
  startOver: () => {
    db.pragma("busy_timeout = 0");
    try {
      restart.run();
      return true;
    } catch (err) {
      // The deciding thread holds the write lock: its commit starts the WAL over itself.
      if (!String(err && err.code).startsWith("SQLITE_BUSY")) throw err;
      return false;
    } finally {
      db.pragma("busy_timeout = 5000");
    }
  },
};
const walTick = ${walTick.toString()};
// One more look when a tick found the writer too busy to start the WAL over, half a quiet
// moment after the writer will have been quiet long enough if it commits nothing more: its
// commits come in bursts (a change, then the shipper's transactions), and a tick that lands in
// one would otherwise leave the next burst's first commit to start the WAL over and sync its
// header. Not at the very moment the quiet rule is met: the event shipper looks 100 ms after a
// commit, and the deciding thread would wait for this write's lock (and its sync) there.
let retry;
const checkpoint = (last, again) => {
  try {
    const report = walTick(store, state, last);
    if (report.retry && !again && restart && retry === undefined) {
      const wait = Math.max(0, workerData.quietMs - sinceCommit()) + workerData.quietMs / 2;
      retry = setTimeout(() => {
        retry = undefined;
        checkpoint(false, true);
      }, wait);
    }
    parentPort.postMessage(report);
  } catch (err) {
    parentPort.postMessage({ kind: "error", message: String(err && err.message) });
  }
};
const timer = setInterval(() => checkpoint(false, false), workerData.intervalMs);
parentPort.on("message", (m) => {
  if (m !== "stop") return;
  clearInterval(timer);
  clearTimeout(retry);
  checkpoint(true, false);
  db.close();
  parentPort.close();
});
`;

/** The last checkpoint the worker ran: WAL frames, and how many of them were copied. */
export interface CheckpointReport {
  log: number;
  checkpointed: number;
}

/** How long the writer must not have committed before the worker starts the WAL over. */
const QUIET_MS = 100;

/** WAL frames (a page each) past which the writer restarts the WAL between transactions. */
export const RESTART_FRAMES = 4_000;

/** A worker thread that checkpoints the store's WAL every `intervalMs`. */
export class WalCheckpointer {
  private readonly worker: Worker;
  private readonly exited: Promise<void>;
  /** The latest report, for tests and metrics. */
  last: CheckpointReport | undefined;
  /** Checkpoints run so far. */
  runs = 0;
  /** Timer ticks so far: a checkpoint, or none when no other connection wrote since the last. */
  looks = 0;
  /** Times the writer restarted an overgrown WAL. */
  restarts = 0;
  /** Times the worker started the WAL over with a write of its own (see the top of the file). */
  startedOver = 0;
  /**
   * [0] the WAL has grown past RESTART_FRAMES and [1] a checkpoint is running (set by the
   * worker); [2] when the writer last committed (set by `afterCommit`).
   */
  private readonly flags = new Int32Array(new SharedArrayBuffer(12));
  private readonly busyTimeout: number;

  constructor(
    private readonly db: Db,
    file: string,
    intervalMs: number,
    private readonly onError: (message: string) => void,
  ) {
    db.pragma("wal_autocheckpoint = 0");
    // When the WAL starts over, the next commit cuts its file back to this size (bytes).
    const pageSize = db.pragma("page_size", { simple: true }) as number;
    const journalSizeLimit = RESTART_FRAMES * pageSize;
    db.pragma(`journal_size_limit = ${journalSizeLimit}`);
    this.busyTimeout = db.pragma("busy_timeout", { simple: true }) as number;
    this.worker = new Worker(WORKER, {
      eval: true,
      // Its code is CommonJS whatever flags started this process (--input-type=module, say).
      execArgv: [],
      workerData: {
        file,
        intervalMs,
        restartFrames: RESTART_FRAMES,
        journalSizeLimit,
        quietMs: QUIET_MS,
        flags: this.flags.buffer,
        sqlite: createRequire(import.meta.url).resolve("better-sqlite3"),
      },
    });
    this.worker.on(
      "message",
      (m: {
        kind: string;
        log?: number;
        checkpointed?: number;
        restarted?: boolean;
        message?: string;
      }) => {
        if (m.kind === "idle") this.looks++;
        else if (m.kind === "checkpoint") {
          this.looks++;
          this.runs++;
          if (m.restarted) this.startedOver++;
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

  /**
   * Call on the writing connection after each commit: notes when it committed (the worker
   * starts the WAL over only after a quiet moment), then `restartIfOvergrown`.
   */
  afterCommit(): void {
    Atomics.store(this.flags, 2, Date.now() % 0x7fffffff);
    this.restartIfOvergrown();
  }

  /**
   * Call on the writing connection between transactions: when the worker has found the WAL
   * overgrown, checkpoints what is left of it so that the next commit starts it over. Costs one
   * atomic read when it is not; does nothing while the worker is checkpointing, and gives up at
   * once when the checkpoint finds the store busy (either way it tries again after the next
   * commit).
   */
  restartIfOvergrown(): void {
    if (Atomics.load(this.flags, 0) === 0 || this.db.inTransaction) return;
    // The worker holds the checkpoint lock while it copies: a RESTART now could only fail.
    if (Atomics.load(this.flags, 1) === 1) return;
    this.db.pragma("busy_timeout = 0");
    try {
      const [r] = this.db.pragma("wal_checkpoint(RESTART)") as { busy: number }[];
      if (r?.busy === 0) {
        Atomics.store(this.flags, 0, 0);
        this.restarts++;
      }
    } catch (err) {
      this.onError((err as Error).message);
    } finally {
      this.db.pragma(`busy_timeout = ${this.busyTimeout}`);
    }
  }

  /** Runs a last checkpoint, closes the worker's connection and waits for it to end. */
  async stop(): Promise<void> {
    // Unreferenced while serving; referenced now, so the process waits for the last checkpoint.
    this.worker.ref();
    this.worker.postMessage("stop");
    await this.exited;
  }
}
