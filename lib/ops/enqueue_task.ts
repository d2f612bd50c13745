import { type Db, guard } from "../db.ts";
import { InvalidInputError } from "../errors.ts";
import type { Task } from "../table/contract.ts";
import {
  checkInstant,
  checkJson,
  checkText,
  MAX_DESCRIPTION_LENGTH,
  MAX_NAME_LENGTH,
} from "../input/task_input.ts";

/** The channel `enqueue` notifies and `dispatch --listen` waits on (the seed's name). */
export const NOTIFY_CHANNEL = "tasks_new";

/** A new task. */
export interface NewTask {
  type: string;
  /** JSON parameters. Default `{}`. */
  params?: unknown;
  description?: string;
  domain?: string;
  driftScore?: number;
  /** Not claimable before this instant (scheduling). */
  runAfter?: Date;
  /** `queued` (default: claimable) or `created` (staged, not claimable yet). */
  status?: "queued" | "created";
}

/**
 * Inserts one task and returns its row. A queued task that is claimable now is announced
 * with NOTIFY on {@link NOTIFY_CHANNEL} (delivered at commit), which wakes listening
 * dispatchers at once.
 *
 * @example const task = await enqueueTask(db, { type: "graph_embed", params: { id: 7 } });
 */
export async function enqueueTask(db: Db, input: NewTask): Promise<Task> {
  if (!input.type || input.type.trim() === "") {
    throw new InvalidInputError("A task needs a type, e.g. --type graph_embed");
  }
  checkText(input.type, "type", MAX_NAME_LENGTH);
  if (input.domain !== undefined) checkText(input.domain, "domain", MAX_NAME_LENGTH);
  if (input.description !== undefined) {
    checkText(input.description, "description", MAX_DESCRIPTION_LENGTH);
  }
  checkJson(input.params ?? {}, "params");
  if (input.driftScore !== undefined && !Number.isFinite(input.driftScore)) {
    throw new InvalidInputError(`Invalid drift score "${input.driftScore}": expected a number`);
  }
  if (input.runAfter !== undefined) checkInstant(input.runAfter, "run_after");
  const status = input.status ?? "queued";
  const notify = status === "queued" &&
    (input.runAfter === undefined || input.runAfter.getTime() <= Date.now());
  return await guard(db, async () => {
    const sql = db.sql;
    const [row] = await sql`
      with inserted as (
        insert into ${sql(db.table)} (type, params, description, domain, drift_score, run_after,
          status)
        values (${input.type}, ${sql.json((input.params ?? {}) as never)},
          ${input.description ?? null}, ${input.domain ?? null}, ${input.driftScore ?? 0},
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
