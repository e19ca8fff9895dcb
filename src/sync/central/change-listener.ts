/**
 * LISTEN on PostgreSQL for revisions committed by any replica, on a dedicated connection
 * (a pooled one would be handed to other queries). When the connection drops it reconnects
 * with backoff and reports the newest revision, so watchers catch up from the change log on
 * what they may have missed; watchers also re-read the log at each heartbeat.
 */
import pg from "pg";
import { REVISION_CHANNEL } from "./revision-write.js";

/** A LISTEN connection that reports each revision NOTIFY carries. */
export class ChangeListener {
  private client: pg.Client | undefined;
  private stopped = false;
  private retry: NodeJS.Timeout | undefined;
  /** Told of connection failures (the replica keeps serving; watchers poll at heartbeats). */
  log?: (message: string, err?: unknown) => void;

  constructor(
    private readonly connectionString: string,
    private readonly onRevision: (revision: number) => void,
  ) {}

  /** Connects and listens; rejects when the first connection fails. */
  async start(): Promise<void> {
    await this.connect();
  }

  private async connect(): Promise<void> {
    const client = new pg.Client({ connectionString: this.connectionString });
    client.on("notification", (n) => {
      const revision = Number(n.payload);
      if (n.channel === REVISION_CHANNEL && Number.isSafeInteger(revision) && revision > 0) {
        this.onRevision(revision);
      }
    });
    const lost = (err?: unknown) => {
      if (this.client !== client) return;
      this.client = undefined;
      client.end().catch(() => undefined);
      if (this.stopped) return;
      this.log?.("LISTEN connection to PostgreSQL lost; reconnecting", err);
      this.schedule(250);
    };
    client.on("error", lost);
    client.on("end", () => lost());
    await client.connect();
    await client.query(`LISTEN ${REVISION_CHANNEL}`);
    this.client = client;
    const head = await client.query<{ revision: string }>(
      "SELECT revision FROM central_meta WHERE id = 1",
    );
    // What committed while not listening: watchers read the change log from their last sent.
    const revision = Number(head.rows[0]?.revision ?? 0);
    if (revision > 0) this.onRevision(revision);
  }

  private schedule(delayMs: number): void {
    if (this.stopped || this.retry) return;
    this.retry = setTimeout(() => {
      this.retry = undefined;
      this.connect().catch((err: unknown) => {
        this.log?.("reconnecting LISTEN to PostgreSQL failed; retrying", err);
        this.schedule(Math.min(delayMs * 2, 5_000));
      });
    }, delayMs);
    this.retry.unref();
  }

  /** Stops listening and closes the connection. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.retry) clearTimeout(this.retry);
    const client = this.client;
    this.client = undefined;
    await client?.end().catch(() => undefined);
  }
}
