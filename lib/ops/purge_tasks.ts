import { type Db, guard } from "../db.ts";
import { InvalidInputError, OutOfRangeError } from "../errors.ts";
import type { FilterPreview } from "./task_transitions.ts";
import { type Task, type TaskStatus, TERMINAL_STATUSES } from "../table/contract.ts";

/** Rows per DELETE statement when {@link PurgeOptions.batchSize} is not given. */
export const DEFAULT_PURGE_BATCH = 1000;

/** What {@link purgeTasks} deletes, and how. */
export interface PurgeOptions {
  /** Only tasks not updated for at least this long (required: purge never touches new work). */
  olderThanMs: number;
  /** Terminal statuses to delete. Default completed, cancelled, failed. */
  statuses?: readonly TaskStatus[];
  /** Rows per DELETE, so no statement holds locks for long. Default {@link DEFAULT_PURGE_BATCH}. */
  batchSize?: number;
  /** Called after every batch with the running total. */
  onProgress?: (deleted: number, expected: number) => void;
}

/** What {@link purgeTasks} deleted. */
export interface PurgeResult {
  /** Rows deleted. */
  deleted: number;
  /** DELETE statements it took. */
  batches: number;
}

function checkOptions(
  options: PurgeOptions,
): { statuses: readonly TaskStatus[]; cutoffMs: number } {
  if (!(options.olderThanMs > 0)) {
    throw new InvalidInputError("purge needs --older-than greater than 0");
  }
  const statuses = options.statuses ?? TERMINAL_STATUSES;
  const bad = statuses.filter((s) => !TERMINAL_STATUSES.includes(s));
  if (bad.length > 0) {
    throw new InvalidInputError(
      `Cannot purge tasks in status ${bad.map((s) => `"${s}"`).join(", ")}: ` +
        "only completed, cancelled and failed tasks can be purged",
    );
  }
  const batch = options.batchSize ?? DEFAULT_PURGE_BATCH;
  if (!Number.isInteger(batch) || batch < 1 || batch > 100_000) {
    throw new OutOfRangeError(`Invalid batch "${batch}": expected a number from 1 to 100000`);
  }
  return { statuses, cutoffMs: options.olderThanMs };
}

/**
 * How many tasks a purge would delete, and the ten most recently updated of them (what the
 * dry run says it shows). Changes nothing.
 */
export async function previewPurge(db: Db, options: PurgeOptions): Promise<FilterPreview> {
  const { statuses, cutoffMs } = checkOptions(options);
  return await guard(db, async () => {
    const sql = db.sql;
    const t = sql(db.table);
    const where = sql`status in ${sql(statuses as string[])}
      and updated_at < now() - ${cutoffMs} * interval '1 millisecond'`;
    const [[count], sample] = await Promise.all([
      sql<{ n: number }[]>`select count(*)::int as n from ${t} where ${where}`,
      sql<Task[]>`select * from ${t} where ${where} order by updated_at desc limit 10`,
    ]);
    return { count: count!.n, sample: [...sample] };
  });
}

/**
 * Deletes old terminal tasks in batches: each batch is its own short statement
 * (`DELETE ... WHERE id IN (SELECT ... LIMIT n FOR UPDATE SKIP LOCKED)`), so locks are held
 * briefly and the queue keeps running. The cutoff is fixed when the purge starts, so it ends
 * even while new tasks finish.
 */
export async function purgeTasks(db: Db, options: PurgeOptions): Promise<PurgeResult> {
  const { statuses, cutoffMs } = checkOptions(options);
  const batchSize = options.batchSize ?? DEFAULT_PURGE_BATCH;
  return await guard(db, async () => {
    const sql = db.sql;
    const t = sql(db.table);
    const [{ cutoff, expected }] = await sql<{ cutoff: string; expected: number }[]>`
      select (now() - ${cutoffMs} * interval '1 millisecond')::text as cutoff,
        (select count(*)::int from ${t} where status in ${sql(statuses as string[])}
          and updated_at < now() - ${cutoffMs} * interval '1 millisecond') as expected
    ` as unknown as [{ cutoff: string; expected: number }];
    let deleted = 0;
    let batches = 0;
    while (true) {
      const result = await sql`
        delete from ${t} where id in (
          select id from ${t}
          where status in ${sql(statuses as string[])} and updated_at < ${cutoff}::text::timestamptz
          limit ${batchSize}
          for update skip locked
        )`;
      if (result.count === 0) break;
      deleted += result.count;
      batches++;
      options.onProgress?.(deleted, Math.max(expected, deleted));
    }
    return { deleted, batches };
  });
}
