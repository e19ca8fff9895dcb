/**
 * One sidecar's Watch stream on central: a snapshot unless the change log still holds every
 * change after the sidecar's applied revision and that revision's digest matches; then every
 * change in revision order as it commits (read from the change log, so a missed notification
 * loses nothing: the replica also re-reads the head once per heartbeat and announces what was
 * missed), and a heartbeat when nothing was sent for a heartbeat interval.
 */
import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { Logger } from "pino";
import type { WatchRequest, WatchResponseSchema } from "../../../gen/governance/v1/sync_pb.js";
import type { StreamSink } from "../../levers/service-binding.js";
import { decode, Kind } from "./central-entities.js";
import type { CentralStore, ChangeRow } from "./central-store.js";
import type { EvidenceFeed } from "./evidence-feed.js";
import type { Fleet } from "./fleet.js";

/** A message of a Watch stream. */
export type WatchMessage = MessageInitShape<typeof WatchResponseSchema>;

/** What a Watch stream needs from its node. */
export interface WatchDeps {
  store: CentralStore;
  fleet: Fleet;
  replica: string;
  heartbeatMs: number;
  logger: Logger;
  /** Streams per sidecar open on this replica (a reconnect may overlap the old stream). */
  open: Map<string, number>;
  /** The message of each change row read, shared by every stream it is sent to. */
  messages: WeakMap<ChangeRow, WatchMessage>;
  /** The other sidecars' sandbox evidence, sent beside the revisions (not one of them). */
  evidence: EvidenceFeed;
}

/** Changes read from the log per query while catching up. */
const PAGE = 500;

/** The Watch message of a stored change: one object per row, however many streams send it. */
function sharedChangeMessage(
  messages: WeakMap<ChangeRow, WatchMessage>,
  c: ChangeRow,
): WatchMessage {
  let m = messages.get(c);
  if (!m) {
    m = changeMessage(c);
    messages.set(c, m);
  }
  return m;
}

/** The PolicyChange message of a stored change. */
export function changeMessage(c: ChangeRow): WatchMessage {
  const base = {
    revision: BigInt(c.revision),
    digest: c.digest,
    committedAt: timestampFromMs(c.committedMs),
  };
  switch (c.kind) {
    case Kind.goLive:
      return {
        message: {
          case: "change",
          value: { ...base, entity: { case: "goLive", value: decode.goLive(c.entity) } },
        },
      };
    case Kind.risk:
      return {
        message: {
          case: "change",
          value: { ...base, entity: { case: "riskPolicy", value: decode.risk(c.entity) } },
        },
      };
    case Kind.heimdall:
      return {
        message: {
          case: "change",
          value: { ...base, entity: { case: "heimdallPolicy", value: decode.heimdall(c.entity) } },
        },
      };
    case Kind.regression:
      return {
        message: {
          case: "change",
          value: {
            ...base,
            entity: { case: "regressionPolicy", value: decode.regression(c.entity) },
          },
        },
      };
    case Kind.trip:
      return {
        message: {
          case: "change",
          value: { ...base, entity: { case: "tripwireTrip", value: decode.trip(c.entity) } },
        },
      };
    default:
      throw new Error(`change ${c.revision} has unknown kind ${c.kind}`);
  }
}

/** A snapshot of everything a sidecar decides from, as of one revision. */
async function snapshotMessage(
  store: CentralStore,
): Promise<{ revision: number; message: WatchMessage }> {
  const { head, entities } = await store.snapshot();
  const of = (kind: string) => entities.filter((e) => e.kind === kind).map((e) => e.entity);
  const goLive = of(Kind.goLive)[0];
  return {
    revision: head.revision,
    message: {
      message: {
        case: "snapshot",
        value: {
          revision: BigInt(head.revision),
          digest: head.digest,
          goLive: goLive ? decode.goLive(goLive) : undefined,
          riskPolicies: of(Kind.risk).map(decode.risk),
          heimdallPolicies: of(Kind.heimdall).map(decode.heimdall),
          regressionPolicies: of(Kind.regression).map(decode.regression),
          tripwireTrips: of(Kind.trip)
            .map(decode.trip)
            .filter((t) => t.tripped),
          committedAt: head.committedMs ? timestampFromMs(head.committedMs) : undefined,
        },
      },
    },
  };
}

/**
 * Why a sidecar at `applied` must get a snapshot, or undefined when the changes after it can be
 * sent. `resync` is set when its revision is not part of central's history (a restored central
 * backup or a reset store): then central logs it and shows it in the fleet view.
 */
