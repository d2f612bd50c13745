/**
 * The read commands on a SeedCore table that never ran `seedtask migrate` (issue 10, item 8):
 * SeedCore's own schema and indexes only. They must give the same answers as on the migrated
 * table, in plans that scale without seedtask's indexes (no per-day or per-status loop that
 * walks a whole status), and a statement timeout there must point at `seedtask migrate`.
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import { checkHealth } from "../lib/queries/check_health.ts";
import type { Db } from "../lib/db.ts";
import { runDoctor } from "../lib/table/doctor.ts";
import { type ListFilter, listTasks } from "../lib/queries/list_tasks.ts";
import { migrate } from "../lib/table/migrate.ts";
import { getTaskStatistics } from "../lib/queries/task_stats.ts";
import { fillTasks } from "./fill.ts";
import { serverTest, testDatabase, testSchema } from "./helpers.ts";
import { runMain } from "./run_main.ts";
import { createSeedCoreTable } from "./seedcore_schema.ts";

const ROWS = 20_000;

/**
 * A fresh schema holding SeedCore's table (its indexes only), filled and analyzed, in a database
 * of its own: its CREATE INDEX CONCURRENTLY and VACUUM wait for no other test's transaction.
 */
async function seedcoreSchema(rows = ROWS) {
  const t = await testDatabase({ migrated: false });
  await createSeedCoreTable(t.sql, t.schema);
  await fillTasks(t.sql, t.table, rows); // ends with VACUUM ANALYZE
  return t;
}

const LIST_FILTERS: ListFilter[] = [
  {},
  { sort: "created" },
  { statuses: ["queued"] },
  { statuses: ["running"] },
  { statuses: ["completed", "failed", "cancelled"] },
  { statuses: ["failed", "retry"], sort: "created" },
  { type: "graph_embed" },
  { domain: "user_42" },
  { search: "upstream error 42" },
  { statuses: ["failed", "retry"], domain: "user_49", search: "error" },
];

/** Everything the read commands report, as of `now`. */
async function readAll(db: Db, now: Date) {
  const lists: string[][] = [];
  for (const filter of LIST_FILTERS) {
    const page = await listTasks(db, { ...filter, limit: 20 });
    const next = await listTasks(db, { ...filter, limit: 20, after: page.next_cursor! });
    lists.push([...page.items, ...next.items].map((t) => t.id));
  }
  const stats = await getTaskStatistics(db, { now, exact: true });
  // A float sum depends on the order rows are added in, which differs between plans.
  stats.drift_score.avg = Number(stats.drift_score.avg!.toFixed(9));
  return {
    stats,
    check: await checkHealth(db, { queued: { warn: 100, crit: 5000 } }, { now }),
    lists,
  };
}

Deno.test("the read commands give the same answers on SeedCore's indexes as after migrate", async () => {
  await using t = await seedcoreSchema();
  const now = new Date();
  const before = await readAll(t.db, now);
  const doctor = await runDoctor(t.db);
  assert.ok(
    doctor.checks.some((c) => c.name === "index.tasks_status_updated_idx" && !c.ok),
    "doctor reports the missing indexes",
  );

  // Spot checks against plain SQL, so the comparison below cannot agree on a wrong answer.
  const s = before.stats;
  assert.equal(s.total, ROWS);
  const [direct] = await t.sql`
    select count(*) filter (where status = 'completed')::int as completed,
           count(*) filter (where status = 'failed')::int as failed
    from ${t.sql(t.table)}
    where updated_at >= ${s.recent_activity.at(-1)!.date}::date and updated_at <= ${now}`;
  assert.ok(direct!.completed > 0 && direct!.failed > 0, "the week has completions and failures");
  assert.equal(s.recent_activity.reduce((n, d) => n + d.completed_count, 0), direct!.completed);
  assert.equal(s.recent_activity.reduce((n, d) => n + d.failed_count, 0), direct!.failed);
  assert.ok(s.throughput.completed_last_day > 0 && s.queue.ready > 0);
  before.lists.forEach((ids, i) => assert.ok(ids.length > 0, JSON.stringify(LIST_FILTERS[i])));

  const plan = await migrate(t.db);
  assert.ok(plan.steps.some((st) => /tasks_status_updated_idx/.test(st.sql)));
  const after = await readAll(t.db, now);
  assert.deepEqual(before.stats, after.stats);
  assert.deepEqual(before.check, after.check);
  assert.deepEqual(before.lists, after.lists);
});

interface PlanNode {
  "Node Type": string;
  "Relation Name"?: string;
  "Index Name"?: string;
  "Index Cond"?: string;
  "Subplan Name"?: string;
  Output?: string[];
  Plans?: PlanNode[];
}

/** Every node of the plan, with whether it runs once per row of an outer node (a SubPlan). */
function walk(node: PlanNode, inLoop = false): Array<{ node: PlanNode; inLoop: boolean }> {
  const loop = inLoop || (node["Subplan Name"] ?? "").startsWith("SubPlan");
  return [{ node, inLoop: loop }, ...(node.Plans ?? []).flatMap((p) => walk(p, loop))];
}

/**
 * Runs `fn` on a Db whose driver reports every statement, and returns EXPLAIN (FORMAT JSON) of
 * each statement that reads the task table — the plans the command really gets.
 */
