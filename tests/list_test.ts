import assert from "node:assert/strict";
import { listTasks } from "../lib/queries/list_tasks.ts";
import { FIXTURE, IDS, insertFixture, testSchema } from "./helpers.ts";
import { runMain } from "./run_main.ts";

/** Fixture ids matching a predicate, newest updated first (the default order). */
function expected(
  pred: (r: typeof FIXTURE[number]) => boolean,
  key: "updated" | "created" = "updated",
) {
  return FIXTURE.filter(pred)
    .sort((a, b) => a[key] - b[key] || (a.id < b.id ? 1 : -1))
    .map((r) => r.id);
}

Deno.test("listTasks() filters by status, type, domain and search, newest first", async () => {
  await using t = await testSchema();
  await insertFixture(t);
  const ids = async (f: Parameters<typeof listTasks>[1]) =>
    (await listTasks(t.db, f)).items.map((x) => x.id);

  assert.deepEqual(await ids({}), expected(() => true));
  assert.deepEqual(await ids({ statuses: ["failed"] }), expected((r) => r.status === "failed"));
  assert.deepEqual(
    await ids({ statuses: ["queued", "retry", "created"] }),
    expected((r) => ["queued", "retry", "created"].includes(r.status)),
  );
  assert.deepEqual(await ids({ type: "fact_search" }), expected((r) => r.type === "fact_search"));
  assert.deepEqual(await ids({ domain: "user_3" }), expected((r) => r.domain === "user_3"));
  assert.deepEqual(
    await ids({ statuses: ["completed", "failed"], type: "graph_embed", domain: "user_2" }),
    [IDS.failedRecent, IDS.completedRecent2],
  );
  // search looks at description and error, case-insensitively; % and _ are literal
  assert.deepEqual(await ids({ search: "TRANSIENT" }), [IDS.retryLater, IDS.retryReady]);
  assert.deepEqual(await ids({ search: "rag" }), expected((r) => /rag/i.test(r.description)));
  assert.deepEqual(await ids({ search: "100%" }), []);
  assert.deepEqual(await ids({ search: "max_attempts" }), []);
  assert.deepEqual(await ids({ sort: "created" }), expected(() => true, "created"));
  assert.deepEqual(await ids({ statuses: ["cancelled"], limit: 1 }), [IDS.cancelled1]);
});

Deno.test("listTasks() pages with next_cursor: every task exactly once, in order", async () => {
  await using t = await testSchema();
  await insertFixture(t);
  // Ties on updated_at must not lose or repeat rows: one update gives six tasks the same
  // timestamp (the trigger stamps them all with the statement's now(), with microseconds).
  await t.sql`update ${t.sql(t.table)} set description = description
    where status in ('cancelled', 'created', 'retry')`;
  for (const sort of ["updated", "created"] as const) {
    for (const statuses of [undefined, ["completed", "failed", "cancelled"] as const]) {
      const all = await listTasks(t.db, { sort, statuses: statuses && [...statuses], limit: 1000 });
      const seen: string[] = [];
      let after: string | undefined;
      let pages = 0;
      do {
        const page = await listTasks(t.db, {
          sort,
          statuses: statuses && [...statuses],
          limit: 4,
          after,
        });
        seen.push(...page.items.map((x) => x.id));
        after = page.next_cursor ?? undefined;
        pages++;
      } while (after);
      assert.deepEqual(seen, all.items.map((x) => x.id), `sort ${sort} ${statuses}`);
      assert.equal(pages, Math.ceil(all.items.length / 4));
    }
  }
});

Deno.test("seedtask list prints the table with short ids and the count", async () => {
  await using t = await testSchema();
  await insertFixture(t);
  const r = await runMain([...t.args, "list", "--status", "running"]);
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trimEnd().split("\n");
  // Piped: every column at full width, UTC times with the age.
  assert.match(
    lines[0]!,
    /^ID\s+Status\s+Type\s+Domain\s+Attempts\s+Updated \(UTC\)\s+Description$/,
  );
  assert.match(
    lines[1]!,
    /^cccc1000\s+running\s+graph_embed\s+user_1\s+1\s+20\d\d-\d\d-\d\d [\d:]+ \(\d+[sm] ago\)\s+running embed$/,
  );
  assert.match(lines[2]!, /^cccc3000\s+running\s+fact_search\s+user_3\s+2\s+.*stuck search$/);
  assert.match(lines[3]!, /^cccc2000\s+running\s+graph_rag_query\s+user_2\s+1\s+.*long rag query$/);
  assert.equal(lines.at(-1), "Found 3 tasks");
  assert.doesNotMatch(r.stdout, /🏃/, "no emoji when stdout is not a terminal");

  const full = await runMain([
    ...t.args,
    "list",
    "--status",
    "running",
    "--full-id",
    "--limit",
    "1",
  ]);
  assert.match(full.stdout, new RegExp(`^${IDS.runningHealthy}\\s+running`, "m"));
  assert.match(full.stdout, /Showing 1 of 3 tasks\nMore: add --after \S+\n$/);

  const none = await runMain([...t.args, "list", "--type", "nope"]);
  assert.equal(none.code, 0);
  assert.equal(none.stdout, "No tasks found matching the criteria.\n");
});

