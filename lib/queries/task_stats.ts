import type postgres from "postgres";
import { type Db, getTableInfo, guard } from "../db.ts";
import { getIndexSupport, type IndexSupport } from "../table/catalog.ts";
import {
  type ResolvedStatsOptions,
  resolveStatsOptions,
  type StatsOptions,
} from "../input/stats_options.ts";
import { getQueueHealth, nowFragment, type QueueHealth } from "./queue_health.ts";
import type { QueuePause } from "../ops/queue_pauses.ts";
import {
  ESTIMATE_MIN_ROWS,
  ESTIMATE_MIN_STATUS,
  estimatedCounts,
  planOf,
  readTableEstimate,
  type TableEstimate,
} from "./estimate_counts.ts";
import { TASK_STATUSES, type TaskStatus } from "../table/contract.ts";
import { VERSION } from "../version.ts";
import { getThroughput, type Throughput, ThroughputCache } from "./throughput.ts";
import { getLatency, type Latency } from "./latency.ts";

export type { StatsOptions };

/** One day of `recent_activity` (key names kept from the seed's helper). */
export interface DayActivity {
  /** UTC date, YYYY-MM-DD. */
  date: string;
  /** Tasks created that day. */
  created_count: number;
  /** Tasks that completed that day (status completed, updated that day). */
  completed_count: number;
  /** Tasks that failed that day (status failed, updated that day). */
  failed_count: number;
}

/** A running task locked longer than the long-running threshold. */
export interface LongRunningTask {
  /** The task's id. */
  id: string;
  /** The task's type. */
  type: string;
  /** The dispatcher that claimed it. */
  locked_by: string | null;
  /** When it was claimed. */
  locked_at: Date;
  /** Attempts so far, this one included. */
  attempts: number;
  /** Seconds since it was claimed. */
  running_seconds: number;
}

/** A task with many attempts. */
export interface HighAttemptTask {
  /** The task's id. */
  id: string;
  /** The task's type. */
  type: string;
  /** Its status now. */
  status: TaskStatus;
  /** Attempts so far. */
  attempts: number;
  /** The last attempt's error, if any. */
  error: string | null;
  /** When it last changed. */
  updated_at: Date;
}

/**
 * Everything `stats --json` prints. The first six keys are the seed helper's, so cron
 * scripts written against it keep working; the rest is seedtask's health report.
 */
export interface TaskStatistics {
  /** Tasks per status (every status, 0 when none). */
  status_counts: Record<TaskStatus, number>;
  /** Tasks per type, the `top` most common. */
  type_counts: Record<string, number>;
  /** Tasks per domain, the `top` most common. */
  domain_counts: Record<string, number>;
  /** Created, completed and failed per day, for the last `days` days. */
  recent_activity: DayActivity[];
  /** Running tasks locked longer than the long-running threshold, oldest first. */
  long_running: LongRunningTask[];
  /** Tasks with at least `high_attempts` attempts. */
  high_attempts: HighAttemptTask[];
  /** How many tasks run longer than the threshold (`long_running` shows the first `top`). */
  long_running_total: number;
  /**
   * How many tasks have at least `high_attempts` attempts (`high_attempts` shows the first
   * `top`), from the attempts distribution: an estimate when that one is.
   */
  high_attempts_total: number;
  /** All tasks in the table. */
  total: number;
  /** Percentage of the total per status. */
  status_percentages: Record<TaskStatus, number>;
  /** The claimable queue: ready count, lag and overdue tasks (see {@link QueueHealth}). */
  queue: {
    ready: number;
    lag_seconds: number | null;
    oldest_ready_at: Date | null;
    overdue: number;
  };
  /** Running tasks whose lease expired, or locked too long without a lease. */
  stuck_running: number;
  /**
   * Paused types (`seedtask pause`), with the claimable tasks each holds back; that work is not
   * in `queue` (it waits on purpose).
   */
  paused: QueuePause[];
  /** Completions and failures in the last hour and day. */
  throughput: {
    completed_last_hour: number;
    failed_last_hour: number;
    completed_last_day: number;
    failed_last_day: number;
  };
  /** failed / (completed + failed) per window; null when nothing finished. */
  failure_rate: { last_hour: number | null; last_day: number | null };
  /** Run time (updated_at - locked_at) of the most recent completions of the last day. */
  run_duration_seconds: { p50: number | null; p95: number | null; sample: number };
  /** attempts value -> number of tasks. */
  attempts_distribution: Record<string, number>;
  /** Average and largest drift_score. */
  drift_score: { avg: number | null; max: number | null };
  /** True when every number was counted; false when some are planner estimates. */
  exact: boolean;
  /** Which numbers are estimates, from which ANALYZE, for how many rows; null when exact. */
  estimates: { fields: string[]; analyzed_at: Date | null; rows: number } | null;
  /** The options the report was made with, defaults filled in. */
  options: { top: number; days: number; long_running_seconds: number; high_attempts: number };
  /** The seedtask version that made the report. */
  version: string;
  /** When the report was made. */
  generated_at: Date;
  /** Completed and failed per minute (last hour) and per hour (last 48), see getThroughput. */
  throughput_history: Throughput;
  /** Wait and run time percentiles per type over the last hour, see getLatency. */
  latency: Latency;
}

