/**
 * ListEvents on a long trail: the time `readAuditEvents` (what the AuditService's ListEvents
 * runs) takes for one page over 300,000 events, by lever, by subject and by subject prefix,
 * for subjects with few events or none (a scan of the lever's range), and for a lever with few
 * events (tripwire trips: read through the index of such levers). Rows are written
 * straight into the trail (their hashes are not a chain: nothing here verifies it).
 * Run alone: `npm run -s build && node dist/bench/list-events.js [events]`.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type AuditQuery, readAuditEvents } from "../src/store/audit-trail.js";
import { migrateTo, openDatabase } from "../src/store/database.js";

/** One page's read time, median of `runs`, in microseconds, and the rows it returned. */
export function listEventsPage(events: number, runs = 7): Record<string, [number, number]> {
  const dir = mkdtempSync(join(tmpdir(), "govd-bench-list-"));
  const db = openDatabase(join(dir, "sidecar.db"));
  try {
    migrateTo(db);
    const insert = db.prepare(
      `INSERT INTO audit_event (seq, time_ms, lever, action, subject, amount, ok, reason, actor,
         correlation_id, reservation_id, metadata, hash)
       VALUES (?, 0, ?, ?, ?, 1, 1, 'bench', 'bench', ?, '', '{}', 'bench')`,
    );
    const base =
      db.prepare<[], number>("SELECT coalesce(max(seq), 0) FROM audit_event").pluck().get() ?? 0;
    const rareFrom = events - 1_000;
    db.transaction(() => {
      for (let i = 1; i <= events; i++) {
        if (i % 50_000 === 0) {
          insert.run(base + i, "regression", "TRIP", "WHOLESALE/contract_rate", `c-${i}`);
          continue;
        }
        const kpi = i % 10 === 0;
        const subject = kpi
          ? "WHOLESALE/contract_rate"
          : i > rareFrom && i % 100 === 1
            ? "RARE"
            : "WHOLESALE";
        insert.run(base + i, kpi ? "kpi" : "risk", kpi ? "KPI" : "RESERVE", subject, `c-${i}`);
      }
    })();
    const pages: Record<string, AuditQuery> = {
      "risk, first 100": { lever: "risk", afterSeq: 0, limit: 100 },
      "risk WHOLESALE, first 100": { lever: "risk", subject: "WHOLESALE", afterSeq: 0, limit: 100 },
      "risk WHOLESALE, 100 from the middle": {
        lever: "risk",
        subject: "WHOLESALE",
        afterSeq: base + events / 2,
        limit: 100,
      },
      "kpi subject prefix WHOLESALE, first 100": {
        lever: "kpi",
        subject: "WHOLESALE",
        afterSeq: 0,
        limit: 100,
      },
      "risk RARE (10 events at the end)": {
        lever: "risk",
        subject: "RARE",
        afterSeq: 0,
        limit: 100,
      },
      "risk NONE (no event)": { lever: "risk", subject: "NONE", afterSeq: 0, limit: 100 },
      "regression (a trip every 50,000 events), first 100": {
        lever: "regression",
        actions: ["TRIP"],
        afterSeq: 0,
        limit: 100,
      },
    };
    const out: Record<string, [number, number]> = {};
    for (const [label, q] of Object.entries(pages)) {
      const us: number[] = [];
      let rows = 0;
      for (let r = 0; r < runs; r++) {
        const t0 = process.hrtime.bigint();
        rows = readAuditEvents(db, q).length;
        us.push(Number(process.hrtime.bigint() - t0) / 1_000);
      }
      us.sort((a, b) => a - b);
      out[label] = [us[Math.floor(runs / 2)] ?? 0, rows];
    }
    return out;
  } finally {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1]?.endsWith("list-events.js")) {
  const events = Number(process.argv[2] ?? 300_000);
  for (const [label, [us, rows]] of Object.entries(listEventsPage(events))) {
    console.log(`${label}: ${rows} rows, median ${Math.round(us).toLocaleString("en")} us`);
  }
}
