/**
 * The event shipper of a connected sidecar: it ships the audit trail to central in seq order,
 * in batches, off the decision path (a decision never waits for it). The outbox is the audit
 * trail itself: every event after the newest one central acked. Only acked events are ever
 * pruned (trail-retention.ts; default keep), so a sidecar whose disk survives loses no event,
 * and after any restart on either side it asks central what it holds (an empty shipment) and
 * resumes from there.
 */
import type { Logger } from "pino";
import type { Clock } from "../../clock.js";
import type { Db } from "../../store/database.js";
import { trailHorizon } from "../../store/trail-horizon.js";
import { encodeShipment, SHIPPED_COLUMNS, type ShippableTuple } from "../shipment-encoding.js";
import type { SyncClient } from "./sync-client.js";

/** How a sidecar ships its events. */
export interface ShipperOptions {
  db: Db;
  clock: Clock;
  logger: Logger;
  sidecarId: string;
  /** Events per shipment at most (default 500) and their bytes at most (default 1 MiB). */
  batchEvents?: number;
  batchBytes?: number;
  /**
   * How often an idle shipper looks for new events when no commit told it of any (default
   * 1 s): the sidecar tells it after each commit (`committed`), so it does not poll for them.
   */
  idleMs?: number;
  /**
   * How long a batch that is not full waits for more events (default 200 ms, as a producer's
   * linger): a sidecar that decides a few times a second ships a batch a few times a second,
   * not one shipment per event, and its shipments stay out of the moments right after a
   * change from central, when every sidecar of the fleet applies and acks it at once.
   */
  lingerMs?: number;
  /** Told each time central acks events up to a seq (the retention counts from the ack). */
  onAcked?: (seq: number) => void;
}

/** The default linger (see ShipperOptions.lingerMs). */
export const SHIP_LINGER_MS = 200;
/** How long after a commit an idle shipper looks for its events (at most the linger and idleMs). */
const WAKE_MS = 100;

/** What the outbox holds now, for logs, tests and /readyz. */
export interface OutboxStatus {
  /** The newest event central acked (as last persisted here). */
  shippedSeq: number;
  headSeq: number;
  /** Events not acked yet, and the age of the oldest of them (0 when none). */
  events: number;
  oldestMs: number;
}

/** Ships the audit trail to central; `client` gives the follower's current channel. */
export class EventShipper {
  private readonly s;
  private stopped = true;
  private wake: (() => void) | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** Central's acked seq when known this session; undefined until asked (and after an error). */
  private ackedByCentral: number | undefined;
  private failures = 0;
  /** True while it waits for events to be committed (a commit wakes it). */
  private idle = false;
  /** A commit came since its last read; and whether it is inside a transaction of its own. */
  private dirty = false;
  private inOwn = false;
  /** When (performance.now()) the batch now waiting was first found not full. */
  private lingerSince: number | undefined;
  /** Set when a batch waits to fill: how long until its oldest event has lingered enough. */
  private lingering: number | undefined;
  /** Central's newest ack not yet persisted (`meta.shipped_seq`): written with the next read. */
  private unsavedAck: number | undefined;

  /**
   * `runNow` runs work in a transaction of its own (committing an open batch of calls first);
   * `settled`, when given, resolves once no batch of calls is open, so that the shipper's reads
   * wait for the batch to commit instead of splitting it.
   */
  constructor(
    private readonly o: ShipperOptions,
    private readonly client: () => SyncClient,
    private readonly runNow: <T>(work: () => T) => T,
    private readonly settled?: () => Promise<void>,
  ) {
    const db = o.db;
    this.s = {
      shipped: db
        .prepare<[], { value: number }>("SELECT value FROM meta WHERE key = 'shipped_seq'")
        .safeIntegers(false),
      saveShipped: db.prepare("UPDATE meta SET value = ? WHERE key = 'shipped_seq'"),
      head: db
        .prepare<[], { seq: number; hash: string }>(
          "SELECT seq, hash FROM audit_event ORDER BY seq DESC LIMIT 1",
        )
        .safeIntegers(false),
      timeOf: db
        .prepare<[number], { time_ms: number }>("SELECT time_ms FROM audit_event WHERE seq = ?")
        .safeIntegers(false),
      hashOf: db
        .prepare<[number], { hash: string }>("SELECT hash FROM audit_event WHERE seq = ?")
        .safeIntegers(false),
      // Rows as arrays (no object per row); integers as bigints (amounts beyond 2^53 stay exact).
      after: db
        .prepare<[number, number], ShippableTuple>(
          `SELECT ${SHIPPED_COLUMNS} FROM audit_event WHERE seq > ? ORDER BY seq LIMIT ?`,
        )
        .raw(true)
        .safeIntegers(true),
    };
  }

