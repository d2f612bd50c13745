import { type Db, guard } from "../db.ts";
import type { Task } from "../table/contract.ts";

/**
 * Every update here is guarded by `status = 'running' AND locked_by = owner AND attempts =
 * <the claimed attempt>`: a dispatcher can only finish the execution it claimed. If an operator
 * cancelled the task, or a reaper returned it after the lease expired (and maybe another
 * dispatcher claimed it again), the update matches nothing and the caller is told so.
 */
export interface Claimed {
  /** The task. */
  id: string;
  /** The dispatcher that claimed it (`locked_by`). */
  owner: string;
  /** `attempts` as returned by the claim: the fencing token of this execution. */
  attempts: number;
}

/**
 * Marks claimed executions completed with their results, in one statement (the dispatcher
 * batches the completions that arrive together). Each row keeps its own guard — running,
 * locked by the claim's owner, at the claimed attempt — so a completion by another owner, of
 * an execution reaped (and maybe claimed again), or of a cancelled task changes nothing and is
 * simply left out. Returns the ids that were completed.
 *
 * @example
 * ```ts
 * const [task] = await claimTasks(db, { owner: "worker-1", limit: 1, leaseMs: 60_000 });
 * const claim = { id: task.id, owner: "worker-1", attempts: task.attempts };
 * const done = await completeTasks(db, [{ claim, result: { ok: true } }]);
 * if (!done.has(task.id)) console.warn("no longer ours: cancelled or reaped");
 * ```
 */
export async function completeTasks(
  db: Db,
  items: ReadonlyArray<{ claim: Claimed; result: unknown }>,
): Promise<Set<string>> {
  if (items.length === 0) return new Set();
  return await guard(db, async () => {
    const sql = db.sql;
    const values = items.map((i) => [
      i.claim.id,
      i.claim.owner,
      String(i.claim.attempts),
      JSON.stringify(i.result ?? null),
    ]);
    const rows = await sql<{ id: string }[]>`
      update ${sql(db.table)} as t
      set status = 'completed', result = v.result::jsonb, error = null,
        owner_id = null, lease_expires_at = null
      from (values ${sql(values)}) as v (id, owner, attempts, result)
      where t.id = v.id::uuid and t.status = 'running' and t.locked_by = v.owner
        and t.attempts = v.attempts::int
      returning t.id`;
    return new Set(rows.map((r) => r.id));
  });
}

/**
 * Records a failed execution: back to `retry` with `run_after = now + delayMs` while attempts
 * remain, else `failed` with "Max attempts (N) exceeded: <error>". Null when refused (see
 * {@link Claimed}).
 */
export async function failTask(
  db: Db,
  claim: Claimed,
  error: string,
  options: { maxAttempts: number; delayMs: number },
): Promise<{ task: Task; outcome: "retry" | "failed" } | null> {
  return await guard(db, async () => {
    const sql = db.sql;
    const guardClause = sql`id = ${claim.id} and status = 'running' and locked_by = ${claim.owner}
      and attempts = ${claim.attempts}`;
    if (claim.attempts >= options.maxAttempts) {
      const [row] = await sql<Task[]>`
        update ${sql(db.table)}
        set status = 'failed', error = ${`Max attempts (${options.maxAttempts}) exceeded: ${error}`},
          owner_id = null, lease_expires_at = null
        where ${guardClause}
        returning *`;
      return row ? { task: row, outcome: "failed" } : null;
    }
    const [row] = await sql<Task[]>`
      update ${sql(db.table)}
      set status = 'retry', error = ${error},
        run_after = now() + ${options.delayMs} * interval '1 millisecond',
        owner_id = null, lease_expires_at = null
      where ${guardClause}
      returning *`;
    return row ? { task: row, outcome: "retry" } : null;
  });
}

/**
 * Renews the lease of the owner's in-flight tasks and returns the ids it still holds; an id
 * missing from the answer was cancelled or reaped, and its execution should stop.
 */
export async function renewLeases(
  db: Db,
  owner: string,
  ids: readonly string[],
  leaseMs: number,
): Promise<Set<string>> {
  if (ids.length === 0) return new Set();
  return await guard(db, async () => {
    const sql = db.sql;
    const rows = await sql<{ id: string }[]>`
      update ${sql(db.table)}
      set lease_expires_at = now() + ${leaseMs} * interval '1 millisecond', last_heartbeat = now()
      where id = any(${ids as string[]}::uuid[]) and status = 'running' and locked_by = ${owner}
      returning id`;
    return new Set(rows.map((r) => r.id));
  });
}

/**
 * Hands back executions abandoned at shutdown: `retry`, claimable at once, with the reason in
 * `error`. The started execution still counts as an attempt. Returns the released rows.
 */
export async function releaseTasks(
  db: Db,
  claims: readonly Claimed[],
  reason: string,
): Promise<Task[]> {
  if (claims.length === 0) return [];
  return await guard(db, async () => {
    const sql = db.sql;
    const released: Task[] = [];
    for (const c of claims) {
      const [row] = await sql<Task[]>`
        update ${sql(db.table)}
        set status = 'retry', run_after = now(), locked_by = null,
          error = concat_ws(' | ', nullif(error, ''), ${reason}::text),
          owner_id = null, lease_expires_at = null
        where id = ${c.id} and status = 'running' and locked_by = ${c.owner}
          and attempts = ${c.attempts}
        returning *`;
      if (row) released.push(row);
    }
    return released;
  });
}

/**
 * Why a guarded finish of task `id` was refused, for the log: what became of the task. A
 * generic reason when the task cannot be read.
 */
export async function refusalReason(db: Db, id: string): Promise<string> {
  try {
    const [row] = await db.sql`
      select status, locked_by from ${db.sql(db.table)} where id = ${id}`;
    if (!row) return "the task was deleted";
    if (row.status !== "running") return `the task is now "${row.status}"`;
    return `the task is now held by ${row.locked_by}`;
  } catch {
    return "the task is no longer running under this dispatcher";
  }
}
