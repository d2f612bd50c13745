/**
 * The planner uses the intended index for list, show and stats on a table of 200k rows
 * (issue 2: "no sequential scan for list/show"). Plans are read from EXPLAIN (FORMAT JSON) of
 * the exact query builders the commands run.
 */
import assert from "node:assert/strict";
import type postgres from "postgres";
import { findTaskQuery } from "../lib/queries/get_task.ts";
import { type ListFilter, listTasksQuery } from "../lib/queries/list_tasks.ts";
import { parseParamFilter, resolveListFilter } from "../lib/input/list_filter.ts";
import { queueHealthQuery } from "../lib/queries/queue_health.ts";
import { formatStatistics } from "../lib/format/stats.ts";
import { getIndexSupport } from "../lib/table/catalog.ts";
import { getTaskStatistics, statsQueries } from "../lib/queries/task_stats.ts";
import { parseTaskIdArg } from "../lib/queries/task_id.ts";
import { migrate } from "../lib/table/migrate.ts";
import { fillTasks } from "./fill.ts";
import { testDatabase } from "./helpers.ts";

const ROWS = 200_000;

interface PlanNode {
  "Node Type": string;
  "Index Name"?: string;
  "Relation Name"?: string;
  Plans?: PlanNode[];
}

function nodes(plan: PlanNode): PlanNode[] {
  return [plan, ...(plan.Plans ?? []).flatMap(nodes)];
}

async function explain(sql: postgres.Sql, query: postgres.PendingQuery<postgres.Row[]>) {
  const [row] = await sql`explain (format json) ${query}`;
  const plan = (row!["QUERY PLAN"] as Array<{ Plan: PlanNode }>)[0]!.Plan;
  const all = nodes(plan);
  return {
    seqScans: all.filter((n) => n["Node Type"] === "Seq Scan"),
    indexes: new Set(all.map((n) => n["Index Name"]).filter((x): x is string => !!x)),
    types: all.map((n) => n["Node Type"]),
    text: JSON.stringify(plan),
  };
}

