import type postgres from "postgres";
import { type Db, guard, mapDbError } from "../db.ts";
import { InvalidInputError, OutOfRangeError } from "../errors.ts";
import { ALL_RECOMMENDED, getIndexSupport, type IndexSupport } from "../table/catalog.ts";
import { SEARCH_TEXT, type Task, type TaskStatus } from "../table/contract.ts";
import { checkFilterText } from "../input/task_input.ts";

/** Filters of `seedtask list`, `GET /tasks` and `TaskTableHelper.listTasks`. */
export interface ListFilter {
  /** One or several statuses (any of them). */
  statuses?: readonly TaskStatus[];
  type?: string;
  domain?: string;
  /** Case-insensitive text in description or error. */
  search?: string;
  /** Page size, 1..MAX_LIST_LIMIT. Default 50. */
  limit?: number;
  /** Newest first by updated_at (default) or created_at. */
  sort?: "updated" | "created";
  /** `next_cursor` of the previous page. */
  after?: string;
}

/** One page of tasks; `next_cursor` is null on the last page. */
export interface TaskPage {
  items: Task[];
  next_cursor: string | null;
}

export const DEFAULT_LIST_LIMIT = 50;
export const MAX_LIST_LIMIT = 10_000;

export interface Cursor {
  sort: "updated" | "created";
  /** The sort key with microseconds, as PostgreSQL printed it (JS Dates keep only ms). */
  ts: string;
  id: string;
}

/** @internal The opaque `next_cursor` for a page ending at `c`. */
export function encodeCursor(c: Cursor): string {
  const json = JSON.stringify([c.sort === "created" ? "c" : "u", c.ts, c.id]);
  return btoa(json).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

function decodeCursor(text: string, sort: "updated" | "created"): Cursor {
  const bad = () =>
    new InvalidInputError(
      `Invalid cursor "${text.slice(0, 40)}": pass the next_cursor of a previous page`,
    );
  let parsed: unknown;
  try {
    parsed = JSON.parse(atob(text.replaceAll("-", "+").replaceAll("_", "/")));
  } catch {
    throw bad();
  }
  if (
    !Array.isArray(parsed) || parsed.length !== 3 || (parsed[0] !== "u" && parsed[0] !== "c") ||
    typeof parsed[1] !== "string" || !/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/.test(parsed[1]) ||
    typeof parsed[2] !== "string" ||
    !/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(parsed[2])
  ) throw bad();
  const cursorSort = parsed[0] === "c" ? "created" : "updated";
  if (cursorSort !== sort) {
    throw new InvalidInputError(
      `Cursor was made for --sort ${cursorSort}, not --sort ${sort}`,
    );
  }
  return { sort, ts: parsed[1], id: parsed[2] };
}

/** Validates a page size. */
export function checkLimit(limit: number): number {
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIST_LIMIT) {
    throw new OutOfRangeError(
      `Invalid limit "${limit}": expected a whole number from 1 to ${MAX_LIST_LIMIT}`,
    );
  }
  return limit;
}

function escapeLike(text: string): string {
  return text.replace(/[\\%_]/g, (c) => `\\${c}`);
}

/**
 * Builds the list query without running it (tests EXPLAIN exactly this query).
 *
 * Index use: every filter has a btree led by its column and followed by the sort key
 * (`status|type|domain, updated_at, id`), so a single filter is an ordered index range scan
 * that stops after `limit` rows. Several statuses become a UNION ALL of one such limited scan
 * per status, so no plan ever sorts every matching row.
 * `--search` matches the expression indexed by the trigram GIN index.
 * Keyset pagination compares `(sort_key, id)` to the cursor, so a page costs the same at any
 * depth.
 *
 * `options.indexes` says which indexes the table has (default: the recommended ones). Without
 * an index led by `(status, sort key)` — a table that never ran `migrate` — each per-status
 * branch would be a scan of its own, so several statuses are one scan with one top-N sort.
 */
