/**
 * The overview: everything `seedtask top` shows in one frame, in one document — counts by
 * status, the queue and its lag per type, stuck tasks and the throughput of the last hour.
 * `GET /overview` answers it, so `top --url` draws the same frame from a running `serve`.
 *
 * Bounded cost on a large table: the statuses a queue moves through (created, queued,
 * running, retry) are counted, the finished ones are planner estimates once the table holds
 * more than {@link ESTIMATE_MIN_ROWS} rows; the throughput counts only its open minute when
 * given a warm {@link ThroughputCache}. One statement per overview (the throughput's count runs
 * inside it), once the catalog and the planner's figures are read.
 */
import type postgres from "postgres";
import { z } from "zod";
import { type Db, getTableInfo, guard } from "../db.ts";
import { parseInput, text, type Transformed } from "../input/fields.ts";
import { DEFAULT_LONG_RUNNING_MS, longRunning } from "../input/stats_options.ts";
import { MAX_NAME_LENGTH } from "../input/new_task.ts";
import { TASK_STATUSES, type TaskStatus } from "../table/contract.ts";
import {
  ESTIMATE_MIN_ROWS,
  ESTIMATE_MIN_STATUS,
  readTableEstimate,
  type TableEstimate,
} from "./estimate_counts.ts";
import {
  claimableStatus,
  nowFragment,
  readyAt,
  stuckCondition,
  stuckOrder,
} from "./queue_health.ts";
import { planThroughput, type Throughput, ThroughputCache } from "./throughput.ts";

/** Options of `getOverview()`, `GET /overview` and `seedtask top` by their query names. */
export const OverviewOptionsObject = z.strictObject({
  type: text("type", MAX_NAME_LENGTH).optional().meta({ description: "Only this task type" }),
  long_running: longRunning(),
});

/** Options of `getOverview()`. */
export interface OverviewOptions {
  /** Only tasks of this type. */
  type?: string;
  /** A running task without a lease is stuck once locked longer than this. Default 10m. */
  longRunningMs?: number;
  /** Evaluate as of this instant instead of the database's now() (tests). */
  now?: Date;
}

/**
 * The type of {@link OverviewOptionsObject}.
 *
 * @internal A zod type, another package's (denoland/deno#27364).
 */
export type OverviewOptionsObjectType = typeof OverviewOptionsObject;

/** {@link OverviewOptionsObject} as the library's options. */
export const OverviewOptionsSchema: Transformed<OverviewOptionsObjectType, OverviewOptions> =
  OverviewOptionsObject.transform((o): OverviewOptions => ({
    type: o.type,
    longRunningMs: o.long_running,
  }));

/** The queue of one type. */
export interface TypeQueue {
  /** The task type. */
  type: string;
  /** Claimable now (queued or retry, ready time passed). */
  ready: number;
  /** In status queued, ready or scheduled. */
  queued: number;
  /** In status retry (backing off, or due). */
  retry: number;
  /** Running now. */
  running: number;
  /** When the oldest claimable task became ready; null when none is. */
  oldest_ready_at: Date | null;
  /** Its age: how far behind the dispatchers are on this type. */
  lag_seconds: number | null;
}

/** A running task whose lease expired (or, without a lease, locked too long). */
export interface OverviewStuckTask {
  /** Task id. */
  id: string;
  /** Task type. */
  type: string;
  /** The dispatcher that claimed it. */
  locked_by: string | null;
  /** When it was claimed. */
  locked_at: Date | null;
  /** When its lease ran out (null without lease columns). */
  lease_expires_at: Date | null;
  /** Executions started. */
  attempts: number;
}

