/** `govd audit verify --central-store`: every sidecar's trail central holds, walked and reported. */
import { existsSync } from "node:fs";
import { systemClock } from "../clock.js";
import {
  CentralStore,
  describeLocation,
  parseStoreLocation,
} from "../sync/central/central-store.js";
import { verifyFleetTrails } from "../sync/central/trail-verify.js";

/**
 * Walks every sidecar's shipped trail in central's store at `location`, printing one line per
 * sidecar (OK, or BROKEN with the first broken seq and why); true when every trail holds.
 */
export async function verifyCentralTrails(
  location: string,
  print: (line: string) => void = console.log,
): Promise<boolean> {
  const { engine, target } = parseStoreLocation(location);
  if (engine === "sqlite" && !existsSync(target)) {
    throw new Error(`no central store at ${target}: pass the --store 'govd central' runs with`);
  }
  const { store } = await CentralStore.open(location, systemClock);
  let sidecars = 0;
  let broken = 0;
  let events = 0;
  try {
    for await (const r of verifyFleetTrails(store.db)) {
      sidecars++;
      events += r.events;
      if (r.ok) {
        print(
          `sidecar ${r.sidecarId}: OK, ${r.events} events, ends at central's anchor ${r.anchorSeq}`,
        );
      } else {
        broken++;
        print(
          `sidecar ${r.sidecarId}: BROKEN at event ${r.firstBroken?.seq}: ${r.firstBroken?.problem}`,
        );
      }
    }
  } finally {
    await store.close();
  }
  const where = describeLocation(location);
  print(
    broken === 0
      ? `central ${where}: ${sidecars} sidecar trails intact (${events} events)`
      : `central ${where}: ${broken} of ${sidecars} sidecar trails BROKEN`,
  );
  return broken === 0;
}
