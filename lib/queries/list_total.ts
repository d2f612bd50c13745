import { type Db, guard } from "../db.ts";
import { getIndexSupport } from "../table/catalog.ts";
import {
  type ListFilter,
  type ResolvedListFilter,
  resolveListFilter,
} from "../input/list_filter.ts";
import { planOf } from "./estimate_counts.ts";
import { listTasks, listTasksQuery, type TaskPage } from "./list_tasks.ts";

/** How many tasks match a list filter, and how sure that number is. */
export interface ListTotal {
  /** Every match, the cursor and page size aside. */
  total: number;
  /** Counted (true) or the planner's estimate (false). */
  exact: boolean;
  /** Why the total is an estimate (null when counted). */
  note: string | null;
}

/**
 * At most this many matches are ever counted by default: the count reads the first
 * `COUNT_CAP + 1` matches and stops, so it is exact below the cap and bounded above it.
 */
export const COUNT_CAP = 10_000;

/**
 * The most the bounded count may cost, in the planner's cost units (a page read in sequence is
 * 1): about what reading 10,000 rows through an index costs — a few milliseconds on a warm cache.
 */
export const MAX_COUNT_COST = 10_000;

/**
 * How many tasks match `filter` — counted when that is cheap, otherwise the planner's estimate,
 * so a `list` on a 10M-row table answers in milliseconds. `{ exact: true }` always counts
 * every match (a full index or table scan on a large table); `maxCost` replaces
 * {@link MAX_COUNT_COST}.
 *
 * The choice reads the plan of the matching rows (`EXPLAIN`, no execution): when the planner
 * expects at most twice {@link COUNT_CAP} matches and reading the first `COUNT_CAP + 1` of them
 * costs at most {@link MAX_COUNT_COST}, at most that many are counted — exact below the cap,
 * otherwise the planner's estimate, or the count that stopped at the cap when the estimate is
 * below it (the note says which). When the planner expects more, the
 * total is its row estimate without a count: counting 200,000 matches through an index takes
 * hundreds of milliseconds on a 10M-row table, however cheap the plan looks.
 *
 * @example
 * const { total, exact } = await countListTotal(db, { statuses: ["failed"] });
 * console.log(`${exact ? "" : "~"}${total} failed tasks`);
 */
export async function countListTotal(
  db: Db,
  filter: ListFilter | ResolvedListFilter = {},
  options: { exact?: boolean; maxCost?: number } = {},
): Promise<ListTotal> {
  const maxCost = options.maxCost ?? MAX_COUNT_COST;
  const all = { ...resolveListFilter(filter), after: undefined };
  return await guard(db, async () => {
    const sql = db.sql;
    const indexes = await getIndexSupport(db);
    const matching = (limit: number | null) =>
      listTasksQuery(db, all, { limit, match: true, indexes });
    const count = async (limit: number | null) => {
      const [row] = await sql<{ n: string }[]>`
        select count(*) as n from (${matching(limit)}) as t`;
      return Number(row!.n);
    };
    if (options.exact) return { total: await count(null), exact: true, note: null };

    const plan = await planOf(db, matching(null));
    const rows = Math.max(0, Math.round(plan["Plan Rows"]));
    const cost = plan["Total Cost"];
    // Reading only the first COUNT_CAP + 1 matches costs about this fraction of reading all.
    const share = Math.min(1, (COUNT_CAP + 1) / Math.max(1, rows));
    const boundedCost = plan["Startup Cost"] + (cost - plan["Startup Cost"]) * share;
    if (rows <= COUNT_CAP * 2 && boundedCost <= maxCost) {
      const n = await count(COUNT_CAP + 1);
      if (n <= COUNT_CAP) return { total: n, exact: true, note: null };
      // The planner's estimate when it is above the count; otherwise the count itself, which
      // stopped at the cap (the planner guessed low: a trigram or JSON match it has no
      // statistics for).
      const more = `more than ${COUNT_CAP.toLocaleString("en-US")} match`;
      return rows >= n
        ? { total: rows, exact: false, note: `${more}; the planner's estimate` }
        : { total: n, exact: false, note: `${more}; counting stopped there` };
    }
    return { total: rows, exact: false, note: "the planner's estimate" };
  });
}

/**
 * The total beside a page that `listTasks()` returned for `filter`: a first page with no next
 * page holds every match, so it is its own exact count; otherwise {@link countListTotal}.
 */
export async function pageTotal(
  db: Db,
  filter: ListFilter | ResolvedListFilter,
  page: { items: readonly unknown[]; next_cursor: string | null },
  options: { exact?: boolean; maxCost?: number } = {},
): Promise<ListTotal> {
  const resolved = resolveListFilter(filter);
  if (isWholeMatch(resolved, page)) return { total: page.items.length, exact: true, note: null };
  return totalBesidePage(page, await countListTotal(db, resolved, options), resolved);
}

/** A first page with no next page: it holds every match. */
function isWholeMatch(
  filter: ResolvedListFilter,
  page: { items: readonly unknown[]; next_cursor: string | null },
): boolean {
  return !filter.after && page.next_cursor === null;
}

/**
 * The total to show beside `page`, given what {@link countListTotal} said for its filter: the
 * page itself when it holds every match, and never an estimate below what the pages already
 * showed (that would be wrong for sure).
 */
export function totalBesidePage(
  page: { items: readonly unknown[]; next_cursor: string | null },
  counted: ListTotal,
  filter: ListFilter | ResolvedListFilter,
): ListTotal {
  if (isWholeMatch(resolveListFilter(filter), page)) {
    return { total: page.items.length, exact: true, note: null };
  }
  return counted.exact
    ? counted
    : { ...counted, total: Math.max(counted.total, page.items.length + 1) };
}

/**
 * A page of `listTasks()` and its total (see {@link countListTotal}), read side by side on two
 * connections of the pool: what `seedtask list` shows. When the total has to be counted, the
 * count and the page cost about the same (a `--search` on a 10M-row table reads the same
 * trigram posting lists for both), so running them together halves the wait; when the page
 * holds every match, the page is the total.
 *
 * @example
 * const { page, total } = await listTasksWithTotal(db, { statuses: ["failed"] });
 * console.log(`${page.items.length} of ${total.exact ? "" : "~"}${total.total}`);
 */
export async function listTasksWithTotal(
  db: Db,
  filter: ListFilter | ResolvedListFilter = {},
  options: { exact?: boolean; maxCost?: number } = {},
): Promise<{ page: TaskPage; total: ListTotal }> {
  const resolved = resolveListFilter(filter); // every value checked before anything connects
  const [page, counted] = await Promise.all([
    listTasks(db, resolved),
    countListTotal(db, resolved, options),
  ]);
  return { page, total: totalBesidePage(page, counted, resolved) };
}
