/** The benchmark's table: every figure it measures, with its label, unit and tool. */

import { FLOOR_ROWS } from "./floor-rows.js";

/** The figures of one repetition, by key. */
export type Figures = Record<string, number>;

/** How each figure is shown: label, unit, which tool produced it. */
export interface Row {
  key: string;
  label: string;
  unit: string;
  tool: string;
}

/**
 * The ceiling's best of a sweep whose runs each came right before `whose` at the same point
 * (runs.ts, saturatedBeside): the base of that scenario's ratio.
 */
const BESIDE = (whose: string) => `ceiling, saturated, each run just before ${whose} at its point`;

/** Every figure of the table, in the order shown. */
export const ROWS: Row[] = [
  {
    key: "ceiling.h2load.sat",
    label: "ceiling (bare node:http2), saturated",
    unit: "req/s",
    tool: "h2load",
  },
  { key: "ceiling.h2load.p50", label: "ceiling, one at a time, p50", unit: "us", tool: "h2load" },
  { key: "ceiling.h2load.p99", label: "ceiling, one at a time, p99", unit: "us", tool: "h2load" },
  {
    key: "ceiling.node.sat",
    label: "ceiling (bare node:http2), saturated",
    unit: "req/s",
    tool: "node driver",
  },
  {
    key: "ceiling.node.p50",
    label: "ceiling, one at a time, p50",
    unit: "us",
    tool: "node driver",
  },
  {
    key: "ceiling.node.p99",
    label: "ceiling, one at a time, p99",
    unit: "us",
    tool: "node driver",
  },
  {
    key: "grpcjs.h2load.sat",
    label: "grpc-js echo (no govd code), saturated",
    unit: "req/s",
    tool: "h2load",
  },
  { key: "grpcjs.h2load.ratio", label: "grpc-js echo / ceiling", unit: "ratio", tool: "h2load" },
  {
    key: "grpcjs.h2load.p50",
    label: "grpc-js echo, one at a time, p50",
    unit: "us",
    tool: "h2load",
  },
  { key: "cgl.h2load.sat", label: "CheckGoLive, saturated", unit: "req/s", tool: "h2load" },
  { key: "cgl.h2load.ceiling", label: BESIDE("CheckGoLive's"), unit: "req/s", tool: "h2load" },
  {
    key: "cgl.h2load.ratio",
    label: "CheckGoLive / ceiling beside it",
    unit: "ratio",
    tool: "h2load",
  },
  { key: "cgl.h2load.p50", label: "CheckGoLive, one at a time, p50", unit: "us", tool: "h2load" },
  { key: "cgl.h2load.p99", label: "CheckGoLive, one at a time, p99", unit: "us", tool: "h2load" },
  { key: "cgl.node.sat", label: "CheckGoLive, saturated", unit: "req/s", tool: "node driver" },
  { key: "cgl.node.ratio", label: "CheckGoLive / ceiling", unit: "ratio", tool: "node driver" },
  {
    key: "cgl.node.p50",
    label: "CheckGoLive, one at a time, p50",
    unit: "us",
    tool: "node driver",
  },
  {
    key: "cgl.node.p99",
    label: "CheckGoLive, one at a time, p99",
    unit: "us",
    tool: "node driver",
  },
  {
    key: "rs.node.sat",
    label: "Reserve+Settle, saturated (RPCs)",
    unit: "req/s",
    tool: "node driver",
  },
  {
    key: "rs.node.pairs",
    label: "Reserve+Settle, saturated (pairs)",
    unit: "pairs/s",
    tool: "node driver",
  },
  { key: "rs.node.ceiling", label: BESIDE("Reserve+Settle's"), unit: "req/s", tool: "node driver" },
  {
    key: "rs.node.ratio",
    label: "Reserve+Settle RPCs / ceiling beside it",
    unit: "ratio",
    tool: "node driver",
  },
  {
    key: "rs.node.reserve.cold.p50",
    label: "Reserve, one at a time, right after start (cold JIT), p50",
    unit: "us",
    tool: "node driver",
  },
  {
    key: "rs.node.reserve.p50",
    label: "Reserve, one at a time, p50",
    unit: "us",
    tool: "node driver",
  },
  {
    key: "rs.node.reserve.p99",
    label: "Reserve, one at a time, p99",
    unit: "us",
    tool: "node driver",
  },
  {
    key: "rs.node.ceiling.p50",
    label: "ceiling, one at a time, p50, run just before Reserve's",
    unit: "us",
    tool: "node driver",
  },
  {
    key: "rs.node.reserve.ratio",
    label: "Reserve one at a time p50 / ceiling's beside it",
    unit: "ratio",
    tool: "node driver",
  },
  {
    key: "rs.node.settle.p50",
    label: "Settle, one at a time, p50",
    unit: "us",
    tool: "node driver",
  },
  {
    key: "rs.node.settle.p99",
    label: "Settle, one at a time, p99",
    unit: "us",
    tool: "node driver",
  },
  {
    key: "rs.server.reserve.mean",
    label: "Reserve, one at a time, the sidecar's own time (mean of its /metrics histogram)",
    unit: "us",
    tool: "node driver, /metrics",
  },
  {
    key: "rs.commit.calls",
    label: "Reserve+Settle, saturated: calls per shared commit",
    unit: "calls",
    tool: "node driver, /metrics",
  },
  {
    key: "kpi.node.sat",
    label: "RecordKpi (tripwire enabled), saturated",
    unit: "req/s",
    tool: "node driver",
  },
  { key: "kpi.node.ceiling", label: BESIDE("RecordKpi's"), unit: "req/s", tool: "node driver" },
  {
    key: "kpi.node.ratio",
    label: "RecordKpi / ceiling beside it",
    unit: "ratio",
    tool: "node driver",
  },
  { key: "kpi.node.p50", label: "RecordKpi, one at a time, p50", unit: "us", tool: "node driver" },
  { key: "kpi.node.p99", label: "RecordKpi, one at a time, p99", unit: "us", tool: "node driver" },
  {
    key: "kpi.commit.calls",
    label: "RecordKpi, saturated: calls per shared commit",
    unit: "calls",
    tool: "node driver, /metrics",
  },
  {
    key: "ceiling.h2load.cpu",
    label: "server CPU per call: ceiling",
    unit: "us",
    tool: "h2load, /proc",
  },
  {
    key: "grpcjs.h2load.cpu",
    label: "server CPU per call: grpc-js echo",
    unit: "us",
    tool: "h2load, /proc",
  },
  {
    key: "cgl.h2load.cpu",
    label: "server CPU per call: CheckGoLive",
    unit: "us",
    tool: "h2load, /proc",
  },
  {
    key: "ceiling.node.cpu",
    label: "server CPU per call: ceiling",
    unit: "us",
    tool: "node driver, /proc",
  },
  {
    key: "cgl.node.cpu",
    label: "server CPU per call: CheckGoLive",
    unit: "us",
    tool: "node driver, /proc",
  },
  {
    key: "rs.node.cpu",
    label: "server CPU per call: Reserve or Settle (mean)",
    unit: "us",
    tool: "node driver, /proc",
  },
  {
    key: "rs.node.ceiling.cpu.one",
    label: "server CPU per call, one at a time: ceiling (run just before Reserve's)",
    unit: "us",
    tool: "node driver, /proc",
  },
  {
    key: "rs.node.cpu.one",
    label: "server CPU per call, one at a time: Reserve or Settle (mean)",
    unit: "us",
    tool: "node driver, /proc",
  },
  {
    key: "kpi.node.cpu",
    label: "server CPU per call: RecordKpi",
    unit: "us",
    tool: "node driver, /proc",
  },
  ...FLOOR_ROWS,
];
