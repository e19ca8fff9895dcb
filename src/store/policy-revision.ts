/** The policy revision: a counter every policy, go-live or tripwire change increments. */
import type { Db } from "./database.js";

/** Reads and bumps the revision decisions report as `policy_revision`. */
export class PolicyRevision {
  private readonly read;
  private readonly bump;

  constructor(db: Db) {
    this.read = db.prepare<[], { value: number }>(
      "SELECT value FROM meta WHERE key = 'policy_revision'",
    );
    this.bump = db.prepare("UPDATE meta SET value = value + 1 WHERE key = 'policy_revision'");
  }

  /** The current revision. */
  current(): bigint {
    return BigInt(this.read.get()?.value ?? 0);
  }

  /** Increments the revision (inside the change's transaction) and returns the new one. */
  next(): bigint {
    this.bump.run();
    return this.current();
  }
}
