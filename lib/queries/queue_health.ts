import type postgres from "postgres";
import { type Db, getTableInfo, guard } from "../db.ts";
import { getIndexSupport, type IndexSupport } from "../table/catalog.ts";
import { claimablePredicate, READY_AT, STUCK_ORDER } from "../table/contract.ts";
import { DEFAULT_LONG_RUNNING_MS } from "../input/stats_options.ts";
import { listPauses, notPausedByList, type QueuePause } from "../ops/queue_pauses.ts";

/** Options shared by stats and check. */
export interface HealthOptions {
  /** A running task without a lease counts as stuck once locked longer than this. Default 10m. */
  longRunningMs?: number;
  /** Evaluate as of this instant instead of the server's now() (tests). */
  now?: Date;
  /** Count status queued (check needs it; stats has its own status counts). Default true. */
  withQueued?: boolean;
}

/**
 * The live health of the queue: what `check` alerts on and `stats` reports. Work held back by
 * a pause (`seedtask pause`) is left out of `ready`, `lag_seconds`, `overdue` and `queued` — it
 * waits on purpose, and counting it would turn a deliberate pause into an alert — and shown
 * in `paused` instead, with how much each pause holds back.
 */
export interface QueueHealth {
  /** Tasks a dispatcher could claim right now (queued or retry, run_after passed or unset). */
  ready: number;
  /** Age of the oldest claimable task, measured from when it became claimable. */
  lag_seconds: number | null;
  /** When the oldest claimable task became claimable; null when none is. */
  oldest_ready_at: Date | null;
  /** Claimable tasks whose run_after has passed: scheduled or backed-off work now due. */
  overdue: number;
  /** Tasks in status queued (including ones scheduled for later); null when not asked for. */
  queued: number | null;
  /** Running tasks whose lease expired, or — without a lease — locked longer than the threshold. */
  stuck: number;
  /** Tasks that completed in the last hour. */
  completed_last_hour: number;
  /** Tasks that failed in the last hour. */
  failed_last_hour: number;
  /** Tasks that completed in the last 24 hours. */
  completed_last_day: number;
  /** Tasks that failed in the last 24 hours. */
  failed_last_day: number;
  /** failed / (completed + failed) over the window; null when nothing finished. */
  failure_rate_last_hour: number | null;
  /** failed / (completed + failed) over the last 24 hours; null when nothing finished. */
  failure_rate_last_day: number | null;
  /** The paused types (and domains), with the claimable tasks each holds back. */
  paused: QueuePause[];
}

/** `now()` or a fixed instant, as an SQL fragment. */
export function nowFragment(db: Db, now?: Date): postgres.PendingQuery<postgres.Row[]> {
  return now ? db.sql`${now.toISOString()}::timestamptz` : db.sql`now()`;
}

/** When a claimable task became (or becomes) ready, as an SQL expression: the claim index's key. */
export function readyAt(db: Db): postgres.PendingQuery<postgres.Row[]> {
  return db.sql.unsafe(READY_AT);
}

/** {@link claimablePredicate} as a query fragment. */
export function claimableStatus(db: Db, column = "status"): postgres.PendingQuery<postgres.Row[]> {
  return db.sql.unsafe(claimablePredicate(column));
}

/**
 * The tasks a dispatcher may claim at `now`: a claimable status, ready time passed. The claim
 * query and the queue health both use this one condition, which the claim index serves.
 */
export function claimableCondition(
  db: Db,
  now: postgres.PendingQuery<postgres.Row[]>,
): postgres.PendingQuery<postgres.Row[]> {
  return db.sql`${claimableStatus(db)} and ${readyAt(db)} <= ${now}`;
}

/** The condition that makes a running task stuck (used by stats, check and requeue). */
export function stuckCondition(
  db: Db,
  hasLease: boolean,
  longRunningMs: number,
  now: postgres.PendingQuery<postgres.Row[]>,
): postgres.PendingQuery<postgres.Row[]> {
  const sql = db.sql;
  const locked = sql`locked_at < ${now} - ${longRunningMs} * interval '1 millisecond'`;
  // The first term follows from the others; it lets the running index (keyed on the stuck
  // order) read only the tasks whose lease or claim lies in the past.
  return hasLease
    ? sql`status = 'running' and ${stuckOrder(db, true)} < ${now}
        and (lease_expires_at < ${now} or (lease_expires_at is null and ${locked}))`
    : sql`status = 'running' and ${locked}`;
}

/** Stuck tasks' order, longest stuck first, as an SQL expression (see {@link STUCK_ORDER}). */
export function stuckOrder(db: Db, hasLease: boolean): postgres.PendingQuery<postgres.Row[]> {
  return hasLease ? db.sql.unsafe(STUCK_ORDER) : db.sql`locked_at`;
}

function rate(failed: number, completed: number): number | null {
  return failed + completed === 0 ? null : failed / (failed + completed);
}

