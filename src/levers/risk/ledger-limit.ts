/**
 * The int64 limit of stored money sums. SQLite's `+` past int64 does not fail: it yields an
 * inexact REAL. The ledger and open-risk upserts return the type of each sum they leave, and a
 * booking that crossed the limit is refused here, inside the call's savepoint.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { formatMoney, MAX_STORED_MICROS } from "../../money.js";

/** What a booking left in each ledger row it touched: 'integer', or 'real' once past int64. */
export interface BookedRow {
  engine: string;
  exposure?: string;
  realized_loss?: string;
  open_risk?: string;
}

const LIMIT_TEXT = formatMoney(MAX_STORED_MICROS);

const DIMENSION: Record<string, string> = {
  exposure: "daily exposure",
  realized_loss: "daily realized loss",
  open_risk: "open risk",
};

/**
 * Refuses a booking that took a sum past int64 (SQLite's `+` turns it into an inexact REAL):
 * thrown inside the call's savepoint, so nothing of the call is kept.
 */
export function assertExact(rows: BookedRow[]): void {
  for (const row of rows) {
    for (const [column, type] of Object.entries(row)) {
      if (column === "engine" || type === "integer") continue;
      throw new ConnectError(
        `this booking would take the ${DIMENSION[column] ?? column} of ${row.engine} past ${LIMIT_TEXT}, the most a ledger holds (int64 micro-units): nothing was booked`,
        Code.ResourceExhausted,
      );
    }
  }
}
