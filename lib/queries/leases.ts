import { type Db, getTableInfo, guard } from "../db.ts";
import { type LeasesOptions, resolveLeasesOptions } from "../input/insight.ts";
import { requeueRule } from "../ops/requeue_stale.ts";
import { workersTableName } from "../table/contract.ts";
import { nowFragment } from "./queue_health.ts";
import { workersTableExists } from "./workers.ts";

export type { LeasesOptions };

/** Why a running task is listed by {@link getLeases}. */
export type LeaseState =
  /** Its lease expired: its dispatcher stopped renewing it. */
  | "expired"
  /** Its lease still runs, but no heartbeat for longer than the threshold. */
  | "heartbeat_stale"
  /** It has no lease (a dispatcher that keeps none) and was locked longer than the threshold. */
  | "no_lease";

/** A running task that looks stuck. */
export interface StuckTask {
  /** The task. */
  id: string;
  /** Its type. */
  type: string;
  /** Its domain. */
  domain: string | null;
  /** The dispatcher holding it: owner_id, else locked_by. */
  owner: string | null;
  /** Executions started. */
  attempts: number;
  /** When it was claimed. */
  locked_at: Date | null;
  /** When its lease ends (ended). */
  lease_expires_at: Date | null;
  /** Its owner's last heartbeat on it. */
  last_heartbeat: Date | null;
  /** Why it is listed. */
  state: LeaseState;
  /** What `requeue-stale` would do to it right now; null: nothing (yet). */
  requeue: "retry" | "failed" | null;
}

/** An owner (dispatcher) of stuck tasks. */
export interface LeaseOwner {
  /** The dispatcher's name (null: running tasks without an owner). */
  owner: string | null;
  /** Its stuck tasks, and how many of those hold an expired lease. */
  stuck: number;
  /** Of its stuck tasks, those whose lease expired. */
  expired: number;
  /** Running tasks it holds, stuck or not. */
  running: number;
  /**
   * When it was last heard from: its newest heartbeat on any running task, or its registry
   * heartbeat (`seedtask_workers`), whichever is later.
   */
  last_heard_at: Date | null;
  /** Seconds since `last_heard_at`. */
  last_heard_seconds: number | null;
  /** It is a registered seedtask dispatcher. */
  registered: boolean;
}

/** What `seedtask leases` reports. */
export interface LeaseReport {
  /** Stuck tasks, longest unheard first (at most `limit`). */
  tasks: StuckTask[];
  /** Every stuck task (`tasks` may hold fewer). */
  total: number;
  /** The owners of stuck tasks, longest silent first. */
  owners: LeaseOwner[];
  /** What `seedtask requeue-stale` (same thresholds) would do right now. */
  requeue_stale: { retry: number; failed: number };
  /** The table has lease columns (without them only `no_lease` applies). */
  has_lease: boolean;
  /** The thresholds in force. */
  thresholds: { stale_after_seconds: number; older_than_seconds: number; max_attempts: number };
  /** When the answer was computed. */
  generated_at: Date;
}

/**
 * The running tasks that look stuck — lease expired, heartbeat older than `staleAfterMs`, or
 * (without a lease) locked longer than `olderThanMs` — by owner, with when each owner was last
 * heard from and what `requeue-stale` would do right now.
 *
 * One statement, so the counts, the list and the preview share one snapshot and one `now`, and
 * what travels is bounded by the owners and `limit`, never by the stuck tasks: the owners are a
 * GROUP BY over the running tasks, the list an ORDER BY ... LIMIT over the same, and the preview
 * counts the rows {@link requeueRule} selects by its outcome — the very expressions
 * `requeue-stale` runs, so the rule lives in one place (lib/ops/requeue_stale.ts). On a table
 * with the running index keyed on the stuck order (`tasks_running_idx` with its INCLUDE
 * columns) each part is an index-only scan of the running tasks.
 *
 * @example
 * ```ts
 * const report = await getLeases(db, { staleAfterMs: 60_000 });
 * for (const o of report.owners) console.log(o.owner, o.stuck, o.last_heard_seconds);
 * ```
 */
