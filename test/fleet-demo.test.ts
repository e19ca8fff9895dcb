/** The README's fleet demo (`npm run fleet:demo`) runs as written: 1 central, 3 sidecars, the view. */
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";

describe("npm run fleet:demo", () => {
  it("starts central and three sidecars, prints the fleet view and the acks, and stops them", async () => {
    // Ports moved by an offset in 20000..29999 so the demo's fixed ports stay free here.
    const offset = 20_000 + Math.floor(Math.random() * 1_000) * 10;
    const { stdout } = await promisify(execFile)("bash", ["scripts/fleet-demo.sh"], {
      env: { ...process.env, FLEET_DEMO_EXIT: "1", FLEET_DEMO_BASE_PORT: String(offset) },
      timeout: 90_000,
    });
    expect(stdout).toMatch(/central revision: \d+; 3 of 3 sidecars connected/);
    expect(stdout).toMatch(/3\/3 acked in \d+ ms/);
    for (const id of ["demo-1", "demo-2", "demo-3"]) expect(stdout).toContain(id);
  }, 120_000);
});