/** What `getOverview()` returns and `GET /overview` answers. */
export interface Overview {
  /** The type asked for; null for all. */
  type: string | null;
  /** Tasks per status. */
  status_counts: Record<TaskStatus, number>;
  /** Statuses whose count is a planner estimate (a large table); the others are counted. */
  estimated: TaskStatus[];
  /** The queue per type, the worst lag first (types with queued, retry or running tasks). */
  queue: TypeQueue[];
  /**
   * Null when the queue per type counts every queued, retry and running task. On a large table
   * with a large backlog it reads only the oldest this many claimable tasks (by ready time) and
   * this many running ones: each type's lag is then exact for the types among them, and its
   * counts are counts within the sample.
   */
  queue_sample: number | null;
  /**
   * Stuck running tasks (see {@link OverviewStuckTask}): counted up to {@link STUCK_COUNTED};
   * with more, this is that cap and {@link Overview.stuck_exact} is false.
   */
  stuck: number;
  /** False when more than {@link STUCK_COUNTED} tasks are stuck: `stuck` is then a floor. */
  stuck_exact: boolean;
  /** The longest-stuck of them, at most {@link STUCK_LISTED}. */
  stuck_tasks: OverviewStuckTask[];
  /** Completed and failed per minute over the last hour (no hourly buckets). */
  throughput: Throughput;
  /** The database's clock. */
  generated_at: Date;
}

/** Stuck tasks listed at most. */
export const STUCK_LISTED = 10;

/**
 * Stuck tasks counted at most by an overview: a refresh reads at most this many entries of the
 * running index, however many tasks an outage left behind (`seedtask leases` counts them all).
 */
export const STUCK_COUNTED = 10_000;

/**
 * Reads the overview: one statement once warm (the snapshot, with the throughput's count in
 * it); the table's catalog and the planner's figures are read first when not cached. Pass the same
 * `throughputCache` on every refresh so closed minutes are counted once.
 *
 * @example
 * const cache = new ThroughputCache();
 * const o = await getOverview(db, {}, cache);
 * console.log(o.status_counts.queued, o.queue[0]?.lag_seconds, o.stuck);
 */
export async function getOverview(
  db: Db,
  options: OverviewOptions = {},
  throughputCache: ThroughputCache = new ThroughputCache(),
): Promise<Overview> {
  const o = {
    ...parseInput(OverviewOptionsSchema, {
      type: options.type,
      long_running: options.longRunningMs === undefined ? undefined : `${options.longRunningMs}ms`,
    }),
    now: options.now,
  };
  return await guard(db, async () => {
    const [{ hasLease }, estimate] = await Promise.all([getTableInfo(db), cachedEstimate(db)]);
    const plan = planCounts(estimate, o.type);
    const history = planThroughput(
      db,
      { type: o.type, minutes: 60, hours: 0, now: o.now },
      throughputCache,
    );
    const [r] = await snapshotQuery(db, hasLease, o, plan, history.query);
    if (!r) throw new TypeError("The overview statement returned no row");
    const throughput = history.finish(r.throughput as Record<string, unknown>[]);
    const status = Object.fromEntries(TASK_STATUSES.map((s) => [s, 0])) as Record<
      TaskStatus,
      number
    >;
    for (const [s, n] of Object.entries(r.counted ?? {})) status[s as TaskStatus] = n as number;
    for (const [s, n] of plan.estimated) status[s] = n;
    const now = r.now as Date;
    const date = (v: string | null) => (v === null ? null : new Date(v));
    return {
      type: o.type ?? null,
      status_counts: status,
      estimated: TASK_STATUSES.filter((s) => plan.estimated.has(s)),
      queue: (r.queue as Array<Record<string, unknown>>).map((q) => {
        const oldest = date(q.oldest_ready_at as string | null);
        return {
          type: q.type as string,
          ready: q.ready as number,
          queued: q.queued as number,
          retry: q.retry as number,
          running: q.running as number,
          oldest_ready_at: oldest,
          lag_seconds: oldest ? Math.max(0, (now.getTime() - oldest.getTime()) / 1000) : null,
        };
      }),
      queue_sample: plan.queueSample,
      stuck: Math.min(r.stuck, STUCK_COUNTED),
      stuck_exact: r.stuck <= STUCK_COUNTED,
      stuck_tasks: (r.stuck_tasks as Array<Record<string, unknown>>).map((s) => ({
        id: s.id as string,
        type: s.type as string,
        locked_by: s.locked_by as string | null,
        locked_at: date(s.locked_at as string | null),
        lease_expires_at: date(s.lease_expires_at as string | null),
        attempts: s.attempts as number,
      })),
      throughput,
      generated_at: now,
    };
  });
}

