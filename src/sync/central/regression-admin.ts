/**
 * RegressionService on central: tripwire policies, every wire as it stands on its fleet KPI
 * stream (fleet-tripwires.ts) with how far behind each sidecar's shipped events are, re-arming
 * a wire (a TripwireTrip change with tripped false, which also restarts its fleet evaluation),
 * and the tripwire events the sidecars shipped. Each sidecar evaluates its own stream too and
 * reports trips with ReportTrip.
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
} from "../../../gen/governance/v1/regression_pb.js";
import { tripwirePolicyOf } from "../../levers/regression/policy-request.js";
import {
  TRIPWIRE_EVENT_ACTIONS,
  tripwireEventOf,
} from "../../levers/regression/tripwire-events.js";
import { wireStateOf } from "../../levers/regression/wire-rule.js";
import { type AsyncServiceBinding, bindAsyncService } from "../../levers/service-binding.js";
import { decode, encode, Kind, wireKey } from "./central-entities.js";
import type { CentralStore } from "./central-store.js";
import { shipmentLags } from "./fleet.js";
import { fleetEventPage } from "./fleet-events.js";
import { fleetDryRunTripped, fleetWireFigures } from "./fleet-tripwires.js";
import { DECISIONS_ON_SIDECARS, storeReads } from "./golive-admin.js";
import { centralPolicies } from "./policy-admin.js";
import type { RevisionWrite } from "./revision-write.js";

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
          { lever: "regression", actions: TRIPWIRE_EVENT_ACTIONS, subject: req.domain },
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
        const states = [];
        for (const p of policies) {
          const record = tripwirePolicyOf({ ...p, actor: p.updatedBy }, 0);
          const { s, f } = await fleetWireFigures(store.db, record);
          states.push(wireStateOf(record, s, f));
        }
        return { states, throttled: [...throttled].sort(), behind: await shipmentLags(store.db) };
      },
      resetTripwire: async (req, w) => {
        const key = wireKey(req.domain, req.metric);
        const policyBytes = await w.entity(Kind.regression, key);
        if (!policyBytes) throw new ConnectError(`no tripwire policy for ${key}`, Code.NotFound);
        const policy = decode.regression(policyBytes);
        const tripBytes = await w.entity(Kind.trip, key);
        const trip = tripBytes ? decode.trip(tripBytes) : undefined;
        // A fleet wire's dry-run trip is re-armed here too (no sidecar holds it).
        if (!trip?.tripped && !(await fleetDryRunTripped(w.trx, req.domain, req.metric))) {
          throw new ConnectError(
            `tripwire ${key} is not tripped on central: nothing to re-arm`,
            Code.FailedPrecondition,
          );
        }
        await w.append(
          Kind.trip,
          key,
          () =>
            encode.trip({
              domain: req.domain,
              metric: req.metric,
              tripped: false,
              action: trip?.action ?? policy.action,
              reason: `re-armed by ${req.actor}: ${req.reason}`,
            }),
          req,
        );
        // As the wire stands once the write commits: restarted on the fleet stream.
        const record = tripwirePolicyOf({ ...policy, actor: policy.updatedBy }, 0);
        const { s, f } = await fleetWireFigures(w.trx, record);
        return { state: wireStateOf(record, s, f) };
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
