/** What a sidecar occupies: its store's logical size and rows, and its RSS over a million decisions. */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { runH2loadCount, writeBodies } from "./h2load.js";
import { memoryOf, startSidecar } from "./processes.js";
import type { MemoryRun } from "./report.js";
import { checkGoLiveBodies, PATH, setUpSidecar } from "./scenarios.js";

const MB = 1024 * 1024;

/** Logical bytes and row counts of a running sidecar's store, read through a read-only connection. */
export function storeUsage(file: string): { bytes: number; reservations: number; kpis: number } {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    const pageSize = db.pragma("page_size", { simple: true }) as number;
    const pages = db.pragma("page_count", { simple: true }) as number;
    const free = db.pragma("freelist_count", { simple: true }) as number;
    const count = (sql: string) => (db.prepare(sql).pluck().get() as number) ?? 0;
    return {
      bytes: (pages - free) * pageSize,
      // Reserves, counted in the trail: the risk tables hold them only once folded (every second).
      reservations: count("SELECT count(*) FROM audit_event WHERE action = 'RESERVE'"),
      // Outcomes, counted in the trail: kpi_event holds them only once folded (every second).
      kpis: count("SELECT count(*) FROM audit_event WHERE lever = 'kpi' AND action = 'KPI'"),
    };
  } finally {
    db.close();
  }
}

/** RSS after `first` and after `total` CheckGoLive decisions on a fresh sidecar, and its peak. */
export async function memoryRun(
  workDir: string,
  decisions: { first: number; total: number },
  token: string,
  log: (line: string) => void,
): Promise<MemoryRun> {
  const dataDir = join(workDir, "sidecar-memory");
  mkdirSync(dataDir);
  const sidecar = await startSidecar({ dataDir, token: token });
  try {
    const url = `http://127.0.0.1:${sidecar.port}`;
    await setUpSidecar(url, token);
    const [body] = writeBodies(workDir, "memory", checkGoLiveBodies(1));
    const startRss = memoryOf(sidecar.pid).rss;
    log(`memory: ${decisions.first} CheckGoLive decisions`);
    runH2loadCount(`${url}${PATH.checkGoLive}`, body as string, decisions.first);
    const afterFirst = memoryOf(sidecar.pid).rss;
    log(`memory: ${decisions.total - decisions.first} more`);
    runH2loadCount(`${url}${PATH.checkGoLive}`, body as string, decisions.total - decisions.first);
    const m = memoryOf(sidecar.pid);
    return {
      decisions: { first: decisions.first, total: decisions.total },
      startRssMb: startRss / MB,
      afterFirstMb: afterFirst / MB,
      afterTotalMb: m.rss / MB,
      growth: m.rss / afterFirst - 1,
      peakMb: m.hwm / MB,
    };
  } finally {
    await sidecar.stop();
  }
}