export function getLeases(db: Db, options: LeasesOptions = {}): Promise<LeaseReport> {
  const o = resolveLeasesOptions(options);
  return guard(db, async () => {
    const sql = db.sql;
    const t = sql(db.table);
    const [{ hasLease }, registry] = await Promise.all([getTableInfo(db), workersTableExists(db)]);
    const now = nowFragment(db, o.now);
    const rule = requeueRule(db, hasLease, {
      olderThanMs: o.olderThanMs,
      maxAttempts: o.maxAttempts,
      now: o.now,
    });
    const ms = (v: number) => sql`${v} * interval '1 millisecond'`;
    const owner = hasLease ? sql`coalesce(owner_id, locked_by)` : sql`locked_by`;
    // When a task's owner was last heard from on it; the list's order, longest unheard first.
    const heard = hasLease ? sql`coalesce(last_heartbeat, locked_at)` : sql`locked_at`;
    const state = hasLease
      ? sql`case
          when lease_expires_at < ${now} then 'expired'
          when lease_expires_at is null and locked_at < ${now} - ${ms(o.olderThanMs)}
            then 'no_lease'
          when lease_expires_at is not null
            and coalesce(last_heartbeat, locked_at) < ${now} - ${ms(o.staleAfterMs)}
            then 'heartbeat_stale'
        end`
      : sql`case when locked_at < ${now} - ${ms(o.olderThanMs)} then 'no_lease' end`;
    const leaseColumns = hasLease
      ? sql`lease_expires_at, last_heartbeat`
      : sql`null::timestamptz as lease_expires_at, null::timestamptz as last_heartbeat`;
    const registered = registry
      ? sql`(select max(w.last_seen_at) from ${sql(workersTableName(db.schema))} w
          where w.table_name = ${db.tableName} and w.name = g.owner)`
      : sql`null::timestamptz`;
    // The inner selects read only the running index's columns (no status in an expression:
    // that would cost a heap visit per row); the list reads the table for its `limit` rows.
    const [row] = await sql`
      select
        (select coalesce(json_agg(o order by o.first_stuck nulls first, o.owner nulls first),
            '[]'::json)
          from (select g.*, ${registered} as registered_at from (
            select owner, count(*)::int as running, max(heard) as heard,
              count(*) filter (where state is not null)::int as stuck,
              count(*) filter (where state = 'expired')::int as expired,
              min(heard) filter (where state is not null) as first_stuck
            from (select ${owner} as owner, ${heard} as heard, ${state} as state
                  from ${t} where status = 'running') r
            group by owner
            having count(*) filter (where state is not null) > 0
          ) g) o
        ) as owners,
        (select coalesce(json_agg(l order by l.heard nulls first, l.id), '[]'::json)
          from (
            select id, type, domain, ${owner} as owner, attempts, locked_at, ${leaseColumns},
              ${state} as state, ${heard} as heard,
              case when ${rule.stale} then ${rule.outcome} end as requeue
            from ${t}
            where id in (
              select id from (select id, ${heard} as heard, ${state} as state
                              from ${t} where status = 'running') r
              where state is not null
              order by heard nulls first, id
              limit ${o.limit})
          ) l
        ) as tasks,
        p.retry, p.failed,
        ${now} as now
      from (
        select count(*) filter (where outcome = 'retry')::int as retry,
          count(*) filter (where outcome = 'failed')::int as failed
        from (select ${rule.outcome} as outcome from ${t} where ${rule.stale}) s
      ) p`;
    const r = row!;
    const nowDate = r.now as Date;
    const date = (v: unknown) => (typeof v === "string" ? new Date(v) : null);
    const tasks: StuckTask[] = (r.tasks as Array<Record<string, unknown>>).map((x) => ({
      id: x.id as string,
      type: x.type as string,
      domain: x.domain as string | null,
      owner: x.owner as string | null,
      attempts: x.attempts as number,
      locked_at: date(x.locked_at),
      lease_expires_at: date(x.lease_expires_at),
      last_heartbeat: date(x.last_heartbeat),
      state: x.state as LeaseState,
      requeue: x.requeue as "retry" | "failed" | null,
    }));
    const owners: LeaseOwner[] = (r.owners as Array<Record<string, unknown>>).map((h) => {
      const registeredAt = date(h.registered_at);
      const heardAt = [date(h.heard), registeredAt].filter((d): d is Date => d !== null)
        .sort((a, b) => b.getTime() - a.getTime())[0] ?? null;
      return {
        owner: h.owner as string | null,
        stuck: h.stuck as number,
        expired: h.expired as number,
        running: h.running as number,
        last_heard_at: heardAt,
        last_heard_seconds: heardAt === null
          ? null
          : Math.max(0, (nowDate.getTime() - heardAt.getTime()) / 1000),
        registered: registeredAt !== null,
      };
    });
    return {
      tasks,
      total: owners.reduce((n, w) => n + w.stuck, 0),
      // Longest silent first (never heard from at the top), then most stuck; ties keep the
      // statement's order (whose stuck task comes first in the list).
      owners: owners.sort((a, b) =>
        (b.last_heard_seconds ?? Number.MAX_VALUE) - (a.last_heard_seconds ?? Number.MAX_VALUE) ||
        b.stuck - a.stuck
      ),
      requeue_stale: { retry: r.retry, failed: r.failed },
      has_lease: hasLease,
      thresholds: {
        stale_after_seconds: o.staleAfterMs / 1000,
        older_than_seconds: o.olderThanMs / 1000,
        max_attempts: o.maxAttempts,
      },
      generated_at: new Date(),
    };
  });
}
