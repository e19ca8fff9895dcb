/**
 * The rows of the benchmark's table below the RPC scenarios: govd called in-process and the
 * floor under it (WAL pages, SQLite's bare commit), the seed's PostgreSQL design, and the
 * sidecar's memory and store size.
 */
import type { Row } from "./figure-rows.js";

/** The in-process, floor, PostgreSQL and footprint rows, in the order shown. */
export const FLOOR_ROWS: Row[] = [
  {
    key: "inproc.pipeline.p50",
    label: "in-process Reserve via CallPipeline, p50",
    unit: "us",
    tool: "in-process",
  },
  {
    key: "inproc.pipeline.p99",
    label: "in-process Reserve via CallPipeline, p99",
    unit: "us",
    tool: "in-process",
  },
  {
    key: "inproc.handler.p50",
    label: "in-process Reserve handler in a transaction, p50",
    unit: "us",
    tool: "in-process",
  },
  {
    key: "inproc.handler.p99",
    label: "in-process Reserve handler in a transaction, p99",
    unit: "us",
    tool: "in-process",
  },
  {
    key: "floor.pages",
    label: "WAL pages one in-process Reserve commits",
    unit: "pages",
    tool: "in-process",
  },
  {
    key: "floor.fold.pages",
    label: "WAL pages the fold writes per Reserve+Settle pair (off the decision path)",
    unit: "pages",
    tool: "in-process",
  },
  {
    key: "floor.commit.p50",
    label: "SQLite commit of that many pages alone (the floor under a Reserve), p50",
    unit: "us",
    tool: "in-process",
  },
  {
    key: "floor.commit1.p50",
    label: "SQLite commit of one page, p50",
    unit: "us",
    tool: "in-process",
  },
  {
    key: "inproc.kpi.p50",
    label: "in-process RecordKpi via CallPipeline (wire enabled), p50",
    unit: "us",
    tool: "in-process",
  },
  {
    key: "inproc.kpi.p99",
    label: "in-process RecordKpi via CallPipeline (wire enabled), p99",
    unit: "us",
    tool: "in-process",
  },
  {
    key: "floor.kpi.pages",
    label: "WAL pages one in-process RecordKpi commits",
    unit: "pages",
    tool: "in-process",
  },
  {
    key: "floor.kpi.fold.pages",
    label: "WAL pages the fold writes per RecordKpi (off the decision path)",
    unit: "pages",
    tool: "in-process",
  },
  {
    key: "pg.on.p50",
    label: "PostgreSQL Reserve (synchronous_commit=on), p50",
    unit: "us",
    tool: "pg",
  },
  {
    key: "pg.on.p99",
    label: "PostgreSQL Reserve (synchronous_commit=on), p99",
    unit: "us",
    tool: "pg",
  },
  { key: "pg.on.sat", label: "PostgreSQL Reserve (on), 16 connections", unit: "req/s", tool: "pg" },
  {
    key: "pg.off.p50",
    label: "PostgreSQL Reserve (synchronous_commit=off), p50",
    unit: "us",
    tool: "pg",
  },
  {
    key: "pg.off.p99",
    label: "PostgreSQL Reserve (synchronous_commit=off), p99",
    unit: "us",
    tool: "pg",
  },
  {
    key: "pg.off.sat",
    label: "PostgreSQL Reserve (off), 16 connections",
    unit: "req/s",
    tool: "pg",
  },
  {
    key: "mem.peak",
    label: "sidecar peak RSS (VmHWM) over the scenarios",
    unit: "MB",
    tool: "/proc",
  },
  {
    key: "store.rs",
    label: "store bytes per Reserve+Settle pair",
    unit: "bytes",
    tool: "sqlite page_count",
  },
  {
    key: "store.kpi",
    label: "store bytes per RecordKpi",
    unit: "bytes",
    tool: "sqlite page_count",
  },
];
