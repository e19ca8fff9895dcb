/**
 * GoLiveService on central: the fleet's go-live state and kill switch, authoritative here.
 * Each change is a revision streamed to every sidecar; CheckGoLive and WatchGoLive are
 * decisions, served by the sidecars.
 */
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { GoLiveService, type GoLiveState } from "../../../gen/governance/v1/golive_pb.js";
import { buildChecklist, type Check, type GoLiveFlags } from "../../levers/golive/rules.js";
import { type AsyncServiceBinding, bindAsyncService } from "../../levers/service-binding.js";
import { decode, encode, GO_LIVE_KEY, Kind } from "./central-entities.js";
import { CENTRAL_SCHEMA_VERSION } from "./central-schema.js";
import type { CentralStore } from "./central-store.js";
import type { ChangeAuthor, RevisionWrite } from "./revision-write.js";

/** Why a decision RPC is not answered on central. */
export const DECISIONS_ON_SIDECARS =
  "is a decision, served by the sidecars (govd serve) next to each engine, not by central";

/** Entity reads from the store outside a write, or from a write's transaction. */
type EntityReads = Pick<RevisionWrite, "entity" | "entities">;

/** Reads through the store's own connection. */
export function storeReads(store: CentralStore): EntityReads {
  return {
    entity: async (kind, key) => (await store.entities(kind)).find((e) => e.key === key)?.entity,
    entities: async (kind) => (await store.entities(kind)).map((e) => e.entity),
  };
}

/** The go-live state as stored (a fresh store is seeded with one). */
export async function goLiveOf(reads: EntityReads): Promise<GoLiveState> {
  const bytes = await reads.entity(Kind.goLive, GO_LIVE_KEY);
  if (!bytes)
    throw new ConnectError("central store has no go-live state: it was not seeded", Code.Internal);
  return decode.goLive(bytes);
}

/** The go-live checklist over central's entities. */
export async function centralChecklist(reads: EntityReads): Promise<Check[]> {
  const risk = (await reads.entities(Kind.risk)).map(decode.risk);
  const global = risk.find((p) => p.engine === "GLOBAL");
  const trips = (await reads.entities(Kind.trip)).map(decode.trip).filter((t) => t.tripped);
  const checks = buildChecklist({
    schemaVersion: CENTRAL_SCHEMA_VERSION,
    latestSchemaVersion: CENTRAL_SCHEMA_VERSION,
    globalRiskPolicy: { present: global !== undefined, enabled: global?.enabled ?? false },
    policyCounts: {
      risk: risk.length,
      heimdall: (await reads.entities(Kind.heimdall)).length,
      regression: (await reads.entities(Kind.regression)).length,
    },
    trippedWires: trips.map((t) => `${t.domain}/${t.metric}`),
    killSwitchEngaged: (await goLiveOf(reads)).killSwitchEngaged,
  });
  return checks.map((c) =>
    c.name === "policy_fresh" ? { ...c, detail: "central holds the authoritative policies" } : c,
  );
}

/**
 * Changes the switches as the next revision (the state carries that revision and time) and
 * returns the new state.
 */
export async function changeSwitches(
  w: RevisionWrite,
  change: Partial<GoLiveFlags>,
  author: ChangeAuthor,
): Promise<GoLiveState> {
  const current = await goLiveOf(w);
  let state: GoLiveState | undefined;
  await w.append(
    Kind.goLive,
    GO_LIVE_KEY,
    (revision, committedMs) => {
      const bytes = encode.goLive({
        goLiveEnabled: change.goLiveEnabled ?? current.goLiveEnabled,
        killSwitchEngaged: change.killSwitchEngaged ?? current.killSwitchEngaged,
        changedBy: author.actor,
        reason: author.reason,
        updatedAt: timestampFromMs(committedMs),
        revision: BigInt(revision),
      });
      state = decode.goLive(bytes);
      return bytes;
    },
    author,
  );
  return state as unknown as GoLiveState;
}

type Switch = { actor: string; reason: string; correlationId: string };

/** GoLiveService bound to central's store. */
export function centralGoLiveService(store: CentralStore): AsyncServiceBinding<RevisionWrite> {
  const reads = storeReads(store);
  const flip = (change: Partial<GoLiveFlags>) => async (req: Switch, w: RevisionWrite) => ({
    state: await changeSwitches(w, change, req),
  });
  return bindAsyncService<typeof GoLiveService, RevisionWrite>(
    GoLiveService,
    {
      getState: async () => ({ state: await goLiveOf(reads) }),
      getChecklist: async () => {
        const checks = await centralChecklist(reads);
        return { checks, ready: checks.every((c) => c.ok) };
      },
      enable: async (req, w) => {
        await w.lock();
        const failing = (await centralChecklist(w)).filter((c) => !c.ok);
        if (failing.length > 0) {
          throw new ConnectError(
            `go-live checklist not met: ${failing.map((c) => `${c.name} (${c.detail})`).join("; ")}`,
            Code.FailedPrecondition,
          );
        }
        return { state: await changeSwitches(w, { goLiveEnabled: true }, req) };
      },
      disable: flip({ goLiveEnabled: false }),
      engageKillSwitch: flip({ killSwitchEngaged: true }),
      releaseKillSwitch: flip({ killSwitchEngaged: false }),
    },
    {
      admin: ["enable", "disable", "engageKillSwitch", "releaseKillSwitch"],
      unserved: {
        checkGoLive: `CheckGoLive ${DECISIONS_ON_SIDECARS}`,
        watchGoLive: `WatchGoLive ${DECISIONS_ON_SIDECARS}; sidecars follow central with SyncService.Watch`,
      },
    },
  );
}