Deno.test({
  name: "the planner serves list, show and stats from their indexes on 200k rows",
  sanitizeResources: false,
  async fn(t) {
    // A database of its own: VACUUM marks every page all-visible only when no other session's
    // snapshot (other tests run in parallel) could still see the inserted rows as in progress.
    await using s = await testDatabase();
    // The rows go in before the secondary indexes, which migrate then builds on the filled
    // table (as it does on any existing table): half the time of maintaining ten indexes,
    // GIN and trigram among them, row by row.
    const secondary = await s.sql<{ name: string }[]>`
      select indexrelid::regclass::text as name from pg_index
      where indrelid = ${s.table}::regclass and not indisprimary`;
    assert.ok(secondary.length > 5, "migrate made the recommended indexes");
    for (const { name } of secondary) await s.sql.unsafe(`drop index ${name}`);
    await fillTasks(s.sql, s.table, ROWS);
    const rebuilt = (await migrate(s.db)).steps.map((step) => step.description)
      .filter((d) => d.startsWith("create index "));
    assert.equal(rebuilt.length, secondary.length, rebuilt.join("\n"));
    await s.sql.unsafe(`vacuum analyze ${s.table}`);
    const [{ n }] = await s.sql`select count(*)::int as n from ${s.sql(s.table)}` as unknown as [
      { n: number },
    ];
    assert.equal(n, ROWS);
    const db = s.db;

    await t.step("list: each filter uses its own index, never a sequential scan", async () => {
      const cases: Array<[ListFilter, string]> = [
        [{}, "tasks_updated_idx"],
        [{ statuses: ["failed"] }, "tasks_status_updated_idx"],
        [{ statuses: ["running"] }, "tasks_status_updated_idx"],
        [{ statuses: ["queued", "retry", "running"] }, "tasks_status_updated_idx"],
        // a type no recent task has: the type index finds its rows directly
        [{ type: "rare_type" }, "tasks_type_updated_idx"],
        [{ domain: "user_42" }, "tasks_domain_updated_idx"],
        [{ sort: "created" }, "tasks_created_idx"],
      ];
      // A common type (1 in 12 rows) is found fastest by walking the updated_at index and
      // filtering; either way it is an index scan that stops after `limit` rows.
      const common = await explain(s.sql, listTasksQuery(db, { type: "graph_embed", limit: 50 }));
      assert.equal(common.seqScans.length, 0, common.text);
      assert.ok(
        common.indexes.has("tasks_type_updated_idx") || common.indexes.has("tasks_updated_idx"),
        common.text,
      );
      for (const [filter, index] of cases) {
        const plan = await explain(s.sql, listTasksQuery(db, { ...filter, limit: 50 }));
        assert.equal(plan.seqScans.length, 0, `${JSON.stringify(filter)}: ${plan.text}`);
        assert.ok(plan.indexes.has(index), `${JSON.stringify(filter)} uses ${index}: ${plan.text}`);
      }
      // several statuses: one limited index scan per status, never a sort of every match
      const multi = await explain(
        s.sql,
        listTasksQuery(db, { statuses: ["completed", "failed", "queued"], limit: 50 }),
      );
      const scans = multi.text.match(
        /"Index Scan","Parent Relationship":"Outer"[^}]*?"Scan Direction":"Backward","Index Name":"tasks_(status_)?updated_idx"/g,
      );
      assert.equal(scans?.length, 3, multi.text);
      assert.ok(!multi.types.includes("Bitmap Heap Scan"), multi.text);
    });

    await t.step("list --param: JSON containment is served by params_idx (GIN)", async () => {
      // graph_id 42 is in 1 row of 5000; the text form also matches the number.
      for (
        const filter of [
          { params: { graph_id: 42 } },
          { params: { graph_id: 42, k: 8 } },
          { params: { graph_id: 42 }, statuses: ["completed" as const] },
        ]
      ) {
        const plan = await explain(s.sql, listTasksQuery(db, { ...filter, limit: 50 }));
        assert.equal(plan.seqScans.length, 0, plan.text);
        assert.ok(plan.indexes.has("tasks_params_idx"), `${JSON.stringify(filter)}: ${plan.text}`);
      }
      const text = resolveListFilter({});
      const viaText = { ...text, params: parseParamFilter(["graph_id=42"]) };
      const plan = await explain(s.sql, listTasksQuery(db, viaText));
      assert.ok(plan.indexes.has("tasks_params_idx"), plan.text);
      // …and the total counts those rows through it too.
      const count = await explain(
        s.sql,
        listTasksQuery(db, viaText, { limit: null, match: true }),
      );
      assert.ok(count.indexes.has("tasks_params_idx"), count.text);
      const rows = await listTasksQuery(db, viaText);
      assert.equal(rows.length, ROWS / 5000);
    });

    await t.step("list --type a,b: one limited index scan per type", async () => {
      const plan = await explain(
        s.sql,
        listTasksQuery(db, { type: ["graph_embed", "summarize"], limit: 50 }),
      );
      assert.equal(plan.seqScans.length, 0, plan.text);
      // A common type is found fastest by walking the updated_at index (see above); either way
      // each branch is an index scan that stops after `limit` rows.
      const limited = plan.text.match(
        /"Node Type":"Limit","Parent Relationship":"Member"[^\]]*?"Node Type":"Index Scan"/g,
      );
      assert.equal(limited?.length, 2, plan.text);
      assert.ok(!plan.types.includes("Sort"), plan.text);
    });

    await t.step(
      "list: every combination of filters, sorts and pages avoids a seq scan",
      async () => {
        const page = await import("../lib/queries/list_tasks.ts").then((m) =>
          m.listTasks(db, { limit: 50 })
        );
        for (const statuses of [undefined, ["failed"], ["queued", "retry"]] as const) {
          for (const type of [undefined, "graph_embed"]) {
            for (const domain of [undefined, "user_7"]) {
              for (const search of [undefined, "task #1999"]) {
                for (const sort of ["updated", "created"] as const) {
                  const filter: ListFilter = {
                    statuses: statuses && [...statuses],
                    type,
                    domain,
                    search,
                    sort,
                    limit: 50,
                    after: sort === "updated" ? page.next_cursor! : undefined,
                  };
                  const plan = await explain(s.sql, listTasksQuery(db, filter));
                  assert.equal(plan.seqScans.length, 0, `${JSON.stringify(filter)}: ${plan.text}`);
                }
              }
            }
          }
        }
      },
    );

    await t.step("show: a prefix is a primary-key range scan", async () => {
      const [row] = await s.sql`select id from ${s.sql(s.table)} offset 12345 limit 1`;
      const id = row!.id as string;
      for (const arg of [id.slice(0, 8), id.slice(0, 4), id]) {
        const plan = await explain(s.sql, findTaskQuery(db, parseTaskIdArg(arg)));
        assert.equal(plan.seqScans.length, 0, plan.text);
        assert.ok(plan.indexes.has("tasks_pkey"), plan.text);
      }
    });

    await t.step(
      "stats on a large table: small counts exact, large ones estimated and marked",
      async () => {
        const exact = await getTaskStatistics(db, { exact: true });
        assert.equal(exact.exact, true);
        assert.equal(exact.estimates, null);
        assert.equal(exact.total, ROWS);
        const est = await getTaskStatistics(db);
        assert.equal(est.exact, false);
        // 70% completed is estimated; every other status (at most 10% = 20k) is counted
        assert.deepEqual(est.estimates!.fields, [
          "status_counts.completed",
          "total",
          "status_percentages",
          "type_counts",
          "domain_counts",
          "attempts_distribution",
          "drift_score",
        ]);
        assert.equal(est.estimates!.rows, ROWS);
        for (const s of ["created", "queued", "running", "failed", "cancelled", "retry"] as const) {
          assert.equal(est.status_counts[s], exact.status_counts[s], s);
        }
        const off = (a: number, b: number) => Math.abs(a - b) / b;
        assert.ok(off(est.status_counts.completed, exact.status_counts.completed) < 0.02);
        assert.ok(off(est.total, exact.total) < 0.02);
        // twelve types of about 8.3% each: the top ten may differ at the margin, their sizes not
        const exactTypes = (await getTaskStatistics(db, { exact: true, top: 12 })).type_counts;
        assert.equal(Object.keys(est.type_counts).length, 10);
        for (const [type, n] of Object.entries(est.type_counts)) {
          assert.ok(off(n, exactTypes[type]!) < 0.1, `type ${type}: ${n} vs ${exactTypes[type]}`);
        }
        assert.ok(Math.abs(est.drift_score.avg! - exact.drift_score.avg!) < 0.05);
        assert.deepEqual(est.recent_activity, exact.recent_activity, "ranges stay exact");
        const text = formatStatistics(est);
        assert.match(text, /^ {3}completed\s+≈\d+ {2}\(/m);
        assert.match(text, /^TOP TYPES \(estimated\)$/m);
        assert.match(
          text,
          /^≈ estimated from the planner's statistics \(200000 rows, ANALYZE of /m,
        );
      },
    );

    await t.step("stats: each statement reads the index designed for it", async () => {
      const indexes = await getIndexSupport(db);
      assert.deepEqual(indexes.missing, []);
      const q = statsQueries(db, {
        top: 10,
        days: 7,
        longRunningMs: 600_000,
        highAttempts: 3,
      }, indexes);
      const expectations: Record<string, string[]> = {
        statusCounts: ["tasks_status_idx"],
        attempts: ["tasks_attempts_idx"],
        created: ["tasks_created_idx"],
        finished: ["tasks_status_updated_idx"],
        longRunning: ["tasks_running_idx"],
        highAttempts: ["tasks_attempts_idx"],
        durations: ["tasks_status_updated_idx"],
      };
      for (const [name, indexes] of Object.entries(expectations)) {
        const plan = await explain(s.sql, q[name]!);
        assert.ok(
          indexes.some((i) => plan.indexes.has(i)),
          `${name} uses ${indexes}: ${plan.text}`,
        );
        assert.equal(plan.seqScans.length, 0, `${name}: ${plan.text}`);
      }
      // counts are index-only (no heap visits) after VACUUM
      for (const name of ["statusCounts", "attempts", "created", "finished"]) {
        const plan = await explain(s.sql, q[name]!);
        assert.ok(plan.types.includes("Index Only Scan"), `${name}: ${plan.text}`);
      }
      // --exact: every distribution from one read of the table, not one scan per distribution
      const pass = await explain(s.sql, q.distributions!);
      assert.equal(pass.seqScans.length, 1, pass.text);
      const reads = ["Seq Scan", "Index Scan", "Index Only Scan", "Bitmap Heap Scan"];
      assert.equal(pass.types.filter((n) => reads.includes(n)).length, 1, pass.text);
      const health = await explain(s.sql, queueHealthQuery(db, true, indexes));
      assert.equal(health.seqScans.length, 0, health.text);
      assert.ok(health.indexes.has("tasks_claim_idx"), health.text);
      assert.ok(health.indexes.has("tasks_running_idx"), health.text);
      assert.ok(health.indexes.has("tasks_status_updated_idx"), health.text);
    });
  },
});
