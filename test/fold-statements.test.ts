/**
 * A fold's statements, prepared once on a connection: scratch tables created once (no schema
 * change per fold), and created again when the transaction that first created them rolled back.
 */
import { afterEach, expect, it } from "vitest";
import { FoldStatements } from "../src/store/fold-statements.js";
import { KPI_FOLD_STEPS, KPI_FOLD_TABLES } from "../src/store/kpi-fold.js";
import { RISK_FOLD_STEPS, RISK_FOLD_TABLES } from "../src/store/risk-fold.js";
import { openTempStore, type TempStore } from "./support/temp-store.js";

let store: TempStore | undefined;
afterEach(() => {
  store?.remove();
  store = undefined;
});

const tempVersion = (s: TempStore) => s.db.pragma("temp.schema_version", { simple: true });

it("creates its scratch tables once: folds change no schema", () => {
  store = openTempStore();
  const s = store;
  const risk = new FoldStatements(s.db, RISK_FOLD_TABLES, RISK_FOLD_STEPS);
  const kpi = new FoldStatements(s.db, KPI_FOLD_TABLES, KPI_FOLD_STEPS);
  // A second set on the same connection finds the tables there.
  const again = new FoldStatements(s.db, RISK_FOLD_TABLES, RISK_FOLD_STEPS);
  const version = tempVersion(s);
  for (let i = 0; i < 3; i++) {
    s.db.transaction(() => {
      risk.run();
      kpi.run();
      again.run();
    })();
  }
  expect(tempVersion(s)).toBe(version);
});

it("creates its tables again when the transaction that created them was rolled back", () => {
  store = openTempStore();
  const s = store;
  s.db.exec("BEGIN");
  const risk = new FoldStatements(s.db, RISK_FOLD_TABLES, RISK_FOLD_STEPS);
  s.db.exec("ROLLBACK");
  const exists = () =>
    s.db
      .prepare("SELECT count(*) FROM temp.sqlite_master WHERE name = 'risk_fold_close'")
      .pluck()
      .get();
  expect(exists()).toBe(0);
  s.db.transaction(() => risk.run())();
  expect(exists()).toBe(1);
  s.db.transaction(() => risk.run())();
});
