import type postgres from "postgres";
import { type Db, guard } from "../db.ts";
import { AmbiguousTaskIdError, TaskNotFoundError } from "../errors.ts";
import type { Task } from "../table/contract.ts";
import { parseTaskIdArg, type TaskIdArg } from "./task_id.ts";

/** How many candidates an ambiguous prefix reports. */
const MAX_CANDIDATES = 10;

/**
 * The lookup query for an id or prefix. A prefix is a range on the primary key
 * (`id between low and high`), never `id::text like`, so it is an index range scan.
 */
export function findTaskQuery(db: Db, arg: TaskIdArg): postgres.PendingQuery<postgres.Row[]> {
  const table = db.sql(db.table);
  if (arg.kind === "full") {
    return db.sql`select * from ${table} where id = ${arg.id}::uuid`;
  }
  return db.sql`
    select * from ${table}
    where id between ${arg.low}::uuid and ${arg.high}::uuid
    order by id
    limit ${MAX_CANDIDATES + 1}`;
}

/**
 * Fetches one task by full id or unique prefix (hyphens optional).
 * Throws {@link TaskNotFoundError}, {@link AmbiguousTaskIdError}, or InvalidInputError for
 * text that cannot be an id.
 *
 * @example
 * ```ts
 * const task = await getTask(db, "1a2b3c4d");
 * console.log(task.status, task.error);
 * ```
 */
export async function getTask(db: Db, idOrPrefix: string): Promise<Task> {
  const arg = parseTaskIdArg(idOrPrefix);
  return await guard(db, async () => {
    const rows = await findTaskQuery(db, arg);
    if (rows.length === 0) throw new TaskNotFoundError(idOrPrefix);
    if (rows.length > 1) {
      const ids = rows.slice(0, MAX_CANDIDATES).map((r) => r.id as string);
      throw new AmbiguousTaskIdError(idOrPrefix, ids, rows.length > MAX_CANDIDATES);
    }
    return rows[0] as Task;
  });
}
