import type postgres from "postgres";
import { type Db, getTableInfo, guard } from "../db.ts";
import { AmbiguousTaskIdError, InvalidInputError, TaskNotFoundError } from "../errors.ts";
import { NOTIFY_CHANNEL } from "./enqueue_task.ts";
import type { Task, TaskStatus } from "../table/contract.ts";
import { parseTaskIdArg } from "../queries/task_id.ts";
import { resolveTaskFilter, type TaskFilter } from "../input/transition.ts";
import { groupIdSql } from "../queries/fingerprint.ts";

export type { TaskFilter };

type Fragment = postgres.PendingQuery<postgres.Row[]>;

/** A transition that did not happen, and why. */
export interface RefusedTransition {
  /** The task's full id. */
  id: string;
  /** Its status, which the transition does not apply to. */
  status: TaskStatus;
  /** Why it was refused, one line. */
  message: string;
}

/** What a transition by ids changed (rows after the change) and what it refused. */
export interface TransitionReport {
  /** Exactly the rows this call changed, as they are now, in the order the ids were given. */
  changed: Task[];
  /** The tasks that were left alone, each with the reason. */
  refused: RefusedTransition[];
}

/** What a filter would touch: how many tasks, and the ten most recently updated of them. */
export interface FilterPreview {
  /** Tasks the filter selects now. */
  count: number;
  /** The ten most recently updated of them. */
  sample: Task[];
}

interface Transition {
  verb: "cancel" | "retry" | "release";
  from: readonly TaskStatus[];
  /** What a filter without a status selects (default: every status of `from`). */
  filterFrom?: readonly TaskStatus[];
  set: (db: Db, hasLease: boolean) => Fragment;
  notify: boolean;
  refusal: (status: TaskStatus) => string;
}

const CANCEL_FROM: readonly TaskStatus[] = ["created", "queued", "retry"];

function cancelTransition(force: boolean): Transition {
  return {
    verb: "cancel",
    from: force ? [...CANCEL_FROM, "running"] : CANCEL_FROM,
    // A running task keeps locked_by (who ran it); its dispatcher's completion is then
    // refused because the task is no longer running. The lease is cleared so it never
    // counts as stuck.
    set: (db, hasLease) =>
      hasLease
        ? db.sql`status = 'cancelled', lease_expires_at = null, owner_id = null`
        : db.sql`status = 'cancelled'`,
    notify: false,
    // Bare: each surface names its own way to force (--force, {"force": true}, force: true).
    refusal: (status) => `it is "${status}"`,
  };
}

/**
 * `retry`: failed and cancelled tasks start afresh — queued, attempts from zero, no backoff,
 * no stale error, result or lock. A `retry` task waiting on its backoff runs now: its
 * run_after becomes now() if later (the backoff cut short, as Oban's retry_job sets scheduled_at), and
 * it keeps its attempts and error (the same run, sooner). Not null: a retry task without
 * run_after is what `doctor` reports as written by something other than a dispatcher.
 */
const RETRY: Transition = {
  verb: "retry",
  from: ["failed", "cancelled", "retry"],
  // A filter picks the finished tasks unless --status retry says otherwise: bringing backoffs
  // forward is a choice of its own.
  filterFrom: ["failed", "cancelled"],
  set: (db, hasLease) => {
    const sql = db.sql;
    const waiting = sql`status = 'retry'`;
    const keep = (column: string) =>
      sql`${sql(column)} = case when ${waiting} then ${sql(column)} else null end`;
    return sql`status = case when ${waiting} then status else 'queued' end,
      run_after = case when ${waiting} then least(run_after, now()) else null end,
      attempts = case when ${waiting} then attempts else 0 end,
      ${keep("error")}, ${keep("result")}, ${keep("locked_by")}, ${keep("locked_at")}${
      hasLease ? sql`, owner_id = null, lease_expires_at = null, last_heartbeat = null` : sql``
    }`;
  },
  notify: true,
  refusal: (status) => `it is "${status}" (only failed, cancelled or retry tasks can be retried)`,
};

