/**
 * list-total suite: what `seedtask list` pays for saying how many tasks match — the page
 * alone, the page with its default total (counted when cheap, else the planner's estimate), and
 * the page with `--exact` (every match counted) — in process, at each table size of the run
 * (1M quick; 10M full), on the filled table with the recommended indexes.
 *
 * Target: the page with its default total at p50 < 20 ms for every filter at 1M and 10M rows.
 * `--exact` has no target: it is reported beside it, for what it costs.
 */
import { countListTotal, listTasksWithTotal } from "../lib/queries/list_total.ts";
import { listTasks } from "../lib/queries/list_tasks.ts";
import type { ListFilter } from "../lib/input/list_filter.ts";
import type { Db } from "../lib/db.ts";
import { int, mdTable, ms, repeat, rowsLabel, say, summarize, type Summary } from "./common.ts";
import type { BenchContext } from "./context.ts";
import { openDb } from "./data.ts";
import type { SuiteReport, Target } from "./results_md.ts";

/** The default total's p50 must stay under this, at every size. */
const TARGET_MS = 20;

/** The filters an operator types most, from broad to narrow. */
const FILTERS: Array<[string, ListFilter]> = [
  ["(none)", {}],
  ["--status failed", { statuses: ["failed"] }],
  ["--status queued", { statuses: ["queued"] }],
  ["--status failed,retry", { statuses: ["failed", "retry"] }],
  ["--type graph_embed", { type: "graph_embed" }],
  ["--type graph_embed,summarize", { type: ["graph_embed", "summarize"] }],
  ["--domain user_42", { domain: "user_42" }],
  ["--param graph_id=42", { params: { graph_id: 42 } }],
  ["--status running", { statuses: ["running"] }],
  ['--search "upstream error 42"', { search: "upstream error 42" }],
];

interface Row {
  name: string;
  page: Summary;
  total: Summary;
  exact: Summary;
  /** What the default total said: the number, and whether it was counted. */
  shown: string;
  counted: number;
}

async function measure(
  db: Db,
  filter: ListFilter,
  ctx: BenchContext,
  exactBudgetMs: number,
): Promise<Omit<Row, "name">> {
  const p = ctx.profile;
  const opts = { reps: p.inProcessReps, budgetMs: p.inProcessBudgetMs / 4, minReps: 5, warmup: 3 };
  const page = summarize(await repeat(() => listTasks(db, filter), opts));
  const total = summarize(await repeat(() => listTasksWithTotal(db, filter), opts));
  // --exact reads every match: a handful of runs, bounded by the budget.
  const exact = summarize(
    await repeat(
      () => listTasksWithTotal(db, filter, { exact: true }),
      { reps: 20, budgetMs: exactBudgetMs, minReps: 2, warmup: 1 },
    ),
  );
  const { total: t } = await listTasksWithTotal(db, filter);
  const counted = (await countListTotal(db, filter, { exact: true })).total;
  return {
    page,
    total,
    exact,
    shown: `${t.exact ? "" : "~"}${int(t.total)}${t.exact ? " (counted)" : " (estimate)"}`,
    counted,
  };
}

export async function listTotalSuite(ctx: BenchContext): Promise<SuiteReport> {
  const targets: Target[] = [];
  const sections: string[] = [];
  for (const rows of [1_000_000, 10_000_000]) {
    if (!ctx.profile.sizes.includes(rows)) {
      targets.push({
        name: `list with its default total (counted when cheap, else the planner's ` +
          `estimate marked ~) p50 < ${TARGET_MS} ms for every filter at ${
            rowsLabel(rows)
          } rows (listTasksWithTotal in process on a warm pool, p50 per filter)`,
        met: null,
        detail: `not measured in the ${ctx.mode} run (sizes ${
          ctx.profile.sizes.map(rowsLabel).join(", ")
        })`,
      });
    }
  }
  for (const rows of ctx.profile.sizes) {
    const filled = await ctx.filled(rows);
    say(`\nlist with a total @ ${rowsLabel(rows)} rows (${filled.table})`);
    const db = openDb(ctx.dsn, filled.table);
    const results: Row[] = [];
    try {
      for (const [name, filter] of FILTERS) {
        const r = {
          name,
          ...(await measure(db, filter, ctx, rows >= 10_000_000 ? 20_000 : 10_000)),
        };
        results.push(r);
        say(
          `  ${name}: page ${ms(r.page.p50)}, with total ${ms(r.total.p50)} → ${r.shown}, ` +
            `--exact ${ms(r.exact.p50)} (${int(r.counted)})`,
        );
      }
    } finally {
      await db.close();
    }
    const worst = results.reduce((a, b) => (b.total.p50 > a.total.p50 ? b : a));
    const worstExact = results.reduce((a, b) => (b.exact.p50 > a.exact.p50 ? b : a));
    targets.push({
      name: `list with its default total (counted when cheap, else the planner's estimate ` +
        `marked ~) p50 < ${TARGET_MS} ms for every filter at ${
          rowsLabel(rows)
        } rows (listTasksWithTotal in process on a warm pool, p50 per filter)`,
      met: worst.total.p50 < TARGET_MS,
      detail: `slowest ${worst.name} at ${ms(worst.total.p50)} (page alone ${
        ms(worst.page.p50)
      }); --exact costs up to ${ms(worstExact.exact.p50)} (${worstExact.name}, no target)`,
    });
    sections.push(
      `### ${int(rows)} rows`,
      "",
      mdTable(
        [
          "filter",
          "page p50",
          "page + total p50",
          "p95",
          "total shown",
          "--exact p50",
          "exact count",
          "runs",
        ],
        results.map((r) => [
          r.name,
          ms(r.page.p50),
          ms(r.total.p50),
          ms(r.total.p95),
          r.shown,
          ms(r.exact.p50),
          int(r.counted),
          `${r.total.n} / ${r.exact.n}`,
        ]),
      ),
      "",
    );
  }
  const body = [
    "In process (`listTasksWithTotal()`: the page and the total read side by side on two " +
    "connections, what `seedtask list`, `list --json` and `GET /tasks?total=auto` run), " +
    'on the filled table with the recommended indexes, VACUUM ANALYZEd. "page + total" is the ' +
    "default: when the planner expects at most 20,000 matches and reading the first 10,001 is " +
    "cheap (`MAX_COUNT_COST`), at most 10,001 are counted (exact below 10,000); otherwise the " +
    "planner's row estimate, " +
    'shown as "~". `--exact` counts every match (an index or table scan of all of them); it ' +
    "has no target and is shown for what it costs.",
    "",
    ...sections,
  ].join("\n");
  return { suite: "list_total", title: "list with a total", body, targets };
}
