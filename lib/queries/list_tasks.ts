import type postgres from "postgres";
import { type Db, guard, mapDbError } from "../db.ts";
import { ALL_RECOMMENDED, getIndexSupport, type IndexSupport } from "../table/catalog.ts";
import { SEARCH_TEXT, type Task } from "../table/contract.ts";
import { decodeCursor, encodeCursor } from "../input/cursor.ts";
import {
  type ListFilter,
  type ResolvedListFilter,
  resolveListFilter,
} from "../input/list_filter.ts";

export type { ListFilter, ResolvedListFilter };

type Fragment = postgres.PendingQuery<postgres.Row[]>;
export { encodeCursor };

/** One page of tasks; `next_cursor` is null on the last page. */
export interface TaskPage {
  /** The tasks of the page, in the filter's sort order. */
  items: Task[];
  /** Pass as `after` to get the next page; null on the last page. */
  next_cursor: string | null;
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
  given: ListFilter | ResolvedListFilter,
  options: { limit?: number | null; indexes?: IndexSupport; match?: boolean } = {},
): postgres.PendingQuery<postgres.Row[]> {
  const sql = db.sql;
  const filter = resolveListFilter(given);
  const sort = filter.sort;
  const sortColumn = sort === "created" ? "created_at" : "updated_at";
  const key = sql(sortColumn);
  const limit = options.limit === undefined ? filter.limit + 1 : options.limit;
  const cursor = filter.after ? decodeCursor(filter.after, sort) : undefined;
  const table = sql(db.table);
  const indexes = options.indexes ?? ALL_RECOMMENDED;

  // The list a union may split on: several values of a column that leads an index followed by
  // the sort key (status first, as it always was).
  const lists: Array<[string, readonly string[] | undefined]> = [
    ["status", filter.statuses],
    ["type", filter.types],
    ["domain", filter.domains],
  ];
  const split = limit === null
    ? undefined
    : lists.find(([column, values]) =>
      values !== undefined && values.length > 1 && indexes.leads(column, sortColumn)
    );

  const conditions: Fragment[] = [];
  for (const [column, values] of lists) {
    if (values === undefined || values.length === 0 || column === split?.[0]) continue;
    conditions.push(
      values.length === 1
        ? sql`${sql(column)} = ${values[0]!}`
        : sql`${sql(column)} in ${sql(values as string[])}`,
    );
  }
  for (const match of filter.params ?? []) {
    // Containment of a one-key object: the form the jsonb_path_ops GIN index (params_idx)
    // serves. ::text first: a parameter the server types as jsonb is JSON-encoded again by
    // postgres.js (the object's text would arrive as one JSON string).
    const forms = match.values.map((v) =>
      sql`params @> ${JSON.stringify({ [match.key]: v })}::text::jsonb`
    );
    conditions.push(
      forms.length === 1 ? forms[0]! : sql`(${forms.reduce((acc, f) => sql`${acc} or ${f}`)})`,
    );
  }
  if (filter.search !== undefined && filter.search !== "") {
    // The expression the trigram index is built on (contract.ts), so that it serves this.
    conditions.push(sql`${sql.unsafe(SEARCH_TEXT)} ilike ${`%${escapeLike(filter.search)}%`}`);
  }
  if (cursor) {
    // ::text first: postgres.js would otherwise serialise a timestamptz parameter through a
    // JS Date and drop the microseconds the cursor carries.
    conditions.push(sql`(${key}, id) < (${cursor.ts}::text::timestamptz, ${cursor.id}::uuid)`);
  }
  const where = (extra?: Fragment) => {
    const all = extra ? [extra, ...conditions] : conditions;
    if (all.length === 0) return sql``;
    return sql`where ${all.reduce((acc, c, i) => i === 0 ? c : sql`${acc} and ${c}`)}`;
  };
  const cursorColumn =
    sql`to_char(${key} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as "__cursor_ts"`;
  if (options.match) {
    // The matching rows for a count: no order, no columns.
    return sql`select 1 from ${table} ${where()}${limit === null ? sql`` : sql` limit ${limit}`}`;
  }
  if (limit === null) {
    // Streaming everything: one scan, one sort.
    return sql`
      select *, ${cursorColumn} from ${table}
      ${where()}
      order by ${key} desc, id desc`;
  }
  const page = (cond: Fragment | undefined) =>
    sql`select * from ${table} ${where(cond)} order by ${key} desc, id desc limit ${limit}`;
  // Each value of the split list: an ordered index range scan stopped at `limit`; the union
  // holds at most values × limit rows, so the final sort is tiny. (PostgreSQL 15 does not turn
  // a plain UNION ALL of these scans into a Merge Append, so the inner limits are what keep it
  // cheap.) Without an index led by (column, sort key) each branch would be a scan of its own,
  // so several values are then one scan with one top-N sort.
  const rows = split
    ? split[1]!.map((v) => sql`(${page(sql`${sql(split[0])} = ${v}`)})`)
      .reduce((acc, q) => sql`${acc} union all ${q}`)
    : page(undefined);
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
export async function listTasks(
  db: Db,
  filter: ListFilter | ResolvedListFilter = {},
): Promise<TaskPage> {
  // Every value is checked before anything connects.
  const resolved = resolveListFilter(filter);
  const limit = resolved.limit;
  return await guard(db, async () => {
    const indexes = await getIndexSupport(db);
    const rows = await listTasksQuery(db, resolved, { indexes });
    const more = rows.length > limit;
    const page = more ? rows.slice(0, limit) : [...rows];
    const last = page.at(-1);
    return {
      items: page.map(toTask),
      next_cursor: more && last
        ? encodeCursor({
          sort: resolved.sort,
          ts: last.__cursor_ts as string,
          id: last.id as string,
        })
        : null,
    };
  });
}

/**
 * How many tasks match `filter`, its cursor and page size aside: the `total` of
 * `GET /tasks?total=true`.
 *
 * @example const failed = await countTasks(db, { statuses: ["failed"] });
 */
export async function countTasks(
  db: Db,
  filter: ListFilter | ResolvedListFilter = {},
): Promise<number> {
  const all = { ...resolveListFilter(filter), after: undefined };
  return await guard(db, async () => {
    const [row] = await db.sql<{ n: string }[]>`
      select count(*) as n from (${listTasksQuery(db, all, { limit: null, match: true })}) as t`;
    return Number(row!.n);
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
  filter: Omit<ListFilter, "limit"> | ResolvedListFilter,
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
