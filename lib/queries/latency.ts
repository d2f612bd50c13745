/**
 * Latency of finished tasks: how long they waited to be claimed and how long they ran, as
 * percentiles per type over a window.
 *
 * The contract's timestamps: `locked_at` is when the task was claimed (its last execution's
 * claim: a retry claims it again), `updated_at` is when it finished (while completed or
 * failed), `run_after` when it became claimable if it was scheduled or backed off, else
 * `created_at`. So wait = `locked_at - coalesce(run_after, created_at)` — created → claimed
 * for a task enqueued to run now; for a scheduled or retried task the time it sat in the queue
 * once due, not the schedule or the backoff — and run = `updated_at - locked_at`.
 */
import { type Db, guard } from "../db.ts";
import { type LatencyOptions, resolveLatencyOptions } from "../input/history_options.ts";
import { nowFragment, readyAt } from "./queue_health.ts";

export type { LatencyOptions };

/** Percentiles of one duration, in seconds; null when nothing finished. */
export interface Percentiles {
  /** Median. */
  p50: number | null;
  /** 95th percentile. */
  p95: number | null;
  /** 99th percentile. */
  p99: number | null;
  /** Longest. */
  max: number | null;
}

/** The latency of one type's finished tasks (or of all, with `type` null). */
export interface TypeLatency {
  /** The type; null for every type together. */
  type: string | null;
  /** Finished tasks measured (completed + failed). */
  finished: number;
  /** Of them, completed. */
  completed: number;
  /** Of them, failed for good. */
  failed: number;
  /** Ready (created, or run_after) → claimed. */
  wait_seconds: Percentiles;
  /** Claimed → finished. */
  run_seconds: Percentiles;
}

/** What `getLatency()` returns and `GET /latency` answers. */
export interface Latency {
  /** The window: tasks that finished within this many seconds. */
  window_seconds: number;
  /** The type asked for; null for all types. */
  type: string | null;
  /** Most recent finishes measured at most. */
  sample_limit: number;
  /** True when the window held more finishes than the limit: the newest ones were measured. */
  sampled: boolean;
  /** Every type together. */
  all: TypeLatency;
  /** Per type, most finishes first. */
  types: TypeLatency[];
  /** The database's clock when measured. */
  generated_at: Date;
}

/**
 * Wait and run time percentiles of the tasks that finished (completed or failed) in the last
 * `windowMs`, per type and overall. One statement: the newest `sample` finishes of each status
 * read backwards along the `(status, updated_at)` index, the newest `sample` of those measured.
 *
 * @example
 * const l = await getLatency(db, { windowMs: 3_600_000 });
 * console.log(l.all.wait_seconds.p95, l.types[0]?.run_seconds.p50);
 */
export async function getLatency(db: Db, options: LatencyOptions = {}): Promise<Latency> {
  const o = resolveLatencyOptions(options);
  return await guard(db, async () => {
    const sql = db.sql;
    const t = sql(db.table);
    const now = nowFragment(db, o.now);
    const type = o.type === undefined ? sql`` : sql`and type = ${o.type}`;
    const finished = (status: string) =>
      sql`(select type, status::text as status, updated_at,
          greatest(0, extract(epoch from locked_at - ${readyAt(db)}))::float8 as wait,
          greatest(0, extract(epoch from updated_at - locked_at))::float8 as run
        from ${t}
        where status = ${status} ${type} and locked_at is not null
          and updated_at > ${now} - ${o.windowMs} * interval '1 millisecond'
          and updated_at <= ${now}
        order by updated_at desc limit ${o.sample})`;
    const rows = await sql`
      select type, grouping(type) = 1 as everything,
        count(*)::int as finished,
        count(*) filter (where status = 'completed')::int as completed,
        count(*) filter (where status = 'failed')::int as failed,
        percentile_cont(array[0.5, 0.95, 0.99]) within group (order by wait)::float8[] as wait_p,
        max(wait) as wait_max,
        percentile_cont(array[0.5, 0.95, 0.99]) within group (order by run)::float8[] as run_p,
        max(run) as run_max,
        ${now} as now
      from (
        select * from (${finished("completed")} union all ${finished("failed")}) f
        order by updated_at desc limit ${o.sample}
      ) s
      group by grouping sets ((type), ())
      order by everything desc, finished desc, type`;
    const pct = (p: number[] | null, max: number | null): Percentiles => ({
      p50: p?.[0] ?? null,
      p95: p?.[1] ?? null,
      p99: p?.[2] ?? null,
      max: max ?? null,
    });
    const toLatency = (r: Record<string, unknown>): TypeLatency => ({
      type: r.everything ? null : r.type as string,
      finished: r.finished as number,
      completed: r.completed as number,
      failed: r.failed as number,
      wait_seconds: pct(r.wait_p as number[] | null, r.wait_max as number | null),
      run_seconds: pct(r.run_p as number[] | null, r.run_max as number | null),
    });
    const allRow = rows.find((r) => r.everything);
    const all = allRow ? toLatency(allRow) : toLatency({
      everything: true,
      finished: 0,
      completed: 0,
      failed: 0,
      wait_p: null,
      wait_max: null,
      run_p: null,
      run_max: null,
    });
    return {
      window_seconds: Math.round(o.windowMs / 1000),
      type: o.type ?? null,
      sample_limit: o.sample,
      sampled: all.finished >= o.sample,
      all,
      types: rows.filter((r) => !r.everything).map(toLatency),
      generated_at: (allRow?.now as Date | undefined) ?? o.now ?? new Date(),
    };
  });
}
