/**
 * Queue pauses: `seedtask pause`, `resume` and `paused`, `POST /pause`, `POST /resume` and
 * `GET /paused`. A pause is a row of `seedtask_pauses` (created by `migrate`); the claim query
 * skips the tasks it covers (see {@link notPausedCondition}), so every seedtask dispatcher
 * honours a pause from its next claim on, which is at most one poll interval away.
 */
import type postgres from "postgres";
import { type Db, guard } from "../db.ts";
import { SeedtaskError } from "../errors.ts";
import { getCatalog } from "../table/catalog.ts";
import { claimablePredicate } from "../table/contract.ts";
import { NOTIFY_CHANNEL } from "./enqueue_task.ts";

type Fragment = postgres.PendingQuery<postgres.Row[]>;

/** The most waiting tasks counted per pause (a paused type may hold millions). */
export const MAX_WAITING_COUNT = 100_000;

/** One pause: a task type, in every domain or in one. */
export interface QueuePause {
  /** The paused task type. */
  type: string;
  /** null: every domain of the type. */
  domain: string | null;
  /** Why, as the one who paused said. */
  reason: string | null;
  /** Who paused it: `user@host` from the CLI, or what `--by` / `by` said. */
  paused_by: string;
  /** When it was first paused (pausing again keeps it). */
  paused_at: Date;
  /** Claimable tasks (queued or retry) it holds back, counted up to {@link MAX_WAITING_COUNT}. */
  waiting?: number;
  /** More than {@link MAX_WAITING_COUNT} wait: `waiting` is the cap. */
  waiting_capped?: boolean;
}

/** What to pause or resume. */
export interface PauseTarget {
  /** The task type. */
  type: string;
  /** One domain only; every domain when absent. */
  domain?: string;
}

/** A pause to record. */
export interface PauseRequest extends PauseTarget {
  /** Why (shown by `seedtask paused`, stats and check). */
  reason?: string;
  /** Who pauses (the CLI passes `user@host`). */
  by: string;
}

/** The pause table is missing: `migrate` has not run since pauses came to seedtask. */
export class PausesNotMigratedError extends SeedtaskError {
  /** A server-side state, not the client's mistake. */
  override readonly httpStatus: number = 503;
  /** For the pause table next to `db`'s task table. */
  constructor(db: Db) {
    super(
      "pauses_not_migrated",
      `The pause table seedtask_pauses does not exist next to "${db.table}"`,
      { hint: "run `seedtask migrate` to create it" },
    );
  }
}

/**
 * The pause table's name as SQL text (regclass text: quoted, qualified when not on the search
 * path), or null when it does not exist. Read from the cached catalog.
 */
export async function pausesTable(db: Db): Promise<string | null> {
  return (await getCatalog(db)).pausesTable;
}

async function requirePauses(db: Db): Promise<string> {
  const table = await pausesTable(db);
  if (table === null) throw new PausesNotMigratedError(db);
  return table;
}

/**
 * The condition "not paused" for a row of the task table known as `alias` in the query: no
 * pause of this table covers its type (in every domain, or in its domain). For the claim
 * query: an anti-join on a table of a few rows, evaluated only for the rows the claim index
 * hands out in ready order, so the claim still reads the first entries of that index.
 */
export function notPausedCondition(db: Db, pauses: string, alias: string): Fragment {
  const sql = db.sql;
  const row = sql(alias);
  return sql`not exists (
    select 1 from ${sql.unsafe(pauses)} p
    where p.table_name = ${db.tableName} and p.type = ${row}.type
      and (p.domain is null or p.domain = ${row}.domain))`;
}

/**
 * The same condition for a known list of pauses, as literals of the query: for the health
 * queries, which read the pauses first and add it only when there are some, so that an
 * unpaused queue keeps its index-only counts.
 */
export function notPausedByList(db: Db, pauses: readonly QueuePause[]): Fragment {
  const sql = db.sql;
  if (pauses.length === 0) return sql`true`;
  const covered = pauses.map((p) =>
    // `is not distinct from`: a task without a domain is not in the paused domain (with `=`,
    // its NULL would make the whole condition NULL, and leave it out as if paused).
    p.domain === null
      ? sql`type = ${p.type}`
      : sql`(type = ${p.type} and domain is not distinct from ${p.domain})`
  ).reduce((acc, c) => sql`${acc} or ${c}`);
  return sql`not (${covered})`;
}

/**
 * Pauses a task type (in every domain, or in one): no seedtask dispatcher claims its tasks
 * until {@link resumeQueue}. Pausing what is already paused updates the reason and who, and
 * keeps when. Returns the pause and whether it is new.
 *
 * @example
 * await pauseQueue(db, { type: "graph_embed", reason: "embedding API down", by: "ops@host" });
 */
