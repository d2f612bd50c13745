import type { DispatchEvent } from "./events.ts";

/** Counters of one dispatcher run. */
export interface DispatcherStats {
  /** Tasks claimed: executions started. */
  claimed: number;
  /** Executions recorded as completed. */
  completed: number;
  /** Failed executions scheduled for retry. */
  retried: number;
  /** Tasks failed for good (max attempts reached). */
  failed: number;
  /** Expired leases (of any dispatcher) this dispatcher's reaper returned. */
  reaped: number;
  /** Executions released at shutdown, back to retry. */
  released: number;
  /** Results not recorded: the task was no longer this execution's (cancelled, reaped). */
  refused: number;
}

/**
 * The counter each event adds one to. An outcome is reported once, by its event; the run's
 * counters and the Prometheus metrics are both derived from the events through this table.
 * Every claimed task gets exactly one "processing" event.
 */
export const COUNTED_BY: { readonly [E in DispatchEvent["event"]]?: keyof DispatcherStats } = {
  processing: "claimed",
  completed: "completed",
  retry: "retried",
  failed: "failed",
  reaped: "reaped",
  released: "released",
  refused: "refused",
};

/** Counters at zero. */
export function emptyStats(): DispatcherStats {
  return { claimed: 0, completed: 0, retried: 0, failed: 0, reaped: 0, released: 0, refused: 0 };
}

/** Counts `event` in `stats`. */
export function countEvent(stats: DispatcherStats, event: DispatchEvent): void {
  const counter = COUNTED_BY[event.event];
  if (counter) stats[counter]++;
}
