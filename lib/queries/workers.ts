import { type Db, getTableInfo, guard, quoteQualified } from "../db.ts";
import { SILENT_LISTED_MS, type WorkersOptions } from "../input/insight.ts";
import { workersTableName } from "../table/contract.ts";
import { nowFragment } from "./queue_health.ts";

export type { WorkersOptions };

/** One dispatcher: registered in `seedtask_workers`, or only seen holding running tasks. */
export interface WorkerInfo {
  /** Its name: what it writes to locked_by / owner_id. */
  name: string;
  /**
   * True for a seedtask dispatcher (it registers itself); false for an owner of running
   * tasks that never registered (SeedCore's own dispatcher, an older seedtask).
   */
  registered: boolean;
  /** Its host name (registered only). */
  host: string | null;
  /** Its process id (registered only). */
  pid: number | null;
  /** Its seedtask version (registered only). */
  version: string | null;
  /** When it started (registered only). */
  started_at: Date | null;
  /** Executions at once (registered only). */
  concurrency: number | null;
  /** The types it claims; null for every type (or unknown). */
  types: string[] | null;
  /** Its lease length; silent when not heard from for this long (registered only). */
  lease_ms: number | null;
  /** Its last heartbeat (registered) or the newest heartbeat of its running tasks. */
  last_seen_at: Date | null;
  /** Seconds since `last_seen_at`. */
  last_seen_seconds: number | null;
  /**
   * Not heard from within its lease (registered), or every lease it holds has expired
   * (unregistered): it is most likely dead, and its tasks wait for the reaper.
   */
  silent: boolean;
  /** Running tasks it holds in the task table. */
  running: number;
  /** Of those, tasks whose lease has expired. */
  expired_leases: number;
  /** Since it started (registered only): executions claimed, completed, retried, failed. */
  counts: { claimed: number; completed: number; retried: number; failed: number } | null;
  /** Executions in flight as it last reported (registered only). */
  in_flight: number | null;
}

/** What `seedtask workers` reports. */
export interface WorkerList {
  /** Live workers first, then silent ones; registered before unregistered. */
  workers: WorkerInfo[];
  /** `seedtask_workers` exists (run `seedtask migrate` to create it). */
  registry: boolean;
  /** Registered workers silent for more than a day, left out (pass `all` to list them). */
  hidden: number;
  /** When the answer was computed. */
  generated_at: Date;
}

/** Whether `seedtask_workers` exists next to the task table. */
export async function workersTableExists(db: Db): Promise<boolean> {
  const name = quoteQualified(workersTableName(db.schema));
  const [row] = await db.sql<{ ok: boolean }[]>`select to_regclass(${name}) is not null as ok`;
  return row!.ok;
}

/**
 * Lists the dispatchers of the task table: those registered in `seedtask_workers` (with
 * their settings, counters and last heartbeat), and owners of running tasks that never
 * registered, from the task table itself. Each with the running tasks it holds and whether it
 * has gone silent — not heard from within its lease. Two small statements: the registry, and
 * the running tasks grouped by owner (the partial running index).
 *
 * @example
 * ```ts
 * const { workers } = await listWorkers(db);
 * const dead = workers.filter((w) => w.silent && w.running > 0);
 * ```
 */
export function listWorkers(db: Db, options: WorkersOptions = {}): Promise<WorkerList> {
  return guard(db, async () => {
    const sql = db.sql;
    const { hasLease } = await getTableInfo(db);
    const registry = await workersTableExists(db);
    const now = nowFragment(db, options.now);
    const owner = hasLease ? sql`coalesce(owner_id, locked_by)` : sql`locked_by`;
    const running = await sql`
      select ${owner} as owner, count(*)::int as running,
        ${
      hasLease
        ? sql`count(*) filter (where lease_expires_at < ${now})::int as expired,
               max(coalesce(last_heartbeat, locked_at)) as last_heard,
               bool_and(lease_expires_at < ${now}) as all_expired`
        : sql`0 as expired, max(locked_at) as last_heard, false as all_expired`
    }
      from ${sql(db.table)} where status = 'running' group by 1`;
    const registered = registry
      ? await sql`
          select *, ${now} as now,
            last_seen_at < ${now} - coalesce(lease_ms, 90000) * interval '1 millisecond' as silent,
            last_seen_at < ${now} - ${SILENT_LISTED_MS} * interval '1 millisecond' as long_gone
          from ${sql(workersTableName(db.schema))}
          where table_name = ${db.tableName}
          order by name`
      : [];
    const [{ now: nowDate }] = await sql`select ${now} as now` as unknown as [{ now: Date }];
    const ago = (d: Date | null) =>
      d === null ? null : Math.max(0, (nowDate.getTime() - d.getTime()) / 1000);
    const byOwner = new Map(running.map((r) => [r.owner as string | null, r]));
    const workers: WorkerInfo[] = [];
    let hidden = 0;
    for (const w of registered) {
      const held = byOwner.get(w.name);
      byOwner.delete(w.name);
      if (w.long_gone && !options.all && !held) {
        hidden++;
        continue;
      }
      workers.push({
        name: w.name,
        registered: true,
        host: w.host,
        pid: w.pid,
        version: w.version,
        started_at: w.started_at,
        concurrency: w.concurrency,
        types: w.types,
        lease_ms: w.lease_ms,
        last_seen_at: w.last_seen_at,
        last_seen_seconds: ago(w.last_seen_at),
        silent: w.silent,
        running: held?.running ?? 0,
        expired_leases: held?.expired ?? 0,
        counts: {
          claimed: Number(w.claimed),
          completed: Number(w.completed),
          retried: Number(w.retried),
          failed: Number(w.failed),
        },
        in_flight: w.in_flight,
      });
    }
    for (const [name, r] of byOwner) {
      const last = r.last_heard as Date | null;
      workers.push({
        name: name ?? "(none)",
        registered: false,
        host: null,
        pid: null,
        version: null,
        started_at: null,
        concurrency: null,
        types: null,
        lease_ms: null,
        last_seen_at: last,
        last_seen_seconds: ago(last),
        silent: r.all_expired === true,
        running: r.running,
        expired_leases: r.expired,
        counts: null,
        in_flight: null,
      });
    }
    workers.sort((a, b) =>
      Number(a.silent) - Number(b.silent) || Number(b.registered) - Number(a.registered) ||
      a.name.localeCompare(b.name)
    );
    return { workers, registry, hidden, generated_at: new Date() };
  });
}
