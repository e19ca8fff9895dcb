/** The benchmark's requests: setup of a sidecar, request bodies, and the driven operations. */
import {
  create,
  type DescMessage,
  fromBinary,
  type MessageInitShape,
  toBinary,
} from "@bufbuild/protobuf";
import { ExecutionClass } from "../gen/governance/v1/common_pb.js";
import {
  CheckGoLiveRequestSchema,
  CheckGoLiveResponseSchema,
  EnableRequestSchema,
} from "../gen/governance/v1/golive_pb.js";
import {
  RecordKpiRequestSchema,
  RecordKpiResponseSchema,
  RegressionServiceUpsertPolicyRequestSchema,
  TripwireAction,
} from "../gen/governance/v1/regression_pb.js";
import {
  ReserveRequestSchema,
  ReserveResponseSchema,
  RiskServiceUpsertPolicyRequestSchema,
  SettleRequestSchema,
} from "../gen/governance/v1/risk_pb.js";
import { parseMoney } from "../src/money.js";
import { type Call, type Operation, singleCaller } from "./h2-driver.js";
import { grpcFrame } from "./stats.js";

/** gRPC paths of the calls the benchmark makes. */
export const PATH = {
  checkGoLive: "/governance.v1.GoLiveService/CheckGoLive",
  enable: "/governance.v1.GoLiveService/Enable",
  reserve: "/governance.v1.RiskService/Reserve",
  settle: "/governance.v1.RiskService/Settle",
  upsertRisk: "/governance.v1.RiskService/UpsertPolicy",
  recordKpi: "/governance.v1.RegressionService/RecordKpi",
  upsertTripwire: "/governance.v1.RegressionService/UpsertPolicy",
} as const;

/** The engine the benchmark reserves as, and its KPI series. */
export const ENGINE = "BENCH";
export const KPI = { domain: "BENCH", metric: "success_rate" } as const;
const HUGE = "999999999";
/**
 * Caps so high that a whole run never reaches them (the contract allows at most
 * 999999999.999999): money as requests write it and in micro-units as the store keeps it, and
 * actions a day. Every setup (RPC, in-process, PostgreSQL) uses these.
 */
export const BENCH_CAPS = {
  money: HUGE,
  micros: parseMoney(HUGE) as bigint,
  actionsPerDay: 2_000_000_000,
} as const;

function bin<T extends DescMessage>(schema: T, init: MessageInitShape<T>): Uint8Array {
  return toBinary(schema, create(schema, init));
}

/**
 * Distinct CheckGoLive bodies (PROD_EXEC, a different engine each). CheckGoLive has no
 * correlation_id and no cache, so each is a real decision however often it is sent.
 */
export function checkGoLiveBodies(count: number): Buffer[] {
  return Array.from({ length: count }, (_, i) =>
    grpcFrame(
      bin(CheckGoLiveRequestSchema, {
        executionClass: ExecutionClass.PROD_EXEC,
        engine: i === 0 ? "WHOLESALE" : `ENGINE_${i}`,
      }),
    ),
  );
}

/** An UpsertPolicy of `engine` with BENCH_CAPS: caps a run never reaches. */
export function benchCapsPolicy(
  engine: string,
  correlationId: string,
): MessageInitShape<typeof RiskServiceUpsertPolicyRequestSchema> {
  return {
    engine,
    maxDailyLoss: BENCH_CAPS.money,
    maxDailyExposure: BENCH_CAPS.money,
    maxOpenRisk: BENCH_CAPS.money,
    maxActionsPerDay: BENCH_CAPS.actionsPerDay,
    enabled: true,
    actor: "bench",
    reason: "benchmark caps high enough never to deny",
    correlationId,
  };
}

/**
 * Prepares a fresh sidecar: huge caps for BENCH and GLOBAL, an enabled tripwire on the KPI
 * series (throttling an engine no scenario uses), go-live enabled. Uses the operator token.
 */