/** Completions sampled for the duration percentiles (the most recent ones). */
const DURATION_SAMPLE = 10_000;

type Fragment = postgres.PendingQuery<postgres.Row[]>;

/**
 * The statements stats runs, by name, built but not executed — so tests can EXPLAIN each.
 * Status counts and drift come from one index-only scan of the narrow `(status) include
 * (drift_score)` index, the attempts distribution and high-attempt list from
 * `(attempts, updated_at)`, recent activity, long-running tasks and duration percentiles from
 * index ranges (created_at, `(status, updated_at)`). Type and domain counts are one pass each
 * over their `(type|domain, updated_at, id)` index or the heap, whichever the planner prices
 * lower. `distributions` is all four of those (status with drift, type, domain, attempts) from
 * one grouped pass over the table, which `--exact` prefers when the combinations are few. No
 * per-status COUNT loop; the statements run concurrently on the pool.
 *
 * Recent activity adapts to `indexes`: with an index led by the day's column each day is an
 * index range count; without one (a table that never ran `migrate`) each such count would
 * walk the whole table or every row of a status, so the days come from one grouped pass.
 */
export function statsQueries(
  db: Db,
  opts: Omit<ResolvedStatsOptions, "exact">,
  indexes: IndexSupport,
): Record<string, Fragment> {
  const sql = db.sql;
  const t = sql(db.table);
  const now = nowFragment(db, opts.now);
  const since = sql`date_trunc('day', ${now} at time zone 'UTC') at time zone 'UTC' - ${
    opts.days - 1
  } * interval '1 day'`;
  const longRunning = sql`status = 'running'
    and locked_at < ${now} - ${opts.longRunningMs} * interval '1 millisecond'`;
  return {
    statusCounts: sql`
      select status::text as key, count(*)::int as count,
             sum(drift_score)::float8 as drift_sum, max(drift_score)::float8 as drift_max
      from ${t} group by status`,
    typeCounts: sql`
      select type as key, count(*)::int as count from ${t}
      group by type order by count(*) desc, type limit ${opts.top}`,
    domainCounts: sql`
      select domain as key, count(*)::int as count from ${t}
      where domain is not null
      group by domain order by count(*) desc, domain limit ${opts.top}`,
    attempts: sql`select attempts::text as key, count(*)::int as count from ${t} group by attempts`,
    // Every distribution above from one pass over the table: the rows grouped by the four
    // columns at once (a parallel hash aggregate of a few hundred groups on a real queue), then
    // folded per column. One read of 10M rows instead of four index scans as large: on the
    // bench table 1.3-1.6 s against 3.0 s for the four passes run side by side.
    distributions: sql`
      with g as (
        select status, type, domain, attempts, count(*) as n,
               sum(drift_score) as drift_sum, max(drift_score) as drift_max
        from ${t} group by status, type, domain, attempts)
      select 'status' as kind, status::text as key, sum(n)::int8 as count,
             sum(drift_sum)::float8 as drift_sum, max(drift_max)::float8 as drift_max
      from g group by status
      union all (select 'type', type, sum(n)::int8, null, null from g
                 group by type order by sum(n) desc, type limit ${opts.top})
      union all (select 'domain', domain, sum(n)::int8, null, null from g
                 where domain is not null
                 group by domain order by sum(n) desc, domain limit ${opts.top})
      union all select 'attempts', attempts::text, sum(n)::int8, null, null from g
      group by attempts`,
    // With the index: one counting subquery per day (and status), each an index-only range
    // count, about three times cheaper per row than grouping by a computed day.
    // generate_series over integers gives the planner the exact number of days (over
    // timestamps it would guess 1000 and price the statement high enough to JIT-compile it).
    created: indexes.leads("created_at")
      ? sql`
      select to_char(d.start at time zone 'UTC', 'YYYY-MM-DD') as date,
             (select count(*)::int from ${t}
              where created_at >= d.start and created_at < d.start + interval '1 day'
                and created_at <= ${now}) as created
      from (select ${since} + i * interval '1 day' as start
            from generate_series(0, ${opts.days - 1}::int) as i) d`
      : sql`
      select to_char(created_at at time zone 'UTC', 'YYYY-MM-DD') as date,
             count(*)::int as created
      from ${t} where created_at >= ${since} and created_at <= ${now}
      group by 1`,
    finished: indexes.leads("status", "updated_at")
      ? sql`
      select to_char(d.start at time zone 'UTC', 'YYYY-MM-DD') as date,
             (select count(*)::int from ${t}
              where status = 'completed' and updated_at >= d.start
                and updated_at < d.start + interval '1 day' and updated_at <= ${now}) as completed,
             (select count(*)::int from ${t}
              where status = 'failed' and updated_at >= d.start
                and updated_at < d.start + interval '1 day' and updated_at <= ${now}) as failed
      from (select ${since} + i * interval '1 day' as start
            from generate_series(0, ${opts.days - 1}::int) as i) d`
      : sql`
      select to_char(updated_at at time zone 'UTC', 'YYYY-MM-DD') as date,
             count(*) filter (where status = 'completed')::int as completed,
             count(*) filter (where status = 'failed')::int as failed
      from ${t}
      where status in ('completed', 'failed') and updated_at >= ${since} and updated_at <= ${now}
      group by 1`,
    // The count is its own subquery and the seconds are computed for the page only: a window
    // count(*) over () sorted every long-running row (200,000 on the 10M bench table: 130 ms,
    // spilling to disk), where a top-N sort and an index-only count take half that.
    longRunning: sql`
      select id, type, locked_by, locked_at, attempts,
             extract(epoch from ${now} - locked_at)::float8 as running_seconds,
             (select count(*)::int from ${t} where ${longRunning}) as total
      from (select id, type, locked_by, locked_at, attempts from ${t}
            where ${longRunning} order by locked_at limit ${opts.top}) as l`,
    highAttempts: sql`
      select id, type, status::text as status, attempts, error, updated_at from ${t}
      where attempts >= ${opts.highAttempts}
      order by attempts desc, updated_at desc limit ${opts.top}`,
    durations: sql`
      select percentile_cont(0.5) within group (order by d)::float8 as p50,
             percentile_cont(0.95) within group (order by d)::float8 as p95,
             count(*)::int as sample
      from (
        select extract(epoch from updated_at - locked_at) as d from ${t}
        where status = 'completed' and updated_at >= ${now} - interval '1 day'
          and updated_at <= ${now} and locked_at is not null
        order by updated_at desc limit ${DURATION_SAMPLE}
      ) s`,
  };
}