export async function pauseQueue(
  db: Db,
  request: PauseRequest,
): Promise<{ pause: QueuePause; created: boolean }> {
  return await guard(db, async () => {
    const sql = db.sql;
    const table = sql.unsafe(await requirePauses(db));
    const conflict = request.domain === undefined
      ? sql`(table_name, type) where domain is null`
      : sql`(table_name, type, domain) where domain is not null`;
    const [row] = await sql<(QueuePause & { created: boolean })[]>`
      insert into ${table} as p (table_name, type, domain, reason, paused_by)
      values (${db.tableName}, ${request.type}, ${request.domain ?? null},
        ${request.reason ?? null}, ${request.by})
      on conflict ${conflict} do update
        set reason = coalesce(excluded.reason, p.reason), paused_by = excluded.paused_by
      returning type, domain, reason, paused_by, paused_at, (xmax = 0) as created`;
    const { created, ...pause } = row!;
    return { pause, created };
  });
}

/**
 * Resumes a task type: without a domain, every pause of the type (in every domain and in
 * each one); with one, that domain's pause. Returns the pauses removed (none when nothing was
 * paused). Listening dispatchers are woken at once (NOTIFY); the others claim the work at
 * their next poll.
 *
 * @example const resumed = await resumeQueue(db, { type: "graph_embed" });
 */
export async function resumeQueue(db: Db, target: PauseTarget): Promise<QueuePause[]> {
  return await guard(db, async () => {
    const sql = db.sql;
    const table = sql.unsafe(await requirePauses(db));
    const rows = await sql<(QueuePause & { __notified: unknown })[]>`
      with removed as (
        delete from ${table}
        where table_name = ${db.tableName} and type = ${target.type}
          ${target.domain === undefined ? sql`` : sql`and domain = ${target.domain}`}
        returning type, domain, reason, paused_by, paused_at
      )
      select removed.*, (select pg_notify(${NOTIFY_CHANNEL}, '')) as "__notified"
      from removed`;
    return rows.map(({ __notified: _, ...p }) => p as unknown as QueuePause)
      .sort((a, b) => (a.domain ?? "").localeCompare(b.domain ?? ""));
  });
}

/**
 * The pauses of the table, oldest first; with `waiting`, how many claimable tasks each holds
 * back (up to {@link MAX_WAITING_COUNT}). A table whose pause table was never created has
 * none.
 *
 * @example for (const p of await listPauses(db)) console.log(p.type, p.paused_by);
 */
export async function listPauses(
  db: Db,
  options: { waiting?: boolean } = {},
): Promise<QueuePause[]> {
  return await guard(db, async () => {
    const name = await pausesTable(db);
    if (name === null) return [];
    const sql = db.sql;
    const table = sql.unsafe(name);
    const covers = sql`t.type = p.type and (p.domain is null or t.domain = p.domain)`;
    const waiting = options.waiting ? sql`, ${waitingCount(db, covers)} as waiting` : sql``;
    const rows = await sql<QueuePause[]>`
      select type, domain, reason, paused_by, paused_at${waiting}
      from ${table} p where table_name = ${db.tableName}
      order by paused_at, type, domain nulls first`;
    return rows.map((r) => {
      if (r.waiting === undefined) return { ...r };
      const { waiting, capped } = cap(r.waiting);
      return { ...r, waiting, waiting_capped: capped };
    });
  });
}

/**
 * How many claimable tasks (queued or retry) a pause of `target` would hold back, counted up
 * to {@link MAX_WAITING_COUNT} (`capped` when more wait): what a confirmation says before
 * pausing.
 *
 * @example const { waiting } = await countWaiting(db, { type: "graph_embed" });
 */
export async function countWaiting(
  db: Db,
  target: PauseTarget,
): Promise<{ waiting: number; capped: boolean }> {
  return await guard(db, async () => {
    const sql = db.sql;
    const domain = target.domain === undefined ? sql`` : sql`and t.domain = ${target.domain}`;
    const [row] = await sql<{ n: number }[]>`
      select ${waitingCount(db, sql`t.type = ${target.type} ${domain}`)} as n`;
    return cap(row!.n);
  });
}

/**
 * The claimable tasks `t` of the table that `covers` selects, counted up to one more than
 * {@link MAX_WAITING_COUNT} (a paused type may hold millions): a scalar subquery.
 */
function waitingCount(db: Db, covers: Fragment): Fragment {
  const sql = db.sql;
  return sql`(select count(*)::int from (
    select 1 from ${sql(db.table)} t
    where ${covers} and ${sql.unsafe(claimablePredicate("t.status"))}
    limit ${MAX_WAITING_COUNT + 1}) w)`;
}

/** A count from {@link waitingCount}, capped at {@link MAX_WAITING_COUNT}. */
function cap(n: number): { waiting: number; capped: boolean } {
  return { waiting: Math.min(n, MAX_WAITING_COUNT), capped: n > MAX_WAITING_COUNT };
}
