/**
 * The sidecar id a store ships its trail as: recorded at a connected start, kept by later
 * starts without --sidecar-id (a pod back under a new host name with the same volume does not
 * ship its trail again under that name), and a start with another id is refused once central
 * holds events of the store, since central would take them all again and count each twice.
 * The rules on a real store, then with real processes.
 */
import { spawnSync } from "node:child_process";
import { afterEach, describe, expect, it } from "vitest";
import { launcherNodeFlags } from "../bench/processes.js";
import { GoLiveService } from "../gen/governance/v1/golive_pb.js";
import { RiskService } from "../gen/governance/v1/risk_pb.js";
import { SyncService } from "../gen/governance/v1/sync_pb.js";
import { recordedSidecarId } from "../src/store/sidecar-identity.js";
import { recordTrailOwner, trailOwner } from "../src/sync/follower/trail-owner.js";
import { eventually } from "./support/eventually.js";
import { FLEET_TOKEN, startCentral, startFollower, stopAll } from "./support/fleet-processes.js";
import { openTempStore, type TempStore } from "./support/temp-store.js";

const stores: TempStore[] = [];
afterEach(async () => {
  for (const s of stores.splice(0)) s.remove();
  await stopAll();
});

function store(): TempStore {
  const s = openTempStore();
  stores.push(s);
  return s;
}

describe("the trail's owner (rules on a real store)", () => {
  it("takes the host name when nothing names it, and keeps it once recorded", () => {
    const { db } = store();
    const first = trailOwner(db, undefined, "pod-a", "f.db");
    expect(first).toEqual({ sidecarId: "pod-a", source: "host name", recorded: false });
    recordTrailOwner(db, first, 1);
    expect(recordedSidecarId(db)).toBe("pod-a");
    // The pod comes back as pod-b with the same volume.
    expect(trailOwner(db, undefined, "pod-b", "f.db")).toEqual({
      sidecarId: "pod-a",
      source: "store",
      recorded: true,
    });
  });

  it("lets --sidecar-id rename a store central holds nothing of, and records the new id", () => {
    const { db } = store();
    recordTrailOwner(db, trailOwner(db, "old-name", "host", "f.db"), 1);
    const renamed = trailOwner(db, "new-name", "host", "f.db");
    expect(renamed).toEqual({ sidecarId: "new-name", source: "flag", recorded: false });
    recordTrailOwner(db, renamed, 2);
    expect(recordedSidecarId(db)).toBe("new-name");
  });

  it("refuses another --sidecar-id once central acked events of the store", () => {
    const { db } = store();
    recordTrailOwner(db, trailOwner(db, "wholesale-1", "host", "f.db"), 1);
    db.prepare("UPDATE meta SET value = 7 WHERE key = 'shipped_seq'").run();
    expect(trailOwner(db, "wholesale-1", "host", "f.db").recorded).toBe(true);
    expect(() => trailOwner(db, "wholesale-2", "host", "/data/sidecar.db")).toThrow(
      /--sidecar-id wholesale-2: the store \/data\/sidecar.db ships its trail to central as sidecar wholesale-1.*count each twice.*--sidecar-id wholesale-1.*new --data-dir/,
    );
    expect(recordedSidecarId(db)).toBe("wholesale-1");
  });

  it("asks for --sidecar-id when a store shipped before its id was recorded (an older govd)", () => {
    const { db } = store();
    db.prepare("UPDATE meta SET value = 40 WHERE key = 'shipped_seq'").run();
    expect(() => trailOwner(db, undefined, "pod-b", "/data/sidecar.db")).toThrow(
      /the store \/data\/sidecar.db shipped events to central before govd recorded .*--sidecar-id set to the id it shipped as/,
    );
    const owner = trailOwner(db, "wholesale-1", "pod-b", "f.db");
    expect(owner).toEqual({ sidecarId: "wholesale-1", source: "flag", recorded: false });
    recordTrailOwner(db, owner, 1);
    expect(trailOwner(db, undefined, "pod-c", "f.db").sidecarId).toBe("wholesale-1");
  });

  it("refuses a host name central would refuse, and says to pass --sidecar-id", () => {
    const { db } = store();
    expect(() => trailOwner(db, undefined, "_bad host", "f.db")).toThrow(
      /the host name _bad host is not a valid sidecar id.*pass --sidecar-id/,
    );
    expect(() => trailOwner(db, "-x", "host", "f.db")).toThrow(/--sidecar-id -x is not a valid/);
  });
});

describe("the trail's owner (real processes)", () => {
  it("a restart without --sidecar-id ships as the recorded id; another id is refused", async () => {
    const central = await startCentral();
    await central.grpc.call(
      GoLiveService,
      "enable",
      { actor: "ops", reason: "open", correlationId: "open" },
      { token: FLEET_TOKEN },
    );
    let s = await startFollower({ central: central.grpcAddress, sidecarId: "wholesale-1" });
    const reserve = (id: string) =>
      s.grpc.call(RiskService, "reserve", {
        engine: "WHOLESALE",
        amount: "1.00",
        actor: "engine",
        correlationId: id,
      });
    await reserve("one");
    const shippedOf = async () => {
      const view = await central.grpc.call(SyncService, "listSidecars", {});
      return view.sidecars.map((x) => [x.sidecarId, x.shippedSeq] as const);
    };
    const before = await eventually("central to hold the reserve", async () => {
      const rows = await shippedOf();
      return rows.length === 1 && (rows[0]?.[1] ?? 0n) >= 2n ? rows : undefined;
    });
    await s.stop();

    const refused = spawnSync(
      "node",
      [
        ...launcherNodeFlags("serve"),
        "dist/src/cli/govd.js",
        "serve",
        "--central",
        central.grpcAddress,
        "--sidecar-id",
        "wholesale-2",
      ],
      {
        encoding: "utf8",
        timeout: 30_000,
        env: { ...process.env, GOVD_DATA_DIR: s.dataDir, GOVD_CENTRAL_TOKEN: FLEET_TOKEN },
      },
    );
    expect(refused.status).toBe(1);
    expect(refused.stderr).toMatch(
      /--sidecar-id wholesale-2: the store .* ships its trail to central as sidecar wholesale-1/,
    );

    s = await startFollower({ central: central.grpcAddress, dataDir: s.dataDir });
    await reserve("two");
    const after = await eventually("the second reserve shipped as wholesale-1", async () => {
      const rows = await shippedOf();
      return (rows[0]?.[1] ?? 0n) > (before[0]?.[1] ?? 0n) ? rows : undefined;
    });
    expect(after.map(([id]) => id)).toEqual(["wholesale-1"]);
    const ledger = await central.grpc.call(RiskService, "getLedgerToday", {});
    expect(ledger.entries.find((e) => e.engine === "WHOLESALE")?.actions).toBe(2);
  });
});