function utcDay(date: Date): string {
  return date.toISOString().slice(0, 10);
}

/** The distributions of a stats report, counted or estimated. */
export interface Distributions {
  statusCounts: Record<TaskStatus, number>;
  typeCounts: Record<string, number>;
  domainCounts: Record<string, number>;
  attempts: Record<string, number>;
  drift: { avg: number | null; max: number | null };
  /** Dotted names of the estimated numbers; empty when every row was counted. */
  estimated: string[];
  analyzedAt: Date | null;
}

function zeroStatuses(): Record<TaskStatus, number> {
  return Object.fromEntries(TASK_STATUSES.map((s) => [s, 0])) as Record<TaskStatus, number>;
}

/**
 * The one-pass grouping ({@link statsQueries}' `distributions`) is used when the planner
 * expects at most this many (status, type, domain, attempts) combinations; with more (say, a
 * domain per customer) its hash table would outgrow memory, and each distribution gets a pass
 * over its own index instead.
 */
export const ONE_PASS_MAX_GROUPS = 200_000;

/**
 * Whether the one grouped pass fits: the planner expects at most `maxGroups` combinations of
 * status, type, domain and attempts (one EXPLAIN, no execution).
 */
export async function fitsOnePass(
  db: Db,
  maxGroups: number = ONE_PASS_MAX_GROUPS,
): Promise<boolean> {
  const plan = await planOf(
    db,
    db.sql`select 1 from ${db.sql(db.table)} group by status, type, domain, attempts`,
  );
  return plan["Plan Rows"] <= maxGroups;
}

