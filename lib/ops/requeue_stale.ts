import type postgres from "postgres";
import { type Db, getTableInfo, guard } from "../db.ts";
import { InvalidInputError, OutOfRangeError } from "../errors.ts";
import { nowFragment, stuckCondition } from "../queries/queue_health.ts";
import type { Task } from "../table/contract.ts";
import { DEFAULT_MAX_ATTEMPTS } from "../dispatch/backoff.ts";

/** What {@link requeueStale} treats as stale, and what it does with it. */
export interface RequeueOptions {
  /**
   * A running task without a lease (claimed by a dispatcher that does not keep one) is stale
   * once locked longer than this. Default 15m.
   */
  olderThanMs?: number;
  /** Tasks that already used this many attempts go to failed instead of retry. Default 3. */
  maxAttempts?: number;
  /** Only expired leases (the dispatcher's reaper): never guess about lease-less tasks. */
  leaseOnly?: boolean;
  /** Report what would change, change nothing. */
  dryRun?: boolean;
  /** Who is requeueing, recorded in the error text. Default "seedtask". */
  actor?: string;
  /** The instant to judge staleness at (tests). Default the database's `now()`. */
  now?: Date;
}

/** A stale task and what happened (or would happen) to it. */
export interface RequeuedTask {
  /** The task as it is after the change (or as it would be, in a dry run). */
  task: Task;
  /** `retry` when it has attempts left, `failed` when not. */
  outcome: "retry" | "failed";
  /** The dispatcher that held it. */
  previous_owner: string | null;
}

export const DEFAULT_STALE_MS = 15 * 60_000;

/** What {@link requeueRule} needs: the rule's part of {@link RequeueOptions}. */
export type RequeueRuleOptions = Pick<
  RequeueOptions,
  "olderThanMs" | "maxAttempts" | "leaseOnly" | "now"
>;

/** requeue-stale's rule as SQL: which rows it takes and what it does with each. */
export interface RequeueRule {
  /** The rows it takes (unqualified columns of the task table; includes `status = 'running'`). */
  stale: postgres.PendingQuery<postgres.Row[]>;
  /** `'retry'` or `'failed'` for such a row. */
  outcome: postgres.PendingQuery<postgres.Row[]>;
  /** The max attempts in force (the failure message names it). */
  maxAttempts: number;
}

function checkThresholds(
  options: RequeueRuleOptions,
): { olderThanMs: number; maxAttempts: number } {
  const olderThanMs = options.olderThanMs ?? DEFAULT_STALE_MS;
  const maxAttempts = options.maxAttempts ?? DEFAULT_MAX_ATTEMPTS;
  if (!Number.isInteger(maxAttempts) || maxAttempts < 1) {
    throw new OutOfRangeError(`Invalid max attempts "${maxAttempts}": expected 1 or more`);
  }
  if (!(olderThanMs > 0)) throw new InvalidInputError("--older-than must be greater than 0");
  return { olderThanMs, maxAttempts };
}

/**
 * The one place that decides what `requeue-stale` does: {@link requeueStale} changes the rows
 * `stale` selects, each to its `outcome`; `seedtask leases` counts the same expressions to say
 * what it would do, without fetching the rows. Throws on invalid options.
 */
export function requeueRule(db: Db, hasLease: boolean, options: RequeueRuleOptions): RequeueRule {
  const { olderThanMs, maxAttempts } = checkThresholds(options);
  const sql = db.sql;
  const now = nowFragment(db, options.now);
  const stale = options.leaseOnly && hasLease
    ? sql`status = 'running' and lease_expires_at < ${now}`
    : stuckCondition(db, hasLease, olderThanMs, now);
  return {
    stale,
    outcome: sql`(case when attempts >= ${maxAttempts} then 'failed' else 'retry' end)`,
    maxAttempts,
  };
}

/**
 * Returns running tasks whose lease expired — or, without a lease, that were locked longer than
 * `olderThanMs` — to `retry` (claimable now), or to `failed` once they used `maxAttempts`
 * ({@link requeueRule}). The reason is appended to `error`. One statement, `FOR UPDATE SKIP
 * LOCKED` so several reapers never fight over a row, and guarded by the stale condition itself:
 * a task whose dispatcher renewed its lease in the meantime is not touched.
 */
export async function requeueStale(db: Db, options: RequeueOptions = {}): Promise<RequeuedTask[]> {
  checkThresholds(options);
  return await guard(db, async () => {
    const { hasLease } = await getTableInfo(db);
    const sql = db.sql;
    const t = sql(db.table);
    const now = nowFragment(db, options.now);
    const { stale, outcome, maxAttempts } = requeueRule(db, hasLease, options);
    const actor = options.actor ?? "seedtask";
    const why = sql`'lease expired (locked by ' || coalesce(s.locked_by, '?') || ', requeued by ' ||
      ${actor}::text || ')'`;
    const clearLease = hasLease
      ? sql`, owner_id = null, lease_expires_at = null, last_heartbeat = null`
      : sql``;
    let rows: postgres.Row[];
    if (options.dryRun) {
      rows = await sql`
        select s.*, ${outcome} as "__outcome", s.locked_by as "__previous_owner"
        from ${t} s where ${stale} order by s.locked_at`;
    } else {
      rows = await sql`
        with s as (
          select id, locked_by, ${outcome} as outcome from ${t}
          where ${stale}
          for update skip locked
        ),
        failed as (
          update ${t} as x set status = 'failed',
            error = concat_ws(' | ', nullif(x.error, ''),
              ${`Max attempts (${maxAttempts}) exceeded: `}::text || ${why})${clearLease}
          from s where x.id = s.id and s.outcome = 'failed'
          returning x.*, 'failed' as "__outcome", s.locked_by as "__previous_owner"
        ),
        retried as (
          update ${t} as x set status = 'retry', run_after = ${now}, locked_by = null,
            error = concat_ws(' | ', nullif(x.error, ''), ${why})${clearLease}
          from s where x.id = s.id and s.outcome = 'retry'
          returning x.*, 'retry' as "__outcome", s.locked_by as "__previous_owner"
        )
        select * from failed union all select * from retried`;
    }
    return rows.map(({ __outcome, __previous_owner, ...task }) => ({
      task: task as Task,
      outcome: __outcome as "retry" | "failed",
      previous_owner: __previous_owner as string | null,
    }));
  });
}