export function listTasksQuery(
  db: Db,
  filter: ListFilter,
  options: { limit?: number | null; indexes?: IndexSupport } = {},
): postgres.PendingQuery<postgres.Row[]> {
  const sql = db.sql;
  const sort = filter.sort ?? "updated";
  const key = sql(sort === "created" ? "created_at" : "updated_at");
  const limit = options.limit === undefined
    ? (filter.limit ?? DEFAULT_LIST_LIMIT) + 1
    : options.limit;
  checkFilterText(filter);
  const cursor = filter.after ? decodeCursor(filter.after, sort) : undefined;

  const conditions: postgres.PendingQuery<postgres.Row[]>[] = [];
  if (filter.type !== undefined) conditions.push(sql`type = ${filter.type}`);
  if (filter.domain !== undefined) conditions.push(sql`domain = ${filter.domain}`);
  if (filter.search !== undefined && filter.search !== "") {
    // The expression the trigram index is built on (contract.ts), so that it serves this.
    conditions.push(sql`${sql.unsafe(SEARCH_TEXT)} ilike ${`%${escapeLike(filter.search)}%`}`);
  }
  if (cursor) {
    // ::text first: postgres.js would otherwise serialise a timestamptz parameter through a
    // JS Date and drop the microseconds the cursor carries.
    conditions.push(sql`(${key}, id) < (${cursor.ts}::text::timestamptz, ${cursor.id}::uuid)`);
  }
  const where = (extra?: postgres.PendingQuery<postgres.Row[]>) => {
    const all = extra ? [extra, ...conditions] : conditions;
    if (all.length === 0) return sql``;
    return sql`where ${all.reduce((acc, c, i) => i === 0 ? c : sql`${acc} and ${c}`)}`;
  };
  const cursorColumn =
    sql`to_char(${key} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as "__cursor_ts"`;
  const table = sql(db.table);
  const statuses = filter.statuses ?? [];
  const statusCond = statuses.length === 0
    ? undefined
    : statuses.length === 1
    ? sql`status = ${statuses[0]!}`
    : sql`status in ${sql(statuses as string[])}`;
  if (limit === null) {
    // Streaming everything: one scan, one sort.
    return sql`
      select *, ${cursorColumn} from ${table}
      ${where(statusCond)}
      order by ${key} desc, id desc`;
  }
  const indexes = options.indexes ?? ALL_RECOMMENDED;
  const page = (cond: postgres.PendingQuery<postgres.Row[]> | undefined) =>
    sql`select * from ${table} ${where(cond)} order by ${key} desc, id desc limit ${limit}`;
  // Each status: an ordered index range scan stopped at `limit`; the union holds at most
  // statuses × limit rows, so the final sort is tiny. (PostgreSQL 15 does not turn a plain
  // UNION ALL of these scans into a Merge Append, so the inner limits are what keep it cheap.)
  // Without an index led by (status, sort key) each branch would be a scan of its own, so
  // several statuses are then one scan with one top-N sort.
  const rows = statuses.length > 1 &&
      indexes.leads("status", sort === "created" ? "created_at" : "updated_at")
    ? statuses.map((s) => sql`(${page(sql`status = ${s}`)})`)
      .reduce((acc, q) => sql`${acc} union all ${q}`)
    : page(statusCond);
  // The cursor column is computed for the page only: in the select list of a query that
  // scans and sorts (no index for the order), it would format every row before the top-N
  // sort — four fifths of the time of a 10M-row `list` on a table without the indexes.
  return sql`
    select *, ${cursorColumn} from (${rows}) as t
    order by ${key} desc, id desc
    limit ${limit}`;
}

function toTask(row: postgres.Row): Task {
  const { __cursor_ts: _, ...task } = row;
  return task as Task;
}

/**
 * Lists tasks newest first with keyset pagination.
 *
 * @example
 * const page = await listTasks(db, { statuses: ["failed"], limit: 20 });
 * const next = await listTasks(db, { statuses: ["failed"], limit: 20, after: page.next_cursor! });
 */
export async function listTasks(db: Db, filter: ListFilter = {}): Promise<TaskPage> {
  const limit = checkLimit(filter.limit ?? DEFAULT_LIST_LIMIT);
  // A bad cursor is a usage error, reported before anything connects.
  if (filter.after) decodeCursor(filter.after, filter.sort ?? "updated");
  return await guard(db, async () => {
    const indexes = await getIndexSupport(db);
    const rows = await listTasksQuery(db, { ...filter, limit }, { indexes });
    const more = rows.length > limit;
    const page = more ? rows.slice(0, limit) : [...rows];
    const last = page.at(-1);
    return {
      items: page.map(toTask),
      next_cursor: more && last
        ? encodeCursor({
          sort: filter.sort ?? "updated",
          ts: last.__cursor_ts as string,
          id: last.id as string,
        })
        : null,
    };
  });
}

/**
 * Streams every matching task (no limit) in batches through a server-side cursor, so memory
 * stays bounded whatever the table size. Used by `list --format ndjson|csv --limit 0`.
 *
 * An export of millions of rows legitimately runs longer than the statement timeout that
 * guards interactive queries, so the cursor runs in its own transaction on a reserved
 * connection with `SET LOCAL statement_timeout = 0` (like pg_dump).
 */
export async function* streamTasks(
  db: Db,
  filter: Omit<ListFilter, "limit">,
  batchSize = 1000,
): AsyncGenerator<Task[]> {
  const query = listTasksQuery(db, filter, { limit: null }); // validates before connecting
  let conn: postgres.ReservedSql;
  try {
    conn = await db.sql.reserve();
  } catch (err) {
    throw mapDbError(err, db);
  }
  let finished = false;
  try {
    await conn`begin read only`;
    await conn`set local statement_timeout = 0`;
    const iterator = conn`${query}`.cursor(batchSize)[Symbol.asyncIterator]();
    while (true) {
      const next = await iterator.next();
      if (next.done) break;
      yield next.value.map(toTask);
    }
    finished = true;
  } catch (err) {
    throw mapDbError(err, db);
  } finally {
    await conn.unsafe(finished ? "commit" : "rollback").catch(() => {});
    conn.release();
  }
}
