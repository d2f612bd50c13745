import { type Db, guard, quoteIdent } from "../db.ts";
import { type Catalog, getCatalog, getIndexSupport, tableInfo } from "../table/catalog.ts";
import { encodeCursor } from "../input/cursor.ts";
import {
  type ListFilter,
  type ResolvedListFilter,
  resolveListFilter,
} from "../input/list_filter.ts";
import { listTasksQuery } from "./list_tasks.ts";

/** ISO 8601 in UTC with milliseconds: what `JSON.stringify` prints for a JS Date. */
const ISO_MS = `'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'`;

/**
 * The SQL that renders column `name` of `q` as the JSON value `JSON.stringify` would print for
 * the value postgres.js parses from it, or null for a type without such a rule.
 */
function jsonValue(name: string, type: { oid: number; category: string }): string | null {
  const col = `q.${quoteIdent(name)}`;
  switch (type.oid) {
    case 1184: // timestamptz: a Date
      return `case when isfinite(${col}) then to_char(${col} at time zone 'UTC', ${ISO_MS}) end`;
    case 1114: // timestamp: a Date read as UTC (the pool's TimeZone)
      return `case when isfinite(${col}) then to_char(${col}, ${ISO_MS}) end`;
    case 1082: // date: a Date at UTC midnight
      return `case when isfinite(${col}) then to_char(${col}, 'YYYY-MM-DD') || 'T00:00:00.000Z' end`;
    case 20: // int8 and numeric: postgres.js keeps them as strings
    case 1700:
      return `${col}::text`;
    case 700: // floats: numbers, and JSON has no NaN or Infinity (JSON.stringify prints null)
    case 701:
      return `case when ${col} in ('NaN', 'Infinity', '-Infinity') then null else ${col} end`;
    case 16: // bool, int2, int4, oid, json, jsonb, text, varchar, name, uuid, and arrays of
    case 1000: // bool, int2, int4, text, varchar, uuid
    case 1005:
    case 1007:
    case 1009:
    case 1015:
    case 2951:
    case 21:
    case 23:
    case 26:
    case 114:
    case 3802:
    case 25:
    case 1043:
    case 19:
    case 2950:
      return col;
    default:
      return type.category === "E" ? col : null; // an enum prints as its label
  }
}

/** Select lists already built, per catalog read (a new read, after `migrate`, builds anew). */
const selectLists = new WeakMap<Catalog, string | null>();

/**
 * The select list that renders a row `q` of the table as JSON values (constant text: names
 * are quoted identifiers, nothing comes from the request), or null when a column's type has
 * no rule. Built once per read of the table's catalog.
 */
async function jsonSelectList(db: Db): Promise<string | null> {
  const catalog = await getCatalog(db);
  const cached = selectLists.get(catalog);
  if (cached !== undefined) return cached;
  const info = tableInfo(db, catalog);
  const parts: string[] = [];
  for (const [name, type] of info.columnTypes) {
    const value = jsonValue(name, type);
    if (value === null) {
      parts.length = 0;
      break;
    }
    parts.push(`${value} as ${quoteIdent(name)}`);
  }
  const list = parts.length === 0 ? null : parts.join(", ");
  selectLists.set(catalog, list);
  return list;
}

/**
 * One page of {@link listTasksQuery} as the JSON text of a {@link TaskPage}
 * (`{"items":[…],"next_cursor":…}`), rendered by PostgreSQL: `GET /tasks` passes it through
 * instead of parsing every row into JS objects and serialising them again, which was most of
 * the server's CPU per request. Values match what `JSON.stringify(await listTasks(…))` prints
 * (dates as ISO 8601 UTC with milliseconds, int8 and numeric as strings). Resolves to null
 * when the table has a column type without a rule here; the caller then uses listTasks().
 */
export async function listTasksJson(
  db: Db,
  filter: ListFilter | ResolvedListFilter = {},
): Promise<string | null> {
  const resolved = resolveListFilter(filter);
  const limit = resolved.limit;
  return await guard(db, async () => {
    const [list, indexes] = await Promise.all([jsonSelectList(db), getIndexSupport(db)]);
    if (list === null) return null;
    const sql = db.sql;
    // A row each (its JSON text and its cursor key), joined here: cheaper for PostgreSQL than
    // aggregating, and the client only splices strings.
    const rows = await sql<{ j: string; cursor_ts: string; id: string }[]>`
      select row_to_json(x)::text as j, q."__cursor_ts" as cursor_ts, q.id::text as id
      from (${listTasksQuery(db, resolved, { indexes })}) as q
      cross join lateral (select ${sql.unsafe(list)}) as x`;
    const more = rows.length > limit;
    const page = more ? rows.slice(0, limit) : rows;
    const last = page.at(-1);
    const next = more && last
      ? encodeCursor({ sort: resolved.sort, ts: last.cursor_ts, id: last.id })
      : null;
    return `{"items":[${page.map((r) => r.j).join(",")}],"next_cursor":${JSON.stringify(next)}}`;
  });
}
