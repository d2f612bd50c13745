import { type Db, getTableInfo, guard } from "../db.ts";
import { type LeasesOptions, resolveLeasesOptions } from "../input/insight.ts";
import { requeueStale } from "../ops/requeue_stale.ts";
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
 * heard from and what `requeue-stale` would do right now: its own dry run, so the rule of what
 * gets requeued lives in one place (lib/ops/requeue_stale.ts).
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
    const { hasLease } = await getTableInfo(db);
    const now = nowFragment(db, o.now);
    const ms = (v: number) => sql`${v} * interval '1 millisecond'`;
    const owner = hasLease ? sql`coalesce(owner_id, locked_by)` : sql`locked_by`;
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
    const registry = await workersTableExists(db);
    const [stuckRows, ownerRows, preview, [clock]] = await Promise.all([
      sql`
        select * from (
          select id, type, domain, ${owner} as owner, attempts, locked_at, ${leaseColumns},
            ${state} as state
          from ${t} where status = 'running'
        ) r where state is not null
        order by coalesce(last_heartbeat, locked_at) nulls first, id`,
      sql`
        select o.*, ${
        registry
          ? sql`(select max(w.last_seen_at) from ${sql(workersTableName(db.schema))} w
                 where w.table_name = ${db.tableName} and w.name = o.owner)`
          : sql`null::timestamptz`
      } as registered_at
        from (
          select ${owner} as owner, count(*)::int as running,
            max(${hasLease ? sql`coalesce(last_heartbeat, locked_at)` : sql`locked_at`}) as heard
          from ${t} where status = 'running' group by 1
        ) o`,
      requeueStale(db, {
        dryRun: true,
        olderThanMs: o.olderThanMs,
        maxAttempts: o.maxAttempts,
        now: o.now,
      }),
      sql`select ${now} as now`,
    ]);
    const nowDate = clock!.now as Date;
    const outcome = new Map(preview.map((p) => [p.task.id, p.outcome]));
    const tasks: StuckTask[] = stuckRows.map((r) => ({
      id: r.id,
      type: r.type,
      domain: r.domain,
      owner: r.owner,
      attempts: r.attempts,
      locked_at: r.locked_at,
      lease_expires_at: r.lease_expires_at,
      last_heartbeat: r.last_heartbeat,
      state: r.state,
      requeue: outcome.get(r.id) ?? null,
    }));
    const heardOf = new Map(ownerRows.map((r) => [r.owner as string | null, r]));
    const owners = new Map<string | null, LeaseOwner>();
    for (const task of tasks) {
      let entry = owners.get(task.owner);
      if (!entry) {
        const h = heardOf.get(task.owner);
        const heard = [h?.heard, h?.registered_at].filter((d): d is Date => d instanceof Date)
          .sort((a, b) => b.getTime() - a.getTime())[0] ?? null;
        entry = {
          owner: task.owner,
          stuck: 0,
          expired: 0,
          running: h?.running ?? 0,
          last_heard_at: heard,
          last_heard_seconds: heard === null
            ? null
            : Math.max(0, (nowDate.getTime() - heard.getTime()) / 1000),
          registered: h?.registered_at instanceof Date,
        };
        owners.set(task.owner, entry);
      }
      entry.stuck++;
      if (task.state === "expired") entry.expired++;
    }
    return {
      tasks: tasks.slice(0, o.limit),
      total: tasks.length,
      // Longest silent first (never heard from at the top), then most stuck.
      owners: [...owners.values()].sort((a, b) =>
        (b.last_heard_seconds ?? Number.MAX_VALUE) - (a.last_heard_seconds ?? Number.MAX_VALUE) ||
        b.stuck - a.stuck
      ),
      requeue_stale: {
        retry: preview.filter((p) => p.outcome === "retry").length,
        failed: preview.filter((p) => p.outcome === "failed").length,
      },
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
