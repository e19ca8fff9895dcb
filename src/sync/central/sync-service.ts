/**
 * SyncService on central: sidecars Watch and Ack, report their trips; operators read the fleet
 * view and wait for acks. See sync.proto for the protocol.
 */
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Logger } from "pino";
import { TripwireAction } from "../../../gen/governance/v1/regression_pb.js";
import { type AckStreamRequest, SyncService } from "../../../gen/governance/v1/sync_pb.js";
import { type AsyncServiceBinding, bindAsyncService } from "../../levers/service-binding.js";
import { decodeShipment } from "../shipment-decoding.js";
import { encode, Kind, wireKey } from "./central-entities.js";
import type { CentralStore } from "./central-store.js";
import { ingestShipment } from "./event-ingest.js";
import { EvidenceFeed } from "./evidence-feed.js";
import { Fleet, type SidecarRow } from "./fleet.js";
import { changeSwitches } from "./golive-admin.js";
import type { RevisionWrite } from "./revision-write.js";
import { watchStream } from "./watch-stream.js";

/** How central runs SyncService. */
export interface SyncSettings {
  /** This replica's id, shown in the fleet view. */
  replica: string;
  /** A Watch stream sends a heartbeat when nothing was sent for this long. */
  heartbeatMs: number;
  /** How often the fleet evidence sent on Watch streams is checked for changes at most. */
  evidenceCheckMs: number;
  logger: Logger;
}

/** How long central remembers the correlation_id of an admin write (as a sidecar: 7 days). */
const KEY_RETENTION_MS = 7 * 86_400_000;

/** The longest WaitForAcks goes without re-reading the acks (another replica may record some). */
const WAIT_POLL_MS = 50;

/** The shortest time between two reads of the acks by one WaitForAcks. */
const WAIT_READ_MS = 10;

/** Connected as the fleet view shows it: a stream is open and it was heard within 3 heartbeats. */
export function isConnected(row: SidecarRow, nowMs: number, heartbeatMs: number): boolean {
  return row.connected && nowMs - row.lastHeardMs <= 3 * heartbeatMs;
}

