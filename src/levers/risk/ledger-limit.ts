/**
 * The int64 limit of money sums. The ledgers and open risk are kept in memory (RiskBook) and
 * folded into SQLite INTEGER columns, an int64, so no sum may pass it: a booking that would is
 * refused with RESOURCE_EXHAUSTED before anything of the call is written.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { formatMoney, MAX_STORED_MICROS } from "../../money.js";

const LIMIT_TEXT = formatMoney(MAX_STORED_MICROS);

/** The dimensions a sum is kept in, as an operator reads them. */
export type SumDimension = "daily exposure" | "daily realized loss" | "open risk";

/**
 * Refuses a booking that would take `engine`'s `dimension` past int64 (`sum` is what it would
 * hold): the call fails before it writes, so nothing of it is kept.
 */
export function assertWithinLimit(engine: string, dimension: SumDimension, sum: bigint): void {
  if (sum <= MAX_STORED_MICROS) return;
  throw new ConnectError(
    `this booking would take the ${dimension} of ${engine} past ${LIMIT_TEXT}, the most a ledger holds (int64 micro-units): nothing was booked`,
    Code.ResourceExhausted,
  );
}