/** The planner's figures are re-read at most this often by a refreshing overview. */
const ESTIMATE_TTL_MS = 60_000;

/** Queued/retry and running tasks read at most by the queue per type on a large backlog. */
export const QUEUE_SAMPLE = 20_000;

/** {@link readTableEstimate}, kept for a minute per Db (two catalog reads, not every frame). */
async function cachedEstimate(db: Db): Promise<TableEstimate | null> {
  const key = "overview:estimate";
  const hit = db.cache.get(key) as { at: number; value: TableEstimate | null } | undefined;
  if (hit && Date.now() - hit.at < ESTIMATE_TTL_MS) return hit.value;
  const value = await readTableEstimate(db);
  db.cache.set(key, { at: Date.now(), value });
  return value;
}

/** What {@link planCounts} decides. */
export interface CountPlan {
  /** Statuses counted row by row. */
  counted: TaskStatus[];
  /** Statuses taken from the planner's figures, with their estimate. */
  estimated: Map<TaskStatus, number>;
  /** See {@link Overview.queue_sample}. */
  queueSample: number | null;
}

/**
 * Which statuses to count: on a table of at least {@link ESTIMATE_MIN_ROWS} rows a status the
 * planner puts at {@link ESTIMATE_MIN_STATUS} tasks or more (for `type`: scaled by the type's
 * frequency) is estimated, like `stats` does; the rest are counted. A large queued, retry or
 * running status also bounds the queue per type to a sample.
 */
export function planCounts(est: TableEstimate | null, type: string | undefined): CountPlan {
  const estimated = new Map<TaskStatus, number>();
  const status = est?.columns.get("status");
  if (est && status && est.rows >= ESTIMATE_MIN_ROWS) {
    let share = 1;
    if (type !== undefined) {
      const types = est.columns.get("type");
      const i = types?.values.indexOf(type) ?? -1;
      share = i < 0 ? 0 : types!.freqs[i] ?? 0;
    }
    status.values.forEach((v, i) => {
      const n = Math.round((status.freqs[i] ?? 0) * share * est.rows);
      if (n >= ESTIMATE_MIN_STATUS && (TASK_STATUSES as readonly string[]).includes(v)) {
        estimated.set(v as TaskStatus, n);
      }
    });
  }
  const big = (s: TaskStatus) => (estimated.get(s) ?? 0) >= QUEUE_SAMPLE;
  return {
    counted: TASK_STATUSES.filter((s) => !estimated.has(s)),
    estimated,
    queueSample: big("queued") || big("retry") || big("running") ? QUEUE_SAMPLE : null,
  };
}

/**
 * The snapshot statement: the counted statuses (ranges of the status index), the queue per
 * type — one pass over the queued, retry and running tasks, or over the oldest
 * {@link QUEUE_SAMPLE} claimable ones (the claim index, in ready order) and as many running
 * ones on a large backlog — the stuck tasks and the clock.
 */