async function startingPoint(
  store: CentralStore,
  applied: number,
  digest: string,
): Promise<{ snapshot: boolean; resync?: string }> {
  if (applied === 0) return { snapshot: true };
  const head = await store.head();
  if (applied > head.revision) {
    return {
      snapshot: true,
      resync: `reported revision ${applied}, which central never issued (central is at ${head.revision}): sent a snapshot`,
    };
  }
  const change = await store.change(applied);
  if (!change) return { snapshot: true };
  if (change.digest !== digest) {
    return {
      snapshot: true,
      resync: `reported revision ${applied} with digest ${digest.slice(0, 12)}..., which is not central's (${change.digest.slice(0, 12)}...): sent a snapshot`,
    };
  }
  return { snapshot: false };
}

/** Runs one Watch stream; returns the function that stops it. */
export function watchStream(
  deps: WatchDeps,
  req: WatchRequest,
  sink: StreamSink<WatchMessage>,
): () => void {
  const { store, fleet, replica, logger } = deps;
  const id = req.sidecarId;
  let stopped = false;
  let lastSent = 0;
  let sentSinceBeat = false;
  let pumping: Promise<void> | undefined;
  let again = false;
  let timer: NodeJS.Timeout | undefined;
  let opening: Promise<void> | undefined;
  let leaveEvidence: (() => void) | undefined;
  const send = (m: WatchMessage) => {
    if (stopped) return;
    sink.send(m);
    sentSinceBeat = true;
  };
  const fail = (err: unknown) => {
    if (!stopped)
      logger.error({ err, sidecar: id }, "watch stream failed; the sidecar will reconnect");
  };
  // Sends every committed change after lastSent, in order; one pass at a time.
  const pump = (): Promise<void> => {
    if (pumping) {
      again = true;
      return pumping;
    }
    pumping = (async () => {
      do {
        again = false;
        for (;;) {
          const rows = await store.changesAfter(lastSent, PAGE);
          if (stopped) return;
          for (const c of rows) {
            send(sharedChangeMessage(deps.messages, c));
            lastSent = c.revision;
          }
          if (rows.length < PAGE) break;
        }
      } while (again && !stopped);
    })().finally(() => {
      pumping = undefined;
    });
    return pumping;
  };
  let ready = false;
  const onRevision = (revision: number) => {
    if (ready && revision > lastSent) pump().catch(fail);
  };
  const beat = async () => {
    if (stopped) return;
    // Behind what was announced (a read that failed): read on now.
    if (store.announced > lastSent && !pumping) await pump();
    if (!sentSinceBeat) {
      send({
        message: {
          case: "heartbeat",
          value: { revision: BigInt(lastSent), sentAt: timestampFromMs(store.clock.now()) },
        },
      });
    }
    sentSinceBeat = false;
  };
  deps.open.set(id, (deps.open.get(id) ?? 0) + 1);
  const begin = async () => {
    const start = await startingPoint(store, Number(req.appliedRevision), req.appliedDigest);
    if (stopped) return;
    if (start.resync) {
      logger.warn(
        { sidecar: id, reported: String(req.appliedRevision), digest: req.appliedDigest },
        `sidecar ${id} ${start.resync}`,
      );
    }
    const applied = start.snapshot
      ? undefined
      : { revision: Number(req.appliedRevision), digest: req.appliedDigest };
    opening = fleet.opened(id, req.engines, applied, replica, store.clock.now(), start.resync);
    await opening;
    if (stopped) return;
    // Listening before the first read: a change committed in between is read by the pump.
    store.changes.off("revision", onRevision);
    store.changes.on("revision", onRevision);
    if (start.snapshot) {
      const snap = await snapshotMessage(store);
      if (stopped) return;
      send(snap.message);
      lastSent = snap.revision;
    } else {
      lastSent = Number(req.appliedRevision);
    }
    ready = true;
    timer = setInterval(() => beat().catch(fail), deps.heartbeatMs);
    // Evidence is not word of the policy: it leaves the heartbeats as they are.
    leaveEvidence = deps.evidence.join(id, (m) => {
      if (!stopped) sink.send(m);
    });
    await pump();
  };
  // A store fault before the first message is retried each heartbeat interval.
  const started = () =>
    begin().catch((err: unknown) => {
      fail(err);
      if (!stopped && !ready) setTimeout(started, deps.heartbeatMs).unref();
    });
  started();
  return () => {
    if (stopped) return;
    stopped = true;
    if (timer) clearInterval(timer);
    leaveEvidence?.();
    store.changes.off("revision", onRevision);
    const left = (deps.open.get(id) ?? 1) - 1;
    if (left > 0) deps.open.set(id, left);
    else {
      deps.open.delete(id);
      // After the row's opening is written, or a late opening would mark it connected again.
      const closedMs = store.clock.now();
      (opening ?? Promise.resolve())
        .catch(() => undefined)
        .then(() => fleet.closed(id, replica, closedMs))
        .catch((err: unknown) => {
          logger.warn({ err, sidecar: id }, "could not record the sidecar as disconnected");
        });
    }
  };
}