/**
 * The health statement, built but not run (tests EXPLAIN it). One statement of scalar
 * subqueries, each an index range scan: claimable work from the partial claim index (its key
 * is the ready time, so the oldest is its first entry), everything else from
 * `(status, updated_at)` ranges.
 *
 * On a table without those indexes (one that never ran `migrate`) each range would be a walk
 * over every row of its status, so the statement takes the shape with the fewest passes
 * instead: the ready count and the oldest ready time come from one pass over the claimable
 * tasks, completions and failures from one pass over the last day.
 */
export function queueHealthQuery(
  db: Db,
  hasLease: boolean,
  indexes: IndexSupport,
  options: HealthOptions = {},
  pauses: readonly QueuePause[] = [],
): postgres.PendingQuery<postgres.Row[]> {
  const sql = db.sql;
  const t = sql(db.table);
  const now = nowFragment(db, options.now);
  const longRunningMs = options.longRunningMs ?? DEFAULT_LONG_RUNNING_MS;
  // Only with pauses: the condition reads type and domain, which the counts' indexes lack.
  const notPaused = pauses.length === 0 ? sql`` : sql` and ${notPausedByList(db, pauses)}`;
  const ready = sql`${claimableCondition(db, now)}${notPaused}`;
  const claimIndex = indexes.recommended("claim_idx");
  const readyPass = sql`(select count(*)::int as ready,
           count(*) filter (where run_after is not null)::int as overdue${
    claimIndex ? sql`` : sql`, min(${readyAt(db)}) as oldest`
  }
         from ${t} where ${ready}) r`;
  // One range scan per status covers both windows: the last hour is inside the last day.
  const finished = (status: string) =>
    sql`(select count(*) filter (where updated_at >= ${now} - interval '1 hour')::int as hour,
           count(*)::int as day
         from ${t} where status = ${status}
           and updated_at >= ${now} - interval '1 day' and updated_at <= ${now})`;
  const hour = (status: string) =>
    sql`count(*) filter (where status = ${status} and updated_at >= ${now} - interval '1 hour')::int`;
  const finishedPass = indexes.leads("status", "updated_at")
    ? sql`${finished("completed")} c, ${finished("failed")} f`
    : sql`(select ${hour("completed")} as completed_hour, ${hour("failed")} as failed_hour,
             count(*) filter (where status = 'completed')::int as completed_day,
             count(*) filter (where status = 'failed')::int as failed_day
           from ${t} where status in ('completed', 'failed')
             and updated_at >= ${now} - interval '1 day' and updated_at <= ${now}) cf`;
  const finishedColumns = indexes.leads("status", "updated_at")
    ? sql`c.hour as completed_last_hour, c.day as completed_last_day,
      f.hour as failed_last_hour, f.day as failed_last_day`
    : sql`cf.completed_hour as completed_last_hour, cf.completed_day as completed_last_day,
      cf.failed_hour as failed_last_hour, cf.failed_day as failed_last_day`;
  return sql`
    select r.ready, r.overdue, ${finishedColumns},
      ${
    claimIndex ? sql`(select min(${readyAt(db)}) from ${t} where ${ready})` : sql`r.oldest`
  } as oldest_ready_at,
      ${
    options.withQueued === false
      ? sql`null::int`
      : sql`(select count(*)::int from ${t} where status = 'queued'${notPaused})`
  } as queued,
      (select count(*)::int from ${t} where ${
    stuckCondition(db, hasLease, longRunningMs, now)
  }) as stuck,
      ${now} as now
    from ${readyPass}, ${finishedPass}`;
}

/** Reads the queue's live health (see {@link queueHealthQuery} for how it uses indexes). */
export function getQueueHealth(db: Db, options: HealthOptions = {}): Promise<QueueHealth> {
  return guard(db, async () => {
    const [{ hasLease }, indexes, paused] = await Promise.all([
      getTableInfo(db),
      getIndexSupport(db),
      listPauses(db, { waiting: true }),
    ]);
    const [row] = await queueHealthQuery(db, hasLease, indexes, options, paused);
    const r = row!;
    const oldest = r.oldest_ready_at as Date | null;
    const nowDate = r.now as Date;
    return {
      ready: r.ready,
      lag_seconds: oldest ? Math.max(0, (nowDate.getTime() - oldest.getTime()) / 1000) : null,
      oldest_ready_at: oldest,
      overdue: r.overdue,
      queued: r.queued,
      stuck: r.stuck,
      completed_last_hour: r.completed_last_hour,
      failed_last_hour: r.failed_last_hour,
      completed_last_day: r.completed_last_day,
      failed_last_day: r.failed_last_day,
      failure_rate_last_hour: rate(r.failed_last_hour, r.completed_last_hour),
      failure_rate_last_day: rate(r.failed_last_day, r.completed_last_day),
      paused,
    };
  });
}