export function snapshotQuery(
  db: Db,
  hasLease: boolean,
  o: { type?: string; longRunningMs?: number; now?: Date },
  plan: CountPlan,
  throughput: postgres.PendingQuery<postgres.Row[]> = db.sql`select 1 where false`,
): postgres.PendingQuery<postgres.Row[]> {
  const sql = db.sql;
  const t = sql(db.table);
  const now = nowFragment(db, o.now);
  const type = o.type === undefined ? sql`` : sql`and type = ${o.type}`;
  const stuck = stuckCondition(db, hasLease, o.longRunningMs ?? DEFAULT_LONG_RUNNING_MS, now);
  const ready = sql`${claimableStatus(db)} and ${readyAt(db)} <= ${now}`;
  const counted = plan.counted.length === 0 ? sql`'{}'::json` : sql`(
      select coalesce(json_object_agg(status, n), '{}'::json) from (
        select status::text as status, count(*)::int as n from ${t}
        where status in ${sql(plan.counted)} ${type} group by status) c)`;
  const rows = plan.queueSample === null
    ? sql`select type, status, run_after, created_at from ${t}
        where status in ('queued', 'retry', 'running') ${type}`
    : sql`(select type, status::text, run_after, created_at from ${t}
          where ${claimableStatus(db)} ${type}
          order by ${readyAt(db)}, id limit ${plan.queueSample})
        union all
        (select type, 'running'::text, null::timestamptz, null::timestamptz from ${t}
          where status = 'running' ${type} limit ${plan.queueSample})`;
  return sql`
    select ${counted} as counted,
      (select coalesce(json_agg(q order by q.oldest_ready_at nulls last, q.type), '[]'::json) from (
        select type,
          count(*) filter (where ${ready})::int as ready,
          count(*) filter (where status = 'queued')::int as queued,
          count(*) filter (where status = 'retry')::int as retry,
          count(*) filter (where status = 'running')::int as running,
          min(${readyAt(db)}) filter (where ${ready}) as oldest_ready_at
        from (${rows}) r
        group by type) q) as queue,
      (select count(*)::int from (select from ${t} where ${stuck} ${type}
        limit ${STUCK_COUNTED + 1}) s) as stuck,
      (select coalesce(json_agg(s), '[]'::json) from (
        select id, type, locked_by, locked_at,
          ${hasLease ? sql`lease_expires_at` : sql`null::timestamptz as lease_expires_at`},
          attempts
        from ${t} where ${stuck} ${type}
        order by ${stuckOrder(db, hasLease)}
        limit ${STUCK_LISTED}) s) as stuck_tasks,
      (select coalesce(json_agg(h), '[]'::json) from (${throughput}) h) as throughput,
      ${now} as now`;
}

/**
 * An {@link Overview} from its JSON (a `GET /overview` answer): the instants become Dates
 * again. Throws a TypeError when `json` does not have the overview's shape.
 */
export function overviewFromJson(json: unknown): Overview {
  const o = json as Record<string, unknown> | null;
  if (
    !o || typeof o !== "object" || typeof o.status_counts !== "object" ||
    !Array.isArray(o.queue) || !Array.isArray(o.stuck_tasks) || typeof o.throughput !== "object"
  ) {
    throw new TypeError("Not an overview: expected the JSON of GET /overview");
  }
  const date = (v: unknown) => (typeof v === "string" ? new Date(v) : null);
  const t = o.throughput as Record<string, unknown>;
  const buckets = (v: unknown) =>
    (Array.isArray(v) ? v : []).map((b: Record<string, unknown>) => ({
      start: new Date(b.start as string),
      completed: b.completed as number,
      failed: b.failed as number,
      open: b.open as boolean,
    }));
  return {
    ...(o as unknown as Overview),
    queue: (o.queue as Array<Record<string, unknown>>).map((q) => ({
      ...(q as unknown as TypeQueue),
      oldest_ready_at: date(q.oldest_ready_at),
    })),
    stuck_tasks: (o.stuck_tasks as Array<Record<string, unknown>>).map((s) => ({
      ...(s as unknown as OverviewStuckTask),
      locked_at: date(s.locked_at),
      lease_expires_at: date(s.lease_expires_at),
    })),
    throughput: {
      type: (t.type as string | null) ?? null,
      minutes: buckets(t.minutes),
      hours: buckets(t.hours),
      generated_at: new Date(t.generated_at as string),
    },
    generated_at: new Date(o.generated_at as string),
  };
}
