/**
 * A load driver on node:http2 with gRPC framing: many concurrent streams on a few connections,
 * and a request body built per call, so every request can carry its own correlation_id.
 */
import * as http2 from "node:http2";
import { grpcFrame, grpcMessages } from "./stats.js";

/** One unary gRPC call: resolves with the response message bytes, rejects on a non-zero status. */
export type Call = (path: string, message: Uint8Array) => Promise<Buffer>;

/** What a driver loop does once: one or more calls. */
export type Operation = (call: Call, seq: number) => Promise<void>;

/** How hard and how long to drive. */
export interface DriveOptions {
  url: string;
  connections: number;
  /** Operations in flight per connection (each its own stream while it runs). */
  inFlight: number;
  durationMs: number;
  /** Hard bound on operations, whatever the time. */
  maxOperations: number;
  /** Not recorded: lets the JIT and the server settle first. */
  warmupMs: number;
  /** Record every call's latency (in microseconds) by path. */
  recordLatency: boolean;
  /** Reads a server's CPU time (microseconds) at the start and end of the measured period. */
  serverCpuUs?: () => number;
}

/** What one run measured. */
export interface DriveResult {
  calls: number;
  operations: number;
  seconds: number;
  callsPerSec: number;
  operationsPerSec: number;
  /** Latencies in microseconds by path (empty unless recorded). */
  latencyUs: Map<string, number[]>;
  /** Server CPU time per call in microseconds, when `serverCpuUs` was given. */
  serverCpuUsPerCall: number;
}

function connect(url: string): Promise<http2.ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(url);
    session.once("connect", () => resolve(session));
    session.once("error", reject);
  });
}

function makeCall(
  session: http2.ClientHttp2Session,
  onDone: (path: string, us: number) => void,
  extraHeaders: Record<string, string> = {},
): Call {
  return (path, message) =>
    new Promise((resolve, reject) => {
      const started = process.hrtime.bigint();
      const stream = session.request({
        ":method": "POST",
        ":path": path,
        "content-type": "application/grpc",
        te: "trailers",
        ...extraHeaders,
      });
      const chunks: Buffer[] = [];
      let status: string | undefined;
      let detail = "";
      stream.on("response", (headers) => {
        // A trailers-only answer carries grpc-status in the headers.
        if (headers["grpc-status"] !== undefined) {
          status = String(headers["grpc-status"]);
          detail = String(headers["grpc-message"] ?? "");
        }
      });
      stream.on("trailers", (trailers) => {
        status = String(trailers["grpc-status"]);
        detail = String(trailers["grpc-message"] ?? "");
      });
      stream.on("data", (chunk: Buffer) => chunks.push(chunk));
      stream.on("error", reject);
      stream.on("end", () => {
        onDone(path, Number(process.hrtime.bigint() - started) / 1000);
        if (status !== "0") {
          reject(new Error(`${path}: grpc-status ${status}: ${decodeURIComponent(detail)}`));
          return;
        }
        const [first] = grpcMessages(Buffer.concat(chunks));
        resolve(first ?? Buffer.alloc(0));
      });
      stream.end(grpcFrame(message));
    });
}

/** One connection and a call function on it, for setup and checks (headers on every call). */
export async function singleCaller(
  url: string,
  headers: Record<string, string> = {},
): Promise<{ call: Call; close(): void }> {
  const session = await connect(url);
  return { call: makeCall(session, () => {}, headers), close: () => session.close() };
}

/** Drives `operation` as hard as the options say, then closes its connections. */
export async function drive(options: DriveOptions, operation: Operation): Promise<DriveResult> {
  const sessions = await Promise.all(
    Array.from({ length: options.connections }, () => connect(options.url)),
  );
  let recording = false;
  let calls = 0;
  const latencyUs = new Map<string, number[]>();
  const onDone = (path: string, us: number) => {
    if (!recording) return;
    calls++;
    if (!options.recordLatency) return;
    let list = latencyUs.get(path);
    if (!list) {
      list = [];
      latencyUs.set(path, list);
    }
    list.push(us);
  };
  const callers = sessions.map((s) => makeCall(s, onDone));
  let seq = 0;
  let operations = 0;
  let stopAt = Date.now() + options.warmupMs;
  let stopped = false;
  let failure: unknown;

  const loop = async (call: Call) => {
    while (!stopped && Date.now() < stopAt && operations < options.maxOperations) {
      const n = seq++;
      try {
        await operation(call, n);
      } catch (err) {
        failure ??= err;
        stopped = true;
        return;
      }
      if (recording) operations++;
    }
  };
  const run = () =>
    Promise.all(
      callers.flatMap((call) => Array.from({ length: options.inFlight }, () => loop(call))),
    );

  try {
    if (options.warmupMs > 0) await run();
    if (failure) throw failure;
    recording = true;
    const cpuBefore = options.serverCpuUs?.() ?? 0;
    const started = process.hrtime.bigint();
    stopAt = Date.now() + options.durationMs;
    await run();
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    const serverCpuUsPerCall = options.serverCpuUs
      ? (options.serverCpuUs() - cpuBefore) / calls
      : Number.NaN;
    if (failure) throw failure;
    return {
      calls,
      operations,
      seconds,
      callsPerSec: calls / seconds,
      operationsPerSec: operations / seconds,
      latencyUs,
      serverCpuUsPerCall,
    };
  } finally {
    for (const s of sessions) s.close();
  }
}
