import type postgres from "postgres";
import { type Db, guard } from "../db.ts";
import {
  claimableCondition,
  claimableStatus,
  nowFragment,
  readyAt,
} from "../queries/queue_health.ts";
import type { Task } from "../table/contract.ts";
import { notPausedCondition, pausesTable } from "../ops/queue_pauses.ts";

/** Options of {@link claimTasks}. */
export interface ClaimOptions {
  /** The dispatcher's name, written to locked_by and owner_id. */
  owner: string;
  /** Maximum tasks to claim. */
  limit: number;
  /** Lease length: the task is reclaimable this long after the last heartbeat. */
  leaseMs: number;
  /** Only these task types. */
  types?: readonly string[];
  /** Claim as of this instant instead of now() (tests). */
  now?: Date;
}

/**
 * Claims up to `limit` claimable tasks for `owner` in one statement and returns them, oldest
 * ready first.
 *
 * Why it locks this way: the CTE picks claimable ids ({@link claimableCondition}: `queued` or
 * `retry`, ready time passed) in ready order with `FOR UPDATE SKIP LOCKED`, so concurrent
 * dispatchers each lock different rows and never wait on each other; the UPDATE then marks
 * exactly those rows running, increments `attempts` — the only place it is incremented, once
 * per execution — and sets the lease. The ready time `coalesce(run_after, created_at)` is the
 * key of the partial index `<table>_claim_idx` (`WHERE status IN ('queued','retry')`), which
 * serves both the filter and the order, so a claim reads only the first entries of a small
 * index whatever the table size.
 * The UPDATE re-checks the status, so a row changed by someone else between the two steps is
 * skipped rather than overwritten.
 *
 * Paused types (`seedtask pause`, the rows of seedtask_pauses) are skipped by an anti-join
 * on that table of a few rows, checked for each candidate the claim index hands out, so the
 * claim still walks that index in ready order (tests/pause_test.ts shows the plan). Read at
 * every claim, a pause takes effect at a dispatcher's next claim: within one poll interval.
 */
export async function claimTasks(db: Db, options: ClaimOptions): Promise<Task[]> {
  if (options.limit < 1) return [];
  return await guard(db, async () => {
    const rows = await claimTasksQuery(db, options, await pausesTable(db));
    return [...rows].sort((a, b) =>
      (a.run_after ?? a.created_at).getTime() - (b.run_after ?? b.created_at).getTime()
    );
  });
}

/**
 * The claim statement of {@link claimTasks}, built but not run (tests EXPLAIN it). `pauses`
 * is the pause table (regclass text), or null when the table has none yet.
 */
export function claimTasksQuery(
  db: Db,
  options: ClaimOptions,
  pauses: string | null,
): postgres.PendingQuery<Task[]> {
  const sql = db.sql;
  const t = sql(db.table);
  const now = nowFragment(db, options.now);
  const types = options.types && options.types.length > 0
    ? sql`and type in ${sql(options.types as string[])}`
    : sql``;
  const notPaused = pauses === null ? sql`` : sql`and ${notPausedCondition(db, pauses, "c")}`;
  return sql<Task[]>`
    with claimable as (
      select id from ${t} as c
      where ${claimableCondition(db, now)} ${types} ${notPaused}
      order by ${readyAt(db)}, id
      limit ${options.limit}
      for update skip locked
    )
    update ${t} as x
    set status = 'running', locked_by = ${options.owner}, locked_at = ${now},
      attempts = x.attempts + 1, owner_id = ${options.owner},
      lease_expires_at = ${now} + ${options.leaseMs} * interval '1 millisecond',
      last_heartbeat = ${now}
    from claimable
    where x.id = claimable.id and ${claimableStatus(db, "x.status")}
    returning x.*`;
}
