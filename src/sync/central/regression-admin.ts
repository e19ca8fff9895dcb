/**
 * RegressionService on central: tripwire policies, which wires are tripped fleet-wide, and
 * re-arming a wire (a TripwireTrip change with tripped false), and the tripwire events the
 * sidecars shipped. KPI events and their evaluation stay on the sidecars, which report trips
 * with SyncService.ReportTrip.
 */
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  type RegressionPolicy,
  RegressionPolicySchema,
  RegressionService,
  TripwireAction,
  TripwireEventSchema,
  TripwireMethod,
  TripwireStatus,
} from "../../../gen/governance/v1/regression_pb.js";
import type { TripwireTrip } from "../../../gen/governance/v1/sync_pb.js";
import { tripwirePolicyOf } from "../../levers/regression/policy-request.js";
import { tripwireEventOf } from "../../levers/regression/tripwire-events.js";
import { type AsyncServiceBinding, bindAsyncService } from "../../levers/service-binding.js";
import { decode, encode, Kind, wireKey } from "./central-entities.js";
import type { CentralStore } from "./central-store.js";
import { fleetEventPage } from "./fleet-events.js";
import { DECISIONS_ON_SIDECARS, storeReads } from "./golive-admin.js";
import { centralPolicies } from "./policy-admin.js";
import type { RevisionWrite } from "./revision-write.js";

/** A wire as central sees it: tripped (with why), disabled or armed; KPI figures are on sidecars. */
function wireState(p: RegressionPolicy, trip: TripwireTrip | undefined) {
  const tripped = trip?.tripped === true;
  return {
    domain: p.domain,
    metric: p.metric,
    status: tripped
      ? TripwireStatus.TRIPPED
      : p.enabled
        ? TripwireStatus.OK
        : TripwireStatus.DISABLED,
    action: p.action,
    maxDropFraction: p.maxDropFraction,
    lastTripReason: trip?.reason ?? "",
    trippedAt: tripped ? trip?.trippedAt : undefined,
    throttleTargets: p.throttleTargets,
    method: p.method,
    dryRun: p.dryRun,
    eventsNeeded: p.minEventsToEnforce,
  };
}

/** What a tripped THROTTLE wire throttles: its targets, or its domain when it names none. */
function throttledBy(p: RegressionPolicy): string[] {
  return p.throttleTargets.length > 0 ? [...p.throttleTargets] : [p.domain];
}

/** RegressionService bound to central's store. */
export function centralRegressionService(
  store: CentralStore,
  maxAnswerBytes: number,
): AsyncServiceBinding<RevisionWrite> {
  const reads = storeReads(store);
  return bindAsyncService<typeof RegressionService, RevisionWrite>(
    RegressionService,
    {
      listPolicies: (req) =>
        centralPolicies(
          store,
          RegressionPolicySchema,
          Kind.regression,
          decode.regression,
          (p) => wireKey(p.domain, p.metric),
          req,
          maxAnswerBytes,
        ),
      listTripwireEvents: (req) =>
        fleetEventPage(
          store.db,
          TripwireEventSchema,
          req,
          { lever: "regression", subject: req.domain },
          (r) => ({ ...tripwireEventOf(r), sidecarId: r.sidecar_id }),
          maxAnswerBytes,
        ),
      upsertPolicy: async (req, w) => {
        // The sidecar's own checks, so both accept exactly the same policies.
        const record = tripwirePolicyOf(req, 0);
        let policy: RegressionPolicy | undefined;
        const revision = await w.append(
          Kind.regression,
          wireKey(req.domain, req.metric),
          (_revision, committedMs) => {
            const bytes = encode.regression({
              domain: record.domain,
              metric: record.metric,
              windowEvents: record.windowEvents,
              baselineEvents: record.baselineEvents,
              minEventsToEnforce: record.minEventsToEnforce,
              maxDropFraction: record.maxDropFraction,
              action:
                record.action === "KILL_SWITCH"
                  ? TripwireAction.KILL_SWITCH
                  : TripwireAction.THROTTLE,
              throttleTargets: record.throttleTargets,
              enabled: record.enabled,
              updatedBy: req.actor,
              updatedAt: timestampFromMs(committedMs),
              // As the sidecar stores it: an unspecified method is RELATIVE_DROP.
              method:
                record.method === "SEQUENTIAL"
                  ? TripwireMethod.SEQUENTIAL
                  : TripwireMethod.RELATIVE_DROP,
              expectedEventsBetweenFalseAlarms: record.falseAlarmEvents,
              baselineRate: record.baselineRate,
              dryRun: record.dryRun,
            });
            policy = decode.regression(bytes);
            return bytes;
          },
          req,
        );
        return { policy, policyRevision: BigInt(revision) };
      },
      getState: async (req) => {
        const policies = (await reads.entities(Kind.regression))
          .map(decode.regression)
          .filter((p) => !req.domain || p.domain === req.domain);
        const trips = new Map(
          (await reads.entities(Kind.trip))
            .map(decode.trip)
            .map((t) => [wireKey(t.domain, t.metric), t]),
        );
        const throttled = new Set<string>();
        for (const p of policies) {
          const trip = trips.get(wireKey(p.domain, p.metric));
          if (trip?.tripped && trip.action === TripwireAction.THROTTLE) {
            for (const t of throttledBy(p)) throttled.add(t);
          }
        }
        return {
          states: policies.map((p) => wireState(p, trips.get(wireKey(p.domain, p.metric)))),
          throttled: [...throttled].sort(),
        };
      },
      resetTripwire: async (req, w) => {
        const key = wireKey(req.domain, req.metric);
        const policyBytes = await w.entity(Kind.regression, key);
        if (!policyBytes) throw new ConnectError(`no tripwire policy for ${key}`, Code.NotFound);
        const policy = decode.regression(policyBytes);
        const tripBytes = await w.entity(Kind.trip, key);
        const trip = tripBytes ? decode.trip(tripBytes) : undefined;
        if (!trip?.tripped) {
          throw new ConnectError(
            `tripwire ${key} is not tripped on central: nothing to re-arm`,
            Code.FailedPrecondition,
          );
        }
        let armed: TripwireTrip | undefined;
        await w.append(
          Kind.trip,
          key,
          () => {
            const bytes = encode.trip({
              domain: req.domain,
              metric: req.metric,
              tripped: false,
              action: trip.action,
              reason: `re-armed by ${req.actor}: ${req.reason}`,
            });
            armed = decode.trip(bytes);
            return bytes;
          },
          req,
        );
        return { state: wireState(policy, armed) };
      },
    },
    {
      admin: ["upsertPolicy", "resetTripwire"],
      unserved: {
        evaluate: `Evaluate ${DECISIONS_ON_SIDECARS} (KPI events are recorded there)`,
        recordKpi: `RecordKpi ${DECISIONS_ON_SIDECARS}`,
      },
    },
  );
}
