/** A tripwire's kept window must always equal the store's latest outcomes, rollbacks included. */
import fc from "fast-check";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { OutcomeWindows } from "../src/levers/regression/outcome-window.js";
import { Tripwires } from "../src/levers/regression/tripwires.js";
import type { Db } from "../src/store/database.js";
import { openTempStore, type TempStore } from "./support/temp-store.js";

let store: TempStore;
let db: Db;

beforeEach(() => {
  store = openTempStore();
  db = store.db;
});
afterEach(() => store.remove());

/** What a wire decides on, counted from outcomes listed newest first. */
function countsOf(newestFirst: readonly boolean[], window: number, baseline: number) {
  const current = newestFirst.slice(0, window);
  const before = newestFirst.slice(window, window + baseline);
  return {
    currentSuccesses: current.filter(Boolean).length,
    currentEvents: current.length,
    baselineSuccesses: before.filter(Boolean).length,
    baselineEvents: before.length,
  };
}

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
    const newestFirst = () => [...series].reverse();
    expect(windows.counts("D", "m", 2, 3, series.length)).toEqual(countsOf(newestFirst(), 2, 3));
    for (let i = 0; i < 40; i++) {
      append(i % 3 === 0);
      expect(windows.counts("D", "m", 2, 3, series.length)).toEqual(countsOf(newestFirst(), 2, 3));
    }
    expect(loads).toBe(1);
    // A larger window than kept is read again, once.
    expect(windows.counts("D", "m", 5, 15, series.length)).toEqual(countsOf(newestFirst(), 5, 15));
    expect(windows.counts("D", "m", 5, 15, series.length)).toEqual(countsOf(newestFirst(), 5, 15));
    expect(loads).toBe(2);
  });

  it("serves a short series whole without reading it again, and reloads on a newest id it did not see", () => {
    const series = [true, false];
    let loads = 0;
    const windows = new OutcomeWindows((_d, _m, count) => {
      loads++;
      return series.slice(-count).reverse();
    });
    expect(windows.counts("D", "m", 1, 9, 2)).toEqual(countsOf([false, true], 1, 9));
    expect(windows.counts("D", "m", 1, 9, 2)).toEqual(countsOf([false, true], 1, 9));
    expect(loads).toBe(1);
    series.push(true); // appended without telling the windows
    expect(windows.counts("D", "m", 1, 9, 3)).toEqual(countsOf([true, false, true], 1, 9));
    expect(loads).toBe(2);
  });
});

describe("Tripwires.windowCounts with kept windows", () => {
  it("equals the store after any mix of appends, reads and rolled-back appends", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            series: fc.constantFrom("a", "b"),
            success: fc.boolean(),
            rolledBack: fc.boolean(),
            // Reads after some steps only: a read after every step would hide a stale window.
            read: fc.option(
              fc.record({ window: fc.integer({ min: 1, max: 6 }), baseline: fc.nat(8) }),
            ),
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
              expect(wires.windowCounts("D", step.series, 4, 8)).toEqual(
                countsOf(fromStore("D", step.series, 12), 4, 8),
              );
              db.exec("ROLLBACK TO test; RELEASE test");
            } else record();
            const read = step.read;
            if (read === null) continue;
            for (const s of ["a", "b"]) {
              const n = read.window + read.baseline;
              expect(wires.windowCounts("D", s, read.window, read.baseline)).toEqual(
                countsOf(fromStore("D", s, n), read.window, read.baseline),
              );
            }
          }
        },
      ),
      { numRuns: 150 },
    );
  });
});