/** `release`: a staged (`created`) task joins the queue; a run_after it has still holds. */
const RELEASE: Transition = {
  verb: "release",
  from: ["created"],
  set: (db) => db.sql`status = 'queued'`,
  notify: true,
  refusal: (status) => `it is "${status}" (only created tasks can be released)`,
};

/**
 * The statuses `verb` moves a task from (cancel with `force` also takes running tasks): what a
 * caller may offer the action for, read from the transition itself.
 */
export function transitionFrom(
  verb: Transition["verb"],
  force = false,
): readonly TaskStatus[] {
  return verb === "cancel"
    ? cancelTransition(force).from
    : verb === "retry"
    ? RETRY.from
    : RELEASE.from;
}

/**
 * Resolves id arguments (full ids or unique prefixes) to full ids, in order, without
 * duplicates. Throws TaskNotFoundError or AmbiguousTaskIdError for the first bad one.
 */
export async function resolveTaskIds(db: Db, args: readonly string[]): Promise<string[]> {
  const parsed = args.map((a) => ({ arg: a, id: parseTaskIdArg(a) }));
  return await guard(db, async () => {
    const out: string[] = [];
    const table = db.sql(db.table);
    const full = parsed.flatMap((p) => p.id.kind === "full" ? [p.id.id] : []);
    const existing = new Set(
      full.length === 0
        ? []
        : (await db.sql<{ id: string }[]>`select id from ${table} where id = any(${full}::uuid[])`)
          .map((r) => r.id),
    );
    for (const { arg, id } of parsed) {
      let resolved: string;
      if (id.kind === "full") {
        if (!existing.has(id.id)) throw new TaskNotFoundError(arg);
        resolved = id.id;
      } else {
        const rows = await db.sql<{ id: string }[]>`
          select id from ${table} where id between ${id.low}::uuid and ${id.high}::uuid
          order by id limit 11`;
        if (rows.length === 0) throw new TaskNotFoundError(arg);
        if (rows.length > 1) {
          throw new AmbiguousTaskIdError(arg, rows.slice(0, 10).map((r) => r.id), rows.length > 10);
        }
        resolved = rows[0]!.id;
      }
      if (!out.includes(resolved)) out.push(resolved);
    }
    return out;
  });
}

async function transitionIds(
  db: Db,
  t: Transition,
  args: readonly string[],
  where?: TaskFilter,
): Promise<TransitionReport> {
  // A filter beside ids guards them: only those it matches change (checked before connecting).
  const guardCond = where ? filterCondition(db, t, where) : undefined;
  const ids = await resolveTaskIds(db, args);
  return await guard(db, async () => {
    const sql = db.sql;
    const table = sql(db.table);
    // One guarded statement: only rows still in an allowed state change, so a concurrent
    // actor (a dispatcher finishing the task) can never be overwritten.
    const changed = await applyTransition(
      db,
      t,
      sql`id = any(${ids}::uuid[]) and status in ${sql(t.from as string[])}${
        guardCond ? sql` and ${guardCond}` : sql``
      }`,
    );
    // In the order the ids were given, as the report is read.
    const order = new Map(ids.map((id, i) => [id, i]));
    changed.sort((a, b) => order.get(a.id)! - order.get(b.id)!);
    const done = new Set(changed.map((r) => r.id));
    const rest = ids.filter((id) => !done.has(id));
    const current = rest.length === 0 ? [] : await sql<{ id: string; status: TaskStatus }[]>`
          select id, status from ${table} where id = any(${rest}::uuid[])`;
    const byId = new Map(current.map((r) => [r.id, r.status]));
    return {
      changed,
      refused: rest.map((id) => {
        const status = byId.get(id) ?? ("deleted" as TaskStatus);
        const why = guardCond && t.from.includes(status)
          ? `it is "${status}" and does not match the given filter`
          : t.refusal(status);
        return { id, status, message: `Cannot ${t.verb} task "${id.slice(0, 8)}": ${why}` };
      }),
    };
  });
}

