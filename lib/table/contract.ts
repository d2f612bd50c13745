import { InvalidInputError } from "../errors.ts";

/** Every status of the `taskstatus` enum, in lifecycle order. */
export const TASK_STATUSES = [
  "created",
  "queued",
  "running",
  "completed",
  "failed",
  "cancelled",
  "retry",
] as const;

export type TaskStatus = typeof TASK_STATUSES[number];

/** Statuses a dispatcher may claim from. */
export const CLAIMABLE_STATUSES: readonly TaskStatus[] = ["queued", "retry"];
/** Statuses a task never leaves by itself. */
export const TERMINAL_STATUSES: readonly TaskStatus[] = ["completed", "failed", "cancelled"];

/** One row of the task table. Extra columns of a SeedCore table appear as extra keys. */
export interface Task {
  id: string;
  status: TaskStatus;
  type: string;
  description: string | null;
  domain: string | null;
  drift_score: number;
  attempts: number;
  locked_by: string | null;
  locked_at: Date | null;
  run_after: Date | null;
  params: unknown;
  result: unknown;
  error: string | null;
  created_at: Date;
  updated_at: Date;
  owner_id?: string | null;
  lease_expires_at?: Date | null;
  last_heartbeat?: Date | null;
  [extra: string]: unknown;
}

/** The contract's columns, in table order; anything else on a row is an extra column. */
export const CONTRACT_COLUMNS = [
  "id",
  "status",
  "type",
  "description",
  "domain",
  "drift_score",
  "attempts",
  "locked_by",
  "locked_at",
  "run_after",
  "params",
  "result",
  "error",
  "created_at",
  "updated_at",
  "owner_id",
  "lease_expires_at",
  "last_heartbeat",
] as const;

/** The lease columns of SeedCore migration 006 (needed by dispatch, optional elsewhere). */
export const LEASE_COLUMNS: readonly string[] = ["owner_id", "lease_expires_at", "last_heartbeat"];

export function isTaskStatus(value: string): value is TaskStatus {
  return (TASK_STATUSES as readonly string[]).includes(value);
}

/**
 * Parses `--status queued,retry` (or an array of such strings) into distinct statuses.
 * Unknown names are a usage error that lists the valid ones.
 */
export function parseStatuses(input: string | readonly string[]): TaskStatus[] {
  const parts = (typeof input === "string" ? [input] : input)
    .flatMap((s) => s.split(","))
    .map((s) => s.trim().toLowerCase())
    .filter((s) => s !== "");
  if (parts.length === 0) {
    throw new InvalidInputError(`Empty status list: expected one of ${TASK_STATUSES.join(", ")}`);
  }
  const out: TaskStatus[] = [];
  for (const p of parts) {
    if (!isTaskStatus(p)) {
      throw new InvalidInputError(
        `Unknown status "${p}": expected one of ${TASK_STATUSES.join(", ")}`,
      );
    }
    if (!out.includes(p)) out.push(p);
  }
  return out;
}

/** The emoji the seed's helper shows next to each status (TTY only). */
export const STATUS_EMOJI: Record<TaskStatus, string> = {
  created: "🆕",
  queued: "⏳",
  running: "🏃",
  completed: "✅",
  failed: "❌",
  cancelled: "🚫",
  retry: "🔄",
};