/**
 * Counts every row: with `onePass` (see {@link fitsOnePass}) one pass over the table groups
 * by status, type, domain and attempts at once; otherwise one pass per distribution, each
 * over the narrowest index that serves it, side by side on the pool.
 */
export async function exactDistributions(
  q: Record<string, Fragment>,
  onePass: boolean,
): Promise<Distributions> {
  // Both ways give rows of (key, count) per distribution; status rows also carry the drift.
  const [status, types, domains, attempts] = onePass
    ? await q.distributions!.then((rows) => {
      const of = (kind: string) => rows.filter((r) => r.kind === kind);
      return [of("status"), of("type"), of("domain"), of("attempts")] as const;
    })
    : await Promise.all([q.statusCounts!, q.typeCounts!, q.domainCounts!, q.attempts!]);
  const statusCounts = zeroStatuses();
  let total = 0;
  let driftSum = 0;
  let driftMax: number | null = null;
  for (const r of status) {
    statusCounts[r.key as TaskStatus] = Number(r.count);
    total += Number(r.count);
    driftSum += r.drift_sum ?? 0;
    if (r.drift_max !== null && (driftMax === null || r.drift_max > driftMax)) {
      driftMax = r.drift_max;
    }
  }
  const attemptsDistribution: Record<string, number> = {};
  for (const r of [...attempts].sort((a, b) => Number(a.key) - Number(b.key))) {
    attemptsDistribution[r.key] = Number(r.count);
  }
  return {
    statusCounts,
    typeCounts: Object.fromEntries(types.map((r) => [r.key, Number(r.count)])),
    domainCounts: Object.fromEntries(domains.map((r) => [r.key, Number(r.count)])),
    attempts: attemptsDistribution,
    drift: { avg: total === 0 ? null : driftSum / total, max: driftMax },
    estimated: [],
    analyzedAt: null,
  };
}

/**
 * On a large table: statuses with few tasks are counted exactly (short index ranges); the
 * large ones — in practice completed, failed, cancelled — are the estimated rows not in the
 * small statuses, split by the planner's frequencies; type, domain and attempts distributions
 * come from pg_stats; drift from a 1% block sample. No statement reads the whole table.
 */