/** SyncService bound to central's store; `streamsOpen` counts this replica's Watch streams. */
export function centralSyncService(
  store: CentralStore,
  settings: SyncSettings,
): AsyncServiceBinding<RevisionWrite> & {
  streamsOpen: () => number;
  upkeep: (onStore?: (problem: string | undefined) => void) => () => void;
  /** Writes the acks still waiting for their batch (at shutdown, before the store closes). */
  drainAcks: () => Promise<void>;
} {
  const fleet = new Fleet(store.db, store.engine);
  const open = new Map<string, number>();
  let closing = false;
  const evidence = new EvidenceFeed(store, settings.evidenceCheckMs, settings.logger);
  const deps = { store, fleet, open, messages: new WeakMap(), evidence, ...settings };
  const binding = bindAsyncService<typeof SyncService, RevisionWrite>(
    SyncService,
    {
      ack: async (req) => {
        const revision = Number(req.revision);
        const change = await store.change(revision);
        if (!change) {
          const head = await store.head();
          throw new ConnectError(
            `revision ${revision} was never issued by central (its newest is ${head.revision}): nothing recorded; Watch again to get a snapshot`,
            Code.FailedPrecondition,
          );
        }
        const now = store.clock.now();
        const noStream = () =>
          new ConnectError(
            `sidecar ${req.sidecarId} has no Watch stream on central: open one before acking; nothing recorded`,
            Code.FailedPrecondition,
          );
        if (req.error !== "") {
          const row = await fleet.get(req.sidecarId);
          if (!row) throw noStream();
          if (revision <= row.appliedRevision) {
            throw new ConnectError(
              `NACK of revision ${revision} is older than revision ${row.appliedRevision} that sidecar ${req.sidecarId} already applied: nothing recorded`,
              Code.FailedPrecondition,
            );
          }
          await fleet.nacked(req.sidecarId, revision, req.error, now);
          settings.logger.warn(
            { sidecar: req.sidecarId, revision, error: req.error },
            "sidecar refused a revision (NACK)",
          );
          return {};
        }
        if (req.digest !== change.digest) {
          if (!(await fleet.get(req.sidecarId))) throw noStream();
          throw new ConnectError(
            `digest of revision ${revision} does not match central's (${req.digest === "" ? "none given" : `${req.digest.slice(0, 12)}...`} vs ${change.digest.slice(0, 12)}...): the sidecar's history differs, nothing recorded; Watch again to get a snapshot`,
            Code.InvalidArgument,
          );
        }
        // The sidecar's row is read only when the ack changed nothing (see Fleet.acked).
        const outcome = await fleet.acked(req.sidecarId, revision, req.digest, now);
        if (outcome.kind === "unknown") throw noStream();
        if (outcome.kind === "already" && revision < outcome.applied) {
          throw new ConnectError(
            `ACK of revision ${revision} is older than revision ${outcome.applied} that sidecar ${req.sidecarId} already acked: nothing recorded`,
            Code.FailedPrecondition,
          );
        }
        return {};
      },
      reportTrip: async (req, w) => {
        const key = wireKey(req.domain, req.metric);
        if (!(await w.entity(Kind.regression, key))) {
          throw new ConnectError(
            `no tripwire policy ${key} on central: nothing recorded`,
            Code.NotFound,
          );
        }
        const author = {
          actor: `sidecar:${req.sidecarId}`,
          reason: req.reason,
          correlationId: req.correlationId,
        };
        let revision = await w.append(
          Kind.trip,
          key,
          () =>
            encode.trip({
              domain: req.domain,
              metric: req.metric,
              tripped: true,
              action: req.action,
              reason: req.reason,
              trippedAt: req.trippedAt,
              sidecarId: req.sidecarId,
            }),
          author,
        );
        if (req.action === TripwireAction.KILL_SWITCH) {
          const state = await changeSwitches(
            w,
            { killSwitchEngaged: true },
            {
              ...author,
              reason: `tripwire ${key} (KILL_SWITCH) tripped on sidecar ${req.sidecarId}: ${req.reason}`,
            },
          );
          revision = Number(state.revision);
        }
        settings.logger.warn(
          { sidecar: req.sidecarId, wire: key, revision },
          "tripwire trip reported",
        );
        return { revision: BigInt(revision) };
      },
      shipEvents: async (req) => {
        const ack = await ingestShipment(store, req);
        return { ackedSeq: BigInt(ack.ackedSeq), ackedHash: ack.ackedHash };
      },
      listSidecars: async () => {
        const head = await store.head();
        const now = store.clock.now();
        const sidecars = (await fleet.list()).map((r) => {
          const connected = isConnected(r, now, settings.heartbeatMs);
          return {
            sidecarId: r.sidecarId,
            engines: r.engines,
            appliedRevision: BigInt(r.appliedRevision),
            lag: BigInt(Math.max(0, head.revision - r.appliedRevision)),
            lastNackRevision: BigInt(r.lastNackRevision),
            lastNackError: r.lastNackError,
            connected,
            lastHeard: r.lastHeardMs ? timestampFromMs(r.lastHeardMs) : undefined,
            stalenessMs: BigInt(r.lastHeardMs ? Math.max(0, now - r.lastHeardMs) : 0),
            replica: connected ? r.replica : "",
            lastResync: r.lastResync,
            shippedSeq: BigInt(r.shippedSeq),
            shippedHash: r.shippedHash,
            headSeq: BigInt(r.headSeq),
            headHash: r.headHash,
            outboxEvents: BigInt(r.outboxEvents),
            outboxOldestMs: BigInt(r.outboxOldestMs),
            shipConflict: r.shipConflict,
            lastShipped: r.lastShippedMs ? timestampFromMs(r.lastShippedMs) : undefined,
          };
        });
        return { revision: BigInt(head.revision), sidecars };
      },
      waitForAcks: async (req) => {
        const revision = Number(req.revision);
        const change = await store.change(revision);
        if (!change) {
          throw new ConnectError(
            `revision ${revision} was never issued by central: nothing to wait for`,
            Code.FailedPrecondition,
          );
        }
        const deadline = store.clock.now() + Number(req.timeoutMs);
        const start = store.clock.now();
        const waited = (await fleet.list()).filter((r) =>
          isConnected(r, start, settings.heartbeatMs),
        );
        const ids = waited.map((w) => w.sidecarId);
        for (;;) {
          // Applied revisions first: an ack recorded between the two reads then counts at the
          // next round, never as acked without its time.
          const appliedOf = await fleet.appliedRevisions(ids);
          const times = await fleet.ackTimes(revision, ids);
          const acks = waited.map((w) => {
            const applied = appliedOf.get(w.sidecarId) ?? 0;
            const at = times.get(w.sidecarId);
            const acked = applied >= revision;
            return {
              sidecarId: w.sidecarId,
              acked,
              ackMs: BigInt(acked && at !== undefined ? Math.max(0, at - change.committedMs) : 0),
              appliedRevision: BigInt(applied),
            };
          });
          const acked = acks.filter((a) => a.acked).length;
          // Shutdown answers what is known now rather than holding the port open.
          if (acked === acks.length || store.clock.now() >= deadline || closing) {
            return { revision: BigInt(revision), connected: acks.length, acked, acks };
          }
          // Woken by this replica's next ack batch; acks other replicas record are read at
          // the latest WAIT_POLL_MS later. Reads at most every WAIT_READ_MS: a fleet's acks come
          // in many small batches, and ack times are those recorded, not when they are read.
          const read = performance.now();
          await fleet.nextAcks(Math.min(WAIT_POLL_MS, Math.max(1, deadline - store.clock.now())));
          const since = performance.now() - read;
          if (since < WAIT_READ_MS) await new Promise((r) => setTimeout(r, WAIT_READ_MS - since));
        }
      },
    },
    {
      admin: ["reportTrip"],
      // Every shipment of the fleet: decoded without reflection (shipment-decoding.ts).
      decoders: { shipEvents: decodeShipment },
      streams: { watch: (req, sink) => watchStream(deps, req, sink) },
      callStreams: {
        ackStream: {
          unary: "ack",
          request: (m) => (m as AckStreamRequest).ack,
          answer: (recorded) => ({ acks: BigInt(recorded) }),
        },
      },
    },
  );
  /**
   * At each heartbeat: re-reads the head (a change whose NOTIFY was lost reaches the streams
   * now) and marks this replica's sidecars heard (one statement for all of them); forgets admin
   * idempotency keys after 7 days. Returns the function that stops it (at shutdown; waits for
   * acks then answer at once).
   */
  const upkeep = (onStore?: (problem: string | undefined) => void) => {
    let lastPrune = 0;
    const timer = setInterval(() => {
      const now = store.clock.now();
      store.recheck().then(
        () => onStore?.(undefined),
        (err: unknown) => {
          onStore?.(`central's store is unreachable (${(err as Error).message})`);
          settings.logger.warn(
            { err },
            "could not re-read the revision log head; retrying at the next heartbeat",
          );
        },
      );
      fleet.heard([...open.keys()], settings.replica, now).catch((err: unknown) => {
        settings.logger.warn(
          { err },
          "could not record the sidecars heard; retrying at the next heartbeat",
        );
      });
      if (now - lastPrune < 3_600_000) return;
      lastPrune = now;
      fleet.pruneKeys(now - KEY_RETENTION_MS).catch((err: unknown) => {
        settings.logger.warn({ err }, "could not prune old idempotency keys");
      });
    }, settings.heartbeatMs);
    timer.unref();
    closing = false;
    return () => {
      closing = true;
      clearInterval(timer);
    };
  };
  return Object.assign(binding, {
    streamsOpen: () => open.size,
    upkeep,
    drainAcks: () => fleet.drain(),
  });
}
