import { type Db, guard } from "../db.ts";
import { workersTableName } from "../table/contract.ts";
import { workersTableExists } from "../queries/workers.ts";
import { VERSION } from "../version.ts";
import type { DispatcherStats } from "./stats.ts";
import { hostName } from "../host.ts";

/** A registry row silent this long is deleted when a dispatcher of the table starts. */
const PRUNE_AFTER = "7 days";

/** What a dispatcher tells the registry about itself. */
export interface WorkerRegistration {
  db: Db;
  name: string;
  concurrency: number;
  types?: readonly string[];
  leaseMs: number;
  /** Its counters, read at each heartbeat. */
  stats: () => DispatcherStats;
  /** Executions in flight now. */
  inFlight: () => number;
}

/**
 * A dispatcher's row in `seedtask_workers` (see lib/table/contract.ts): written at start,
 * refreshed with each heartbeat of its {@link LeaseKeeper}, deleted on a clean stop. On a
 * table that never ran this version's `migrate` there is no registry: the dispatcher runs
 * unregistered, and `seedtask workers` lists it from the tasks it holds.
 */
export class WorkerRegistry {
  #available = false;

  constructor(private readonly o: WorkerRegistration) {}

  /** Registers (or re-registers, after a restart under the same name). */
  async register(): Promise<void> {
    const { db, name, concurrency, types, leaseMs } = this.o;
    this.#available = await guard(db, () => workersTableExists(db));
    if (!this.#available) return;
    await guard(db, async () => {
      const sql = db.sql;
      await sql`
        insert into ${sql(workersTableName(db.schema))} (table_name, name, host, pid, version,
          started_at, last_seen_at, concurrency, types, lease_ms)
        values (${db.tableName}, ${name}, ${hostName()}, ${Deno.pid}, ${VERSION}, now(), now(),
          ${concurrency}, ${types ? [...types] : null}, ${Math.round(leaseMs)})
        on conflict (table_name, name) do update set host = excluded.host, pid = excluded.pid,
          version = excluded.version, started_at = excluded.started_at,
          last_seen_at = excluded.last_seen_at, concurrency = excluded.concurrency,
          types = excluded.types, lease_ms = excluded.lease_ms, in_flight = 0, claimed = 0,
          completed = 0, retried = 0, failed = 0`;
      // Rows of dispatchers that died long ago (SIGKILL, a lost host) would stay forever.
      await sql`
        delete from ${sql(workersTableName(db.schema))}
        where table_name = ${db.tableName} and last_seen_at < now() - ${PRUNE_AFTER}::interval`;
    });
  }

  /** Refreshes last_seen_at and the counters (a heartbeat). */
  async beat(): Promise<void> {
    if (!this.#available) return;
    const { db, name } = this.o;
    const s = this.o.stats();
    await guard(db, async () => {
      const sql = db.sql;
      // Upsert: a row an operator deleted (or a registry created after start) comes back.
      await sql`
        insert into ${sql(workersTableName(db.schema))} (table_name, name, host, pid, version,
          concurrency, types, lease_ms, in_flight, claimed, completed, retried, failed)
        values (${db.tableName}, ${name}, ${hostName()}, ${Deno.pid}, ${VERSION},
          ${this.o.concurrency}, ${this.o.types ? [...this.o.types] : null},
          ${Math.round(this.o.leaseMs)}, ${this.o.inFlight()}, ${s.claimed}, ${s.completed},
          ${s.retried}, ${s.failed})
        on conflict (table_name, name) do update set last_seen_at = now(),
          in_flight = excluded.in_flight, claimed = excluded.claimed,
          completed = excluded.completed, retried = excluded.retried, failed = excluded.failed`;
    });
  }

  /** Removes the row (a clean stop). */
  async unregister(): Promise<void> {
    if (!this.#available) return;
    const { db, name } = this.o;
    await guard(db, async () => {
      const sql = db.sql;
      await sql`delete from ${sql(workersTableName(db.schema))}
        where table_name = ${db.tableName} and name = ${name}`;
    });
  }
}