async function estimatedDistributions(
  db: Db,
  est: TableEstimate,
  top: number,
): Promise<Distributions> {
  const sql = db.sql;
  const t = sql(db.table);
  const status = est.columns.get("status")!;
  const freq = new Map(status.values.map((v, i) => [v, status.freqs[i] ?? 0]));
  const big = TASK_STATUSES.filter((s) => (freq.get(s) ?? 0) * est.rows >= ESTIMATE_MIN_STATUS);
  const small = TASK_STATUSES.filter((s) => !big.includes(s));
  const samplePercent = Math.min(100, Math.max(0.01, (30_000 / Math.max(est.rows, 1)) * 100));
  const [counted, [drift]] = await Promise.all([
    small.length === 0 ? [] : sql`
      select status::text as status, count(*)::int as count from ${t}
      where status in ${sql(small as TaskStatus[])} group by status`,
    sql`select avg(drift_score)::float8 as avg, max(drift_score)::float8 as max
      from ${t} tablesample system (${samplePercent})`,
  ]);
  const statusCounts = zeroStatuses();
  let smallTotal = 0;
  for (const r of counted) {
    statusCounts[r.status as TaskStatus] = r.count;
    smallTotal += r.count;
  }
  const rest = Math.max(0, est.rows - smallTotal);
  const bigFreq = big.reduce((n, s) => n + (freq.get(s) ?? 0), 0);
  for (const s of big) statusCounts[s] = Math.round(rest * (freq.get(s) ?? 0) / (bigFreq || 1));
  const attempts = Object.fromEntries(
    estimatedCounts(est.columns.get("attempts"), est.rows).sort((a, b) =>
      Number(a[0]) - Number(b[0])
    ),
  );
  return {
    statusCounts,
    typeCounts: Object.fromEntries(estimatedCounts(est.columns.get("type"), est.rows, top)),
    domainCounts: Object.fromEntries(estimatedCounts(est.columns.get("domain"), est.rows, top)),
    attempts,
    drift: { avg: drift?.avg ?? null, max: drift?.max ?? null },
    estimated: [
      ...big.map((s) => `status_counts.${s}`),
      ...(big.length > 0 ? ["total", "status_percentages"] : []),
      "type_counts",
      "domain_counts",
      "attempts_distribution",
      "drift_score",
    ],
    analyzedAt: est.analyzedAt,
  };
}

/**
 * Computes the statistics report; the statements run concurrently on the pool.
 *
 * On a table of more than {@link ESTIMATE_MIN_ROWS} rows the large counts are planner
 * estimates (listed in `estimates.fields`), so stats costs about as much as counting the small
 * statuses rather than reading every row; `exact: true` counts everything.
 *
 * @example
 * const stats = await getTaskStatistics(db, { days: 3 });
 * console.log(stats.status_counts.failed, stats.queue.lag_seconds);
 */
