import type postgres from "postgres";
import { type Db, quoteQualified } from "../db.ts";

/** Below this many rows stats counts every row; above it, large counts come from the planner. */
export const ESTIMATE_MIN_ROWS = 200_000;
/** A status estimated to hold at least this many tasks is estimated, not counted. */
export const ESTIMATE_MIN_STATUS = 50_000;

/** A node of a query plan as `EXPLAIN (FORMAT JSON)` gives it: the planner's rows and costs. */
export interface PlanNode {
  "Node Type": string;
  "Startup Cost": number;
  "Total Cost": number;
  "Plan Rows": number;
  Plans?: PlanNode[];
}

/** The top node of `query`'s plan: `EXPLAIN (FORMAT JSON)`, the query is not run. */
export async function planOf(
  db: Db,
  query: postgres.PendingQuery<postgres.Row[]>,
): Promise<PlanNode> {
  const [explained] = await db.sql<{ "QUERY PLAN": Array<{ Plan: PlanNode }> | string }[]>`
    explain (format json) ${query}`;
  const doc = explained!["QUERY PLAN"];
  return (typeof doc === "string" ? JSON.parse(doc) : doc)[0].Plan;
}

/** The planner's view of one column: its most common values and their frequencies. */
export interface ColumnEstimate {
  values: string[];
  freqs: number[];
}

/** What ANALYZE recorded about the task table, scaled to its current size. */
export interface TableEstimate {
  /** Estimated live rows now: reltuples per page times the table's current pages. */
  rows: number;
  analyzedAt: Date | null;
  columns: Map<string, ColumnEstimate>;
}

/**
 * Reads the planner's statistics for the task table (pg_class, pg_stats). Null when the table
 * was never analyzed. The row count is scaled like the planner scales it — reltuples per page
 * times the pages the table has now — so growth since the last ANALYZE is seen.
 */
export async function readTableEstimate(db: Db): Promise<TableEstimate | null> {
  const sql = db.sql;
  const rel = quoteQualified(db.table);
  // One statement: the size, and the statistics of the columns estimated.
  const [size] = await sql<
    {
      reltuples: number;
      relpages: number;
      pages: number;
      analyzed_at: Date | null;
      stats: { name: string; vals: string[] | null; freqs: number[] | null }[] | null;
    }[]
  >`
    select c.reltuples::float8 as reltuples, c.relpages::int as relpages,
      (pg_relation_size(c.oid) / current_setting('block_size')::int)::int as pages,
      greatest(s.last_analyze, s.last_autoanalyze) as analyzed_at,
      (select json_agg(json_build_object('name', p.attname::text,
          'vals', p.most_common_vals::text::text[], 'freqs', p.most_common_freqs::float8[]))
        from pg_stats p
        where p.schemaname = n.nspname and p.tablename = c.relname
          and p.attname in ('status', 'type', 'domain', 'attempts')) as stats
    from pg_class c join pg_namespace n on n.oid = c.relnamespace
      left join pg_stat_user_tables s on s.relid = c.oid
    where c.oid = to_regclass(${rel})`;
  if (!size || size.reltuples < 0) return null;
  const rows = size.relpages > 0 ? (size.reltuples / size.relpages) * size.pages : size.reltuples;
  const columns = new Map<string, ColumnEstimate>();
  for (const s of size.stats ?? []) {
    if (s.vals && s.freqs) columns.set(s.name, { values: s.vals, freqs: s.freqs });
  }
  return { rows: Math.round(rows), analyzedAt: size.analyzed_at, columns };
}

/** The most common values of a column as estimated counts, most frequent first. */
export function estimatedCounts(
  column: ColumnEstimate | undefined,
  rows: number,
  top = Number.POSITIVE_INFINITY,
): Array<[string, number]> {
  if (!column) return [];
  return column.values
    .map((v, i): [string, number] => [v, Math.round((column.freqs[i] ?? 0) * rows)])
    .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
    .slice(0, top);
}