  /** Starts shipping (the follower starts it with itself). */
  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.ackedByCentral = undefined;
    this.loop().catch((err: unknown) => {
      this.o.logger.error({ error: (err as Error).message }, "event shipper stopped");
    });
  }

  /** Told after a commit of the store: an idle shipper looks for new events now. */
  committed(): void {
    // Its own transactions (and the open batch they commit first) are seen by its own read.
    if (this.inOwn) return;
    this.dirty = true;
    if (!this.idle) return;
    this.idle = false;
    if (this.timer) clearTimeout(this.timer);
    // Not at once: a batch that is not full lingers anyway, and the moments right after a
    // commit are for what made it (a change from central, applied and acked by every sidecar
    // of the fleet at once). A full batch waits this little.
    const wakeMs = Math.min(this.o.lingerMs ?? SHIP_LINGER_MS, this.o.idleMs ?? 1_000, WAKE_MS);
    this.timer = setTimeout(() => this.wake?.(), wakeMs);
  }

  /** Stops shipping; a shipment in flight is left to finish or fail (central keeps it whole). */
  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.wake?.();
  }

  /**
   * Runs the read of `shipOnce` in a transaction of its own, whose commit (and that of the open
   * batch it commits first) is not news: the read sees both (see `committed`).
   */
  private own<T>(work: () => T): T {
    this.inOwn = true;
    try {
      return this.runNow(work);
    } finally {
      this.inOwn = false;
    }
  }

  /** The outbox now (committed events only). */
  status(): OutboxStatus {
    return this.runNow(() => this.read());
  }

  private read(head = this.s.head.get()?.seq ?? 0): OutboxStatus {
    const shippedSeq = this.ackedByCentral ?? this.s.shipped.get()?.value ?? 0;
    const events = Math.max(0, head - shippedSeq);
    const oldest = events > 0 ? this.s.timeOf.get(shippedSeq + 1)?.time_ms : undefined;
    return {
      shippedSeq,
      headSeq: head,
      events,
      oldestMs: oldest === undefined ? 0 : Math.max(0, this.o.clock.now() - oldest),
    };
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      let shippedAny = false;
      try {
        shippedAny = await this.shipOnce();
        this.failures = 0;
      } catch (err) {
        // A call cut by stop() (the channel closes) is no failure worth a line.
        if (this.stopped) break;
        this.ackedByCentral = undefined;
        this.failures++;
        // Every failure of a streak is not worth a line: the first, then every 50th.
        if (this.failures === 1 || this.failures % 50 === 0) {
          this.o.logger.warn(
            { error: (err as Error).message, failures: this.failures },
            "shipping events to central failed; the outbox keeps them and shipping retries",
          );
        }
      }
      // Shipped a batch (more may follow), or a commit came while it shipped: look again now.
      if (shippedAny || this.stopped || (this.dirty && this.failures === 0)) continue;
      const wait =
        this.failures === 0
          ? (this.lingering ?? this.o.idleMs ?? 1_000)
          : Math.min(100 * 2 ** Math.min(this.failures - 1, 6), 5_000);
      // Waiting for events (not for a batch to linger, nor after a failure): a commit wakes it.
      this.idle = this.failures === 0 && this.lingering === undefined;
      this.lingering = undefined;
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        this.timer = setTimeout(resolve, wait);
      });
      this.idle = false;
      this.wake = undefined;
    }
  }

  /** One step: ask central what it holds, or ship the next batch. True when it shipped events. */
  private async shipOnce(): Promise<boolean> {
    const client = this.client();
    // Read in a transaction of its own once the open batch of calls (if any) has committed:
    // committed events only. Commits from here on are news: this read sees every one before it.
    await this.settled?.();
    if (this.stopped) return false;
    this.dirty = false;
    // Central's last ack is persisted in the same transaction (no transaction of its own).
    const saving = this.unsavedAck;
    const { events, outbox, head, prevHash } = this.own(() => {
      if (saving !== undefined) this.s.saveShipped.run(saving);
      const head = this.s.head.get();
      const outbox = this.read(head?.seq ?? 0);
      const after = this.ackedByCentral;
      const events = after === undefined ? [] : this.batchAfter(after);
      const prevHash = after === undefined ? "" : this.hashAt(after);
      return { events, outbox, head, prevHash };
    });
    if (this.unsavedAck === saving) this.unsavedAck = undefined;
    if (this.ackedByCentral !== undefined && events.length === 0) return false;
    // A batch that is not full waits until its oldest event has lingered (see lingerMs).
    const linger = this.o.lingerMs ?? SHIP_LINGER_MS;
    const full = outbox.events > events.length || events.length >= (this.o.batchEvents ?? 500);
    // Timed by the event's own time and, should the wall clock step back, by this process's.
    const now = performance.now();
    if (events.length > 0 && !full) {
      this.lingerSince ??= now;
      const waited = Math.max(outbox.oldestMs, now - this.lingerSince);
      if (waited < linger) {
        this.lingering = Math.max(1, linger - waited);
        return false;
      }
    }
    this.lingerSince = undefined;
    // Only the count outlives the send: rows kept across the await would outlive young
    // collections and be copied into the old generation, which a busy sidecar pays for.
    const shipped = events.length;
    const answer = await client.shipEncoded(
      encodeShipment(
        {
          sidecarId: this.o.sidecarId,
          prevHash,
          headSeq: head?.seq ?? 0,
          headHash: head?.hash ?? "",
          outboxEvents: outbox.events,
          outboxOldestMs: outbox.oldestMs,
        },
        events,
      ),
    );
    const acked = Number(answer.ackedSeq);
    this.ackedByCentral = acked;
    // Persisted with the next read, at once when more events wait, else within idleMs (after
    // stop() the store may be closing; central's answer is asked again at the next start).
    if (!this.stopped) this.unsavedAck = acked;
    this.o.onAcked?.(acked);
    return shipped > 0;
  }

  /**
   * The hash of event `seq`, which the next shipment names as its previous: the horizon's when
   * `seq` is the newest pruned event. Central asking for events pruned before that means it
   * lost events it had acked (restored from a backup older than the retention): refused here
   * with the way out, and retried, since shipping anything else would leave a gap.
   */
  private hashAt(seq: number): string {
    const hash = seq === 0 ? undefined : this.s.hashOf.get(seq)?.hash;
    if (hash !== undefined) return hash;
    const horizon = trailHorizon(this.o.db);
    if (seq === horizon.seq) return horizon.hash;
    if (seq < horizon.seq) {
      throw new Error(
        `central holds this sidecar's events up to ${seq}, but they were acked by central up to ${horizon.seq} and pruned here (--retain-shipped): central lost events it had acked (restored from an older backup?). Restore central's store from a newer copy; this sidecar keeps deciding and keeps every event after ${horizon.seq}`,
      );
    }
    return "";
  }

  /** The events after `seq`, up to the batch bounds. */
  private batchAfter(seq: number): ShippableTuple[] {
    const max = this.o.batchEvents ?? 500;
    const maxBytes = this.o.batchBytes ?? 1024 * 1024;
    let bytes = 0;
    const batch: ShippableTuple[] = [];
    for (const r of this.s.after.all(seq, max)) {
      // An estimate of the encoded size: the long fields and a bound for the rest.
      // (reason, metadata, actor and subject: see SHIPPED_COLUMNS)
      bytes += 256 + r[7].length + r[11].length + r[8].length + r[4].length;
      if (batch.length > 0 && bytes > maxBytes) break;
      batch.push(r);
    }
    return batch;
  }
}