export async function getTaskStatistics(
  db: Db,
  options: StatsOptions = {},
  throughputCache: ThroughputCache = new ThroughputCache(),
): Promise<TaskStatistics> {
  const opts = resolveStatsOptions(options);
  return await guard(db, async () => {
    // Whether --exact counts in one pass is decided before the statements start, so that the
    // longest one takes the first connection of the pool rather than queueing behind the rest.
    const [, indexes, estimate, fits] = await Promise.all([
      getTableInfo(db),
      getIndexSupport(db),
      opts.exact ? null : readTableEstimate(db),
      opts.exact ? fitsOnePass(db) : null,
    ]);
    const q = statsQueries(db, opts, indexes);
    const useEstimates = estimate !== null && estimate.rows >= ESTIMATE_MIN_ROWS &&
      estimate.columns.has("status");
    // A table of fewer rows than ONE_PASS_MAX_GROUPS has fewer groups; one never analyzed asks.
    const onePass = useEstimates ? false : fits ??
      ((estimate !== null && estimate.rows < ONE_PASS_MAX_GROUPS) || await fitsOnePass(db));
    const [dist, created, finished, long, high, durations, health, history, latency] = await Promise
      .all([
        useEstimates
          ? estimatedDistributions(db, estimate, opts.top)
          : exactDistributions(q, onePass),
        q.created!,
        q.finished!,
        q.longRunning!,
        q.highAttempts!,
        q.durations!,
        getQueueHealth(db, { longRunningMs: opts.longRunningMs, now: opts.now, withQueued: false }),
        getThroughput(db, { now: opts.now }, throughputCache),
        getLatency(db, { now: opts.now }),
      ]) as [
        Distributions,
        postgres.Row[],
        postgres.Row[],
        postgres.Row[],
        postgres.Row[],
        postgres.Row[],
        QueueHealth,
        Throughput,
        Latency,
      ];
    const generatedAt = opts.now ?? new Date();
    const statusCounts = dist.statusCounts;
    const total = TASK_STATUSES.reduce((n, s) => n + statusCounts[s], 0);
    const statusPercentages = Object.fromEntries(
      TASK_STATUSES.map((
        s,
      ) => [s, total === 0 ? 0 : Math.round(statusCounts[s] / total * 1000) / 10]),
    ) as Record<TaskStatus, number>;

    const days: DayActivity[] = [];
    const today = new Date(Date.UTC(
      generatedAt.getUTCFullYear(),
      generatedAt.getUTCMonth(),
      generatedAt.getUTCDate(),
    ));
    for (let i = 0; i < opts.days; i++) {
      const d = utcDay(new Date(today.getTime() - i * 86_400_000));
      days.push({ date: d, created_count: 0, completed_count: 0, failed_count: 0 });
    }
    const byDate = new Map(days.map((d) => [d.date, d]));
    for (const r of created) {
      const d = byDate.get(r.date);
      if (d) d.created_count = r.created;
    }
    for (const r of finished) {
      const d = byDate.get(r.date);
      if (!d) continue;
      d.completed_count = r.completed;
      d.failed_count = r.failed;
    }
    const d = durations[0]!;

    return {
      status_counts: statusCounts,
      type_counts: dist.typeCounts,
      domain_counts: dist.domainCounts,
      recent_activity: days,
      long_running: long.map((r) => ({
        id: r.id,
        type: r.type,
        locked_by: r.locked_by,
        locked_at: r.locked_at,
        attempts: r.attempts,
        running_seconds: Math.round(r.running_seconds),
      })),
      high_attempts: high.map((r) => ({
        id: r.id,
        type: r.type,
        status: r.status,
        attempts: r.attempts,
        error: r.error,
        updated_at: r.updated_at,
      })),
      long_running_total: long[0]?.total ?? 0,
      high_attempts_total: Object.entries(dist.attempts)
        .filter(([k]) => Number(k) >= opts.highAttempts)
        .reduce((n, [, v]) => n + v, 0),
      total,
      status_percentages: statusPercentages,
      queue: {
        ready: health.ready,
        lag_seconds: health.lag_seconds === null ? null : Math.round(health.lag_seconds),
        oldest_ready_at: health.oldest_ready_at,
        overdue: health.overdue,
      },
      stuck_running: health.stuck,
      paused: health.paused,
      throughput: {
        completed_last_hour: health.completed_last_hour,
        failed_last_hour: health.failed_last_hour,
        completed_last_day: health.completed_last_day,
        failed_last_day: health.failed_last_day,
      },
      failure_rate: {
        last_hour: health.failure_rate_last_hour,
        last_day: health.failure_rate_last_day,
      },
      run_duration_seconds: { p50: d.p50, p95: d.p95, sample: d.sample },
      attempts_distribution: dist.attempts,
      drift_score: dist.drift,
      exact: dist.estimated.length === 0,
      estimates: dist.estimated.length === 0
        ? null
        : { fields: dist.estimated, analyzed_at: dist.analyzedAt, rows: estimate!.rows },
      options: {
        top: opts.top,
        days: opts.days,
        long_running_seconds: Math.round(opts.longRunningMs / 1000),
        high_attempts: opts.highAttempts,
      },
      version: VERSION,
      generated_at: generatedAt,
      throughput_history: history,
      latency,
    };
  });
}