export async function setUpSidecar(url: string, token: string): Promise<void> {
  const admin = await singleCaller(url, { authorization: `Bearer ${token}` });
  try {
    for (const engine of ["GLOBAL", ENGINE]) {
      await admin.call(
        PATH.upsertRisk,
        bin(
          RiskServiceUpsertPolicyRequestSchema,
          benchCapsPolicy(engine, `bench-policy-${engine}`),
        ),
      );
    }
    await admin.call(
      PATH.upsertTripwire,
      bin(RegressionServiceUpsertPolicyRequestSchema, {
        domain: KPI.domain,
        metric: KPI.metric,
        windowEvents: 50,
        baselineEvents: 200,
        maxDropFraction: 0.2,
        action: TripwireAction.THROTTLE,
        throttleTargets: ["BENCH_KPI_TARGET"],
        enabled: true,
        actor: "bench",
        reason: "benchmark tripwire, evaluated on every RecordKpi",
        correlationId: "bench-tripwire",
      }),
    );
    await admin.call(
      PATH.enable,
      bin(EnableRequestSchema, {
        actor: "bench",
        reason: "benchmark",
        correlationId: "bench-enable",
      }),
    );
  } finally {
    admin.close();
  }
}

/** Checks that a CheckGoLive body gets an allowed answer (h2load cannot read grpc-status). */
export async function checkBodies(url: string, bodies: Buffer[]): Promise<void> {
  const c = await singleCaller(url);
  try {
    for (const body of bodies) {
      const answer = fromBinary(
        CheckGoLiveResponseSchema,
        await c.call(PATH.checkGoLive, body.subarray(5)),
      );
      if (!answer.allowed) throw new Error(`CheckGoLive denied: ${answer.message}`);
    }
  } finally {
    c.close();
  }
}

/** A distinct correlation id per call: run tag, sequence number. */
function cid(run: string, seq: number, what: string): string {
  return `${run}-${what}-${seq}`;
}

/** Reserve 0.01 as BENCH with a fresh correlation_id, then Settle it with loss 0. */
export function reserveSettle(run: string): Operation {
  return async (call: Call, seq: number) => {
    const reserved = fromBinary(
      ReserveResponseSchema,
      await call(
        PATH.reserve,
        bin(ReserveRequestSchema, {
          engine: ENGINE,
          amount: "0.01",
          actor: "bench",
          correlationId: cid(run, seq, "r"),
        }),
      ),
    );
    if (!reserved.allowed) throw new Error(`Reserve denied: ${reserved.message}`);
    await call(
      PATH.settle,
      bin(SettleRequestSchema, {
        reservationId: reserved.reservationId,
        realizedLoss: "0",
        actor: "bench",
        correlationId: cid(run, seq, "s"),
      }),
    );
  };
}

/**
 * RecordKpi on the enabled tripwire's series with a fresh correlation_id; every 20th outcome is
 * a failure, a steady 95% success rate that never trips the wire (so each call evaluates it).
 */
export function recordKpi(run: string): Operation {
  return async (call: Call, seq: number) => {
    const answer = fromBinary(
      RecordKpiResponseSchema,
      await call(
        PATH.recordKpi,
        bin(RecordKpiRequestSchema, {
          domain: KPI.domain,
          metric: KPI.metric,
          success: seq % 20 !== 0,
          value: 1,
          actor: "bench",
          correlationId: cid(run, seq, "k"),
        }),
      ),
    );
    if (answer.trippedNow) throw new Error("the benchmark tripwire tripped: the run is not steady");
  };
}

/** CheckGoLive through the Node driver, cycling through the given bodies. */
export function checkGoLive(bodies: Buffer[]): Operation {
  const messages = bodies.map((b) => b.subarray(5));
  return async (call: Call, seq: number) => {
    await call(PATH.checkGoLive, messages[seq % messages.length] as Buffer);
  };
}
