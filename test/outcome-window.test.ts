/** A tripwire's kept window must always equal the store's latest outcomes, rollbacks included. */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { OutcomeWindows } from "../src/levers/regression/outcome-window.js";
import { Tripwires } from "../src/levers/regression/tripwires.js";
import { type Db, migrateTo, openDatabase } from "../src/store/database.js";

let dir: string;
let db: Db;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "govd-window-"));
  db = openDatabase(join(dir, "sidecar.db"));
  migrateTo(db);
});
afterEach(() => {
  db.close();
  rmSync(dir, { recursive: true, force: true });
});

/** The latest `count` outcomes read straight from the store, newest first. */
function fromStore(domain: string, metric: string, count: number): boolean[] {
  return db
    .prepare<[string, string, number], number>(
      "SELECT success FROM kpi_event WHERE domain = ? AND metric = ? ORDER BY id DESC LIMIT ?",
    )
    .pluck()
    .all(domain, metric, count)
    .map((s) => s === 1);
}

describe("OutcomeWindows", () => {
  it("reads a series from the store once, then only adds what is appended", () => {
    const series: boolean[] = []; // oldest first
    let loads = 0;
    const windows = new OutcomeWindows((_d, _m, count) => {
      loads++;
      return series.slice(-count).reverse();
    });
    const append = (success: boolean) => {
      const previous = series.length;
      series.push(success);
      if (windows.keeps("D", "m")) windows.appended("D", "m", previous, series.length, success);
    };
    for (let i = 0; i < 7; i++) append(i % 3 !== 0);
    expect(windows.recent("D", "m", 5, series.length)).toEqual(series.slice(-5).reverse());
    for (let i = 0; i < 40; i++) {
      append(i % 2 === 0);
      expect(windows.recent("D", "m", 5, series.length)).toEqual(series.slice(-5).reverse());
    }
    expect(loads).toBe(1);
    // A larger window than kept is read again, once.
    expect(windows.recent("D", "m", 20, series.length)).toEqual(series.slice(-20).reverse());
    expect(windows.recent("D", "m", 20, series.length)).toEqual(series.slice(-20).reverse());
    expect(loads).toBe(2);
  });

  it("serves a short series whole without reading it again, and reloads on a newest id it did not see", () => {
    const series = [true, false];
    let loads = 0;
    const windows = new OutcomeWindows((_d, _m, count) => {
      loads++;
      return series.slice(-count).reverse();
    });
    expect(windows.recent("D", "m", 10, 2)).toEqual([false, true]);
    expect(windows.recent("D", "m", 10, 2)).toEqual([false, true]);
    expect(loads).toBe(1);
    series.push(true); // appended without telling the windows
    expect(windows.recent("D", "m", 10, 3)).toEqual([true, false, true]);
    expect(loads).toBe(2);
  });
});

describe("Tripwires.recentOutcomes with kept windows", () => {
  it("equals the store after any mix of appends, reads and rolled-back appends", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            series: fc.constantFrom("a", "b"),
            success: fc.boolean(),
            rolledBack: fc.boolean(),
            // Reads after some steps only: a read after every step would hide a stale window.
            read: fc.option(fc.integer({ min: 1, max: 12 })),
          }),
          { maxLength: 60 },
        ),
        (steps) => {
          db.exec("DELETE FROM kpi_event; DELETE FROM tripwire_state");
          const wires = new Tripwires(db);
          for (const step of steps) {
            const record = () => wires.recordKpi("D", step.series, step.success, 1, 0);
            if (step.rolledBack) {
              db.exec("SAVEPOINT test");
              record();
              // Read inside the savepoint: the window now holds the event that is undone next.
              expect(wires.recentOutcomes("D", step.series, 12)).toEqual(
                fromStore("D", step.series, 12),
              );
              db.exec("ROLLBACK TO test; RELEASE test");
            } else record();
            const read = step.read;
            if (read === null) continue;
            for (const s of ["a", "b"]) {
              expect(wires.recentOutcomes("D", s, read)).toEqual(fromStore("D", s, read));
            }
          }
        },
      ),
      { numRuns: 150 },
    );
  });
});