async function capturePlans(
  base: Db,
  fn: (db: Db) => Promise<unknown>,
): Promise<Array<{ query: string; nodes: Array<{ node: PlanNode; inLoop: boolean }> }>> {
  const captured: { query: string; params: unknown[] }[] = [];
  const sql = postgres(base.config.dsn, {
    max: 2,
    onnotice: () => {},
    connection: { application_name: "seedtask", TimeZone: "UTC" },
    debug: (_c, query, params) => captured.push({ query, params: params as unknown[] }),
  });
  try {
    await fn({ ...base, sql, cache: new Map() });
    const [schema, name] = base.table.split(".") as [string, string];
    const plans = [];
    for (const c of captured) {
      if (!c.query.includes(`"${schema}"."${name}"`) || /^\s*explain/i.test(c.query)) continue;
      const [row] = await sql.unsafe(
        `explain (verbose, format json) ${c.query}`,
        c.params as never[],
      );
      const plan = (row!["QUERY PLAN"] as Array<{ Plan: PlanNode }>)[0]!.Plan;
      plans.push({ query: c.query.replace(/\s+/g, " ").trim(), nodes: walk(plan) });
    }
    return plans;
  } finally {
    await sql.end();
  }
}

/** A read of the table (a Bitmap Index Scan is part of the Bitmap Heap Scan above it). */
const isScan = (n: PlanNode) => n["Relation Name"] === "tasks";

Deno.test("on SeedCore's indexes no read command loops over ranges its indexes do not serve", async () => {
  await using t = await seedcoreSchema();
  const commands: Record<string, (db: Db) => Promise<unknown>> = {
    "stats": (db) => getTaskStatistics(db),
    "stats --exact": (db) => getTaskStatistics(db, { exact: true }),
    "check": (db) => checkHealth(db, {}),
    "list": (db) => listTasks(db),
    "list --status completed": (db) => listTasks(db, { statuses: ["completed"] }),
    "list --status completed,failed,cancelled": (db) =>
      listTasks(db, { statuses: ["completed", "failed", "cancelled"] }),
    "list --status failed,retry --sort created": (db) =>
      listTasks(db, { statuses: ["failed", "retry"], sort: "created" }),
  };
  for (const [name, fn] of Object.entries(commands)) {
    const plans = await capturePlans(t.db, fn);
    assert.ok(plans.length > 0, name);
    for (const p of plans) {
      // A scan repeated per row of an outer node (per day, per status) is only cheap when the
      // range it counts is the index's own condition — like the days of created_at on
      // SeedCore's (created_at) index. Walking (status) and filtering updated_at per day is
      // what took 31.9 s at 10M rows.
      for (const { node } of p.nodes.filter((x) => x.inLoop && isScan(x.node))) {
        assert.ok(
          /Index (Only )?Scan/.test(node["Node Type"]) &&
            /_at >= /.test(node["Index Cond"] ?? ""),
          `${name}: a per-row ${node["Node Type"]} on ${
            node["Index Name"] ?? node["Relation Name"]
          } (${node["Index Cond"] ?? "no index condition"}) in: ${p.query}`,
        );
      }
    }
    const scans = (p: (typeof plans)[number]) => p.nodes.filter((x) => isScan(x.node)).length;
    if (name === "check") {
      // ready + oldest ready in one pass, queued, stuck, completed + failed in one pass
      const health = plans.find((p) => /as stuck/.test(p.query))!;
      assert.ok(scans(health) <= 4, `${name} reads the table ${scans(health)} times`);
    }
    if (name.startsWith("list")) {
      // several statuses: one scan and a top-N sort, not a scan per status
      assert.equal(plans.length, 1, name);
      assert.equal(scans(plans[0]!), 1, `${name}: ${plans[0]!.query}`);
      // the cursor column is formatted for the page's rows, not for every row before the sort
      for (const { node } of plans[0]!.nodes.filter((x) => isScan(x.node))) {
        assert.ok(!node.Output?.some((o) => /to_char/.test(o)), `${name}: ${node.Output}`);
      }
    }
  }
});

serverTest(
  "a statement timeout on a table without the recommended indexes says to run seedtask migrate",
  "holds a lock in a second session while the CLI waits on it",
  async () => {
    await using seedcore = await seedcoreSchema(1000);
    await using migrated = await testSchema();
    const [row] = await seedcore.sql`select id::text as id from ${seedcore.sql(seedcore.table)}
      limit 1`;
    const id = (row!.id as string).slice(0, 8);
    for (const t of [seedcore, migrated]) {
      // Another session holds the table: every statement that reads it waits until the
      // statement timeout cancels it — a timeout that does not depend on the machine's speed.
      const holder = await t.sql.reserve();
      try {
        await holder`begin`;
        await holder`lock table ${holder(t.table)} in access exclusive mode`;
        // list reads the table's indexes before its query; show learns them after the timeout
        for (const args of [["list"], ["show", id], ["stats", "--json"], ["doctor"]]) {
          const r = await runMain([...t.args, "--statement-timeout", "300ms", ...args]);
          assert.equal(r.code, 1, `${args[0]}: ${r.stderr}`);
          assert.equal(r.stdout, "", args[0]);
          const line = r.stderr.trimEnd();
          assert.doesNotMatch(line, /\n/, "one line");
          assert.match(line, /^error: query cancelled after the statement timeout \(300ms\) — /);
          if (t === seedcore) {
            assert.match(
              line,
              /table "st_\w+\.tasks" lacks \d+ of seedtask's recommended indexes .*run `seedtask migrate` to add them, or raise the timeout with --statement-timeout$/,
              args[0],
            );
          } else {
            assert.match(line, /— raise it with --statement-timeout$/, args[0]);
          }
        }
      } finally {
        await holder`rollback`;
        holder.release();
      }
    }
  },
);