function filterCondition(db: Db, t: Transition, given: TaskFilter): Fragment {
  const sql = db.sql;
  const filter = resolveTaskFilter(given);
  const statuses = filter.statuses ?? t.filterFrom ?? t.from;
  const bad = statuses.filter((s) => !t.from.includes(s));
  if (bad.length > 0) {
    throw new InvalidInputError(
      `Cannot ${t.verb} tasks in status ${bad.map((s) => `"${s}"`).join(", ")}: ` +
        `${t.verb} applies to ${t.from.join(", ")}`,
    );
  }
  const parts: Fragment[] = [sql`status in ${sql(statuses as string[])}`];
  if (filter.type !== undefined) parts.push(sql`type = ${filter.type}`);
  if (filter.domain !== undefined) parts.push(sql`domain = ${filter.domain}`);
  if (filter.olderThanMs !== undefined) {
    parts.push(sql`updated_at < now() - ${filter.olderThanMs} * interval '1 millisecond'`);
  }
  // The group's id computed by the very expression that grouped it (lib/queries/fingerprint.ts):
  // the filter selects exactly the tasks `seedtask failures` counted in the group.
  if (filter.group !== undefined) parts.push(sql`${groupIdSql(db)} = ${filter.group}`);
  return parts.reduce((acc, p) => sql`${acc} and ${p}`);
}

async function previewFilter(db: Db, t: Transition, filter: TaskFilter): Promise<FilterPreview> {
  const where = filterCondition(db, t, filter);
  return await guard(db, async () => {
    const table = db.sql(db.table);
    const [[count], sample] = await Promise.all([
      db.sql<{ n: number }[]>`select count(*)::int as n from ${table} where ${where}`,
      db.sql<Task[]>`select * from ${table} where ${where} order by updated_at desc limit 10`,
    ]);
    return { count: count!.n, sample: [...sample] };
  });
}

async function transitionFilter(db: Db, t: Transition, filter: TaskFilter): Promise<Task[]> {
  const where = filterCondition(db, t, filter);
  return await guard(db, () => applyTransition(db, t, where));
}

/**
 * The one statement of a transition, by ids or by filter: sets `t` on the rows `where`
 * selects and returns them as they are now, with the NOTIFY of a transition that makes tasks
 * claimable.
 */
async function applyTransition(db: Db, t: Transition, where: Fragment): Promise<Task[]> {
  const { hasLease } = await getTableInfo(db);
  const sql = db.sql;
  const rows = await sql<Task[]>`
    with changed as (
      update ${sql(db.table)} set ${t.set(db, hasLease)}
      where ${where}
      returning *
    )
    select changed.*${
    t.notify
      ? sql`, (select pg_notify(${NOTIFY_CHANNEL}, min(id::text)) from changed) as "__notified"`
      : sql``
  } from changed`;
  return rows.map(({ __notified: _, ...task }) => task as Task);
}

/**
 * Cancels tasks by id or unique prefix: created, queued and retry tasks (and running ones with
 * `force`). `where` guards the ids: a task it does not match is refused. Returns the changed
 * rows and, per task, each refused transition.
 *
 * @example
 * ```ts
 * const { changed, refused } = await cancelTasks(db, ["1a2b3c4d"]);
 * for (const r of refused) console.log(`${r.id}: ${r.message}`);
 * ```
 */
export function cancelTasks(
  db: Db,
  ids: readonly string[],
  options: { force?: boolean; where?: TaskFilter } = {},
): Promise<TransitionReport> {
  return transitionIds(db, cancelTransition(!!options.force), ids, options.where);
}

/**
 * Moves failed or cancelled tasks back to queued (attempts reset, run_after cleared), and runs
 * `retry` tasks waiting on their backoff now (run_after set to now, attempts kept). `where`
 * guards the ids: a task it does not match is refused.
 */
