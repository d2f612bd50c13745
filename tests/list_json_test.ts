import assert from "node:assert/strict";
import { type ListFilter, listTasks } from "../lib/queries/list_tasks.ts";
import { invalidateCatalog } from "../lib/table/catalog.ts";
import { listTasksJson } from "../lib/queries/list_tasks_json.ts";
import { insertFixture, testSchema } from "./helpers.ts";

/** What the parse-and-serialise path prints, parsed back: the reference for the SQL path. */
async function viaJs(db: Parameters<typeof listTasks>[0], f: ListFilter) {
  return JSON.parse(JSON.stringify(await listTasks(db, f)));
}

Deno.test("listTasksJson() prints exactly what JSON.stringify(listTasks()) prints", async () => {
  await using t = await testSchema();
  await insertFixture(t); // adds priority integer and labels text[]
  const sql = t.sql;
  // The awkward values a SeedCore table can hold, in extra columns and in the contract's.
  await sql`alter table ${sql(t.table)}
    add column big bigint default 9007199254740993, add column amount numeric(12,3),
    add column local_at timestamp, add column due date, add column ratio real,
    add column ids uuid[], add column raw json`;
  await sql`update ${sql(t.table)} set
    amount = 12.5, local_at = '2026-03-01 10:20:30.123987', due = '2026-04-01', ratio = 0.1,
    ids = array[id], raw = '{"b": 1, "a": [1.50, null]}',
    labels = array['x"y', 'é\\z'], description = description || E' "quoted"\\n',
    run_after = case when status = 'created' then 'infinity'::timestamptz else run_after end,
    drift_score = case when status = 'cancelled' then 'NaN'::float8 else drift_score end
    where status <> 'completed'`;
  const filters: ListFilter[] = [
    {},
    { limit: 3 },
    { statuses: ["failed", "retry", "cancelled"], limit: 2 },
    { type: "graph_embed", sort: "created" },
    { domain: "user_1" },
    { search: "embed" },
    { statuses: ["running"] },
    { search: "no such text" },
  ];
  for (const f of filters) {
    const text = await listTasksJson(t.db, f);
    assert.ok(text !== null, "every column type of this table has a rule");
    assert.deepEqual(JSON.parse(text), await viaJs(t.db, f), JSON.stringify(f));
  }
  // Its cursors page like listTasks' own: every task once, in order.
  const all = (await listTasks(t.db, { limit: 1000 })).items.map((x) => x.id);
  const seen: string[] = [];
  let after: string | undefined;
  do {
    const page = JSON.parse((await listTasksJson(t.db, { limit: 4, after }))!);
    seen.push(...page.items.map((x: { id: string }) => x.id));
    after = page.next_cursor ?? undefined;
  } while (after);
  assert.deepEqual(seen, all);
  assert.ok(all.length > 4);
  // A NULL array element is JSON null here (postgres.js 3.4 parses it as the string "NULL").
  await sql`update ${sql(t.table)} set labels = array['a', null] where id = ${all[0]!}`;
  const first = JSON.parse((await listTasksJson(t.db, { limit: 1 }))!).items[0];
  assert.deepEqual([first.id, first.labels], [all[0], ["a", null]]);
});

Deno.test("listTasksJson() declines a column type it has no rule for", async () => {
  await using t = await testSchema();
  await insertFixture(t);
  await t.sql`alter table ${t.sql(t.table)} add column spot point default '(1,2)'`;
  invalidateCatalog(t.db); // as migrate does after changing the table
  assert.equal(await listTasksJson(t.db, {}), null);
});