Deno.test("seedtask list --json, --format ndjson and csv print the same tasks", async () => {
  await using t = await testSchema();
  await insertFixture(t);
  const args = [...t.args, "list", "--status", "failed,completed", "--domain", "user_2"];
  const json = await runMain([...args, "--json"]);
  assert.equal(json.code, 0, json.stderr);
  const doc = JSON.parse(json.stdout);
  assert.deepEqual(Object.keys(doc), [
    "items",
    "next_cursor",
    "total",
    "total_exact",
    "total_note",
  ]);
  assert.equal(doc.next_cursor, null);
  assert.equal(doc.total, 2);
  assert.deepEqual(doc.items.map((x: { id: string }) => x.id), [
    IDS.failedRecent,
    IDS.completedRecent2,
  ]);
  const failed = doc.items[0];
  assert.equal(failed.error, "Max attempts (3) exceeded: connection reset by organism");
  assert.deepEqual(failed.params, { description: "broken embed", n: 3 });
  assert.equal(failed.priority, 4, "extra columns are part of the row");
  assert.match(failed.created_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  // The lib returns the same rows
  const lib = await listTasks(t.db, { statuses: ["failed", "completed"], domain: "user_2" });
  const { total: _, total_exact: _e, total_note: _n, ...page } = doc;
  assert.deepEqual(page, JSON.parse(JSON.stringify(lib)));

  const nd = await runMain([...args, "--format", "ndjson"]);
  const lines = nd.stdout.trimEnd().split("\n").map((l) => JSON.parse(l));
  assert.deepEqual(lines, doc.items);

  const csv = await runMain([...args, "--format", "csv"]);
  const rows = csv.stdout.trimEnd().split("\n");
  // The same columns as ndjson: the table's, extra ones included.
  assert.equal(rows[0], Object.keys(lines[0]).join(","));
  assert.equal(
    rows[0],
    "id,status,type,description,domain,drift_score,attempts,locked_by,locked_at,run_after,params,result,error,created_at,updated_at,owner_id,lease_expires_at,last_heartbeat,priority,labels",
  );
  assert.equal(rows.length, 3);
  assert.match(
    rows[2]!,
    /^dddd2000-0000-4000-8000-00000000000a,completed,graph_embed,done embed two,user_2,0.1,3,disp-a,/,
  );
  assert.match(rows[2]!, /,"\{""vectors"":5\}",/);
});

Deno.test("seedtask list --limit 0 streams every row as ndjson", async () => {
  await using t = await testSchema();
  await t.sql`insert into ${t.sql(t.table)} (type, status, description)
    select 'bulk', 'queued', 'row ' || i from generate_series(1, 2500) i`;
  const r = await runMain([
    ...t.args,
    "list",
    "--limit",
    "0",
    "--format",
    "ndjson",
    "--type",
    "bulk",
  ]);
  assert.equal(r.code, 0, r.stderr);
  const rows = r.stdout.trimEnd().split("\n").map((l) => JSON.parse(l));
  assert.equal(rows.length, 2500);
  assert.equal(new Set(rows.map((x) => x.id)).size, 2500);

  const bad = await runMain([...t.args, "list", "--limit", "0"]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /^error: --limit 0 \(everything\) needs --format ndjson or csv/);
});

Deno.test("seedtask list rejects bad input with exit 2 and a one-line error", async () => {
  await using t = await testSchema();
  const cases: Array<[string[], RegExp]> = [
    [["--status", "done"], /unknown status "done": expected one of created, queued/],
    [["--limit", "abc"], /invalid --limit "abc"/],
    [["--limit", "0.5"], /invalid --limit "0\.5"/],
    [["--limit", "20000"], /invalid --limit "20000": expected a whole number from 0 to 10000/],
    [["--sort", "name"], /invalid --sort "name"/],
    [["--format", "xml"], /invalid format "xml"/],
    [["--json", "--format", "csv"], /--json conflicts with --format csv/],
    [["--after", "bm90IGEgY3Vyc29y"], /invalid cursor/],
  ];
  for (const [args, message] of cases) {
    const r = await runMain([...t.args, "list", ...args]);
    assert.equal(r.code, 2, `${args}: ${r.stderr}`);
    assert.equal(r.stdout, "");
    assert.match(r.stderr, message);
    assert.equal(r.stderr.trimEnd().split("\n").length, 1, r.stderr);
  }
  // A cursor made for one sort cannot be used with the other.
  await t.sql`insert into ${t.sql(t.table)} (type) values ('a'), ('b')`;
  const page = await listTasks(t.db, { limit: 1 });
  const r = await runMain([...t.args, "list", "--sort", "created", "--after", page.next_cursor!]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /cursor was made for --sort updated, not --sort created/);
});