export function retryTasks(
  db: Db,
  ids: readonly string[],
  options: { where?: TaskFilter } = {},
): Promise<TransitionReport> {
  return transitionIds(db, RETRY, ids, options.where);
}

/** What `cancelWhere` would change: count and a sample. Changes nothing. */
export function previewCancelWhere(
  db: Db,
  filter: TaskFilter,
  options: { force?: boolean } = {},
): Promise<FilterPreview> {
  return previewFilter(db, cancelTransition(!!options.force), filter);
}

/** Cancels every task matching the filter (in a cancellable state); returns them. */
export function cancelWhere(
  db: Db,
  filter: TaskFilter,
  options: { force?: boolean } = {},
): Promise<Task[]> {
  return transitionFilter(db, cancelTransition(!!options.force), filter);
}

/** What `retryWhere` would change: count and a sample. Changes nothing. */
export function previewRetryWhere(db: Db, filter: TaskFilter): Promise<FilterPreview> {
  return previewFilter(db, RETRY, filter);
}

/**
 * Retries every task matching the filter: failed and cancelled ones by default; `retry` ones
 * (run now) when the filter's statuses name them. Returns the changed rows.
 *
 * @example
 * ```ts
 * const preview = await previewRetryWhere(db, { statuses: ["failed"], type: "graph_embed" });
 * if (preview.count < 100) await retryWhere(db, { statuses: ["failed"], type: "graph_embed" });
 * ```
 */
export function retryWhere(db: Db, filter: TaskFilter): Promise<Task[]> {
  return transitionFilter(db, RETRY, filter);
}

/**
 * Releases staged tasks by id or unique prefix: `created` becomes `queued` (claimable once a
 * run_after it has passes), with a NOTIFY. `where` guards the ids: a task it does not match
 * is refused. Returns the changed rows and each refusal.
 *
 * @example const { changed, refused } = await releaseCreatedTasks(db, ["1a2b3c4d"]);
 */
export function releaseCreatedTasks(
  db: Db,
  ids: readonly string[],
  options: { where?: TaskFilter } = {},
): Promise<TransitionReport> {
  return transitionIds(db, RELEASE, ids, options.where);
}

/** What `releaseCreatedWhere` would change: count and a sample. Changes nothing. */
export function previewReleaseWhere(db: Db, filter: TaskFilter): Promise<FilterPreview> {
  return previewFilter(db, RELEASE, filter);
}

/** Releases every `created` task matching the filter; returns the changed rows. */
export function releaseCreatedWhere(db: Db, filter: TaskFilter): Promise<Task[]> {
  return transitionFilter(db, RELEASE, filter);
}

/** A transition's three forms: by ids, what a filter would change, and by filter. */
export interface TransitionForms {
  /** By ids or unique prefixes; `where` guards them, `force` is cancel's (the others ignore it). */
  byIds(
    db: Db,
    ids: readonly string[],
    options?: { force?: boolean; where?: TaskFilter },
  ): Promise<TransitionReport>;
  /** What {@link TransitionForms.where} would change: count and a sample. */
  preview(db: Db, filter: TaskFilter, options?: { force?: boolean }): Promise<FilterPreview>;
  /** Every task the filter selects; returns the changed rows. */
  where(db: Db, filter: TaskFilter, options?: { force?: boolean }): Promise<Task[]>;
}

/**
 * The functions of each transition by its verb, for the callers that take the verb as data:
 * the cancel, retry and release commands, their HTTP routes and the console's actions.
 */
export const TRANSITIONS: Readonly<Record<Transition["verb"], TransitionForms>> = {
  cancel: { byIds: cancelTasks, preview: previewCancelWhere, where: cancelWhere },
  retry: { byIds: retryTasks, preview: previewRetryWhere, where: retryWhere },
  release: { byIds: releaseCreatedTasks, preview: previewReleaseWhere, where: releaseCreatedWhere },
};
