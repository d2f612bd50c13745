import { type Db, guard } from "../db.ts";
import type { Task } from "../table/contract.ts";
import { type NewTask, resolveNewTask } from "../input/new_task.ts";

export type { NewTask };

/** The channel `enqueue` notifies and `dispatch --listen` waits on (the seed's name). */
export const NOTIFY_CHANNEL = "tasks_new";

/**
 * Inserts one task and returns its row. A queued task that is claimable now is announced
 * with NOTIFY on {@link NOTIFY_CHANNEL} (delivered at commit), which wakes listening
 * dispatchers at once.
 *
 * @example const task = await enqueueTask(db, { type: "graph_embed", params: { id: 7 } });
 */
export async function enqueueTask(db: Db, task: NewTask): Promise<Task> {
  const input = resolveNewTask(task);
  const status = input.status;
  const notify = status === "queued" &&
    (input.runAfter === undefined || input.runAfter.getTime() <= Date.now());
  return await guard(db, async () => {
    const sql = db.sql;
    const [row] = await sql`
      with inserted as (
        insert into ${sql(db.table)} (type, params, description, domain, drift_score, run_after,
          status)
        values (${input.type}, ${sql.json(input.params as never)},
          ${input.description ?? null}, ${input.domain ?? null}, ${input.driftScore},
          ${input.runAfter ?? null}, ${status})
        returning *
      )
      select inserted.*, ${
      notify ? sql`pg_notify(${NOTIFY_CHANNEL}, inserted.id::text)` : sql`null`
    } as "__notified"
      from inserted`;
    const { __notified: _, ...task } = row!;
    return task as Task;
  });
}
