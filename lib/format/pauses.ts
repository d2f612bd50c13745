import type { QueuePause } from "../ops/queue_pauses.ts";
import { renderTable } from "./table.ts";
import { formatRelative } from "./time.ts";

/** `graph_embed` or `graph_embed (domain user_1)`. */
export function pauseScope(p: Pick<QueuePause, "type" | "domain">): string {
  return p.domain === null ? p.type : `${p.type} (domain ${p.domain})`;
}

function waiting(p: QueuePause): string {
  if (p.waiting === undefined) return "";
  return `${p.waiting.toLocaleString("en-US")}${p.waiting_capped ? "+" : ""} waiting`;
}

/**
 * The pauses as an aligned table (`seedtask paused`, the PAUSED section of `stats`):
 * what, waiting tasks, who, since when, why.
 */
export function formatPauses(
  pauses: readonly QueuePause[],
  now: Date,
  indent = "",
): string[] {
  return renderTable(
    pauses.map((p) => [
      p.type,
      p.domain ?? "(all)",
      p.waiting === undefined ? "-" : waiting(p).replace(" waiting", ""),
      p.paused_by,
      formatRelative(p.paused_at, now),
      p.reason ?? "",
    ]),
    { head: ["TYPE", "DOMAIN", "WAITING", "PAUSED BY", "SINCE", "REASON"], indent },
  );
}

/** One clause for a check line: `paused: graph_embed (1,204 waiting, by ops@host 2h 5m ago)`. */
export function formatPausedClause(pauses: readonly QueuePause[], now: Date): string {
  if (pauses.length === 0) return "";
  return `paused: ${
    pauses.map((p) =>
      `${pauseScope(p)} (${
        [waiting(p), `by ${p.paused_by} ${formatRelative(p.paused_at, now)}`]
          .filter((x) => x !== "").join(", ")
      })`
    ).join("; ")
  }`;
}
