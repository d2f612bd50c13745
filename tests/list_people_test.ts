/**
 * `seedtask list` for people (issue 12): how many match, the error inline, a table that fits
 * the terminal, lists for every filter, a params filter, and exports that are whole.
 */
import assert from "node:assert/strict";
import { displayWidth } from "../lib/format/table.ts";
import { formatTaskTable } from "../lib/format/tasks.ts";
import { listTasks } from "../lib/queries/list_tasks.ts";
import {
  COUNT_CAP,
  countListTotal,
  listTasksWithTotal,
  pageTotal,
} from "../lib/queries/list_total.ts";
import { createApp } from "../server/app.ts";
import { EMBEDDED, IDS, insertFixture, testSchema } from "./helpers.ts";
import { runMain } from "./run_main.ts";

/** 348 tasks of two types over three domains, 87 of them failed (the issue's numbers). */
async function fill348(t: Awaited<ReturnType<typeof testSchema>>) {
  await t.sql`insert into ${t.sql(t.table)} (type, status, domain, description, error, params)
    select case when i % 2 = 0 then 'graph_embed' else 'fact_search' end,
      (case when i <= 87 then 'failed' else 'completed' end)::text::${
    t.sql(`${t.schema}.taskstatus`)
  },
      'dom_' || (i % 3), 'task ' || i,
      case when i <= 87 then 'boom ' || i || E'\n  at line two' end,
      jsonb_build_object('order_id', i, 'ref', 'r' || i)
    from generate_series(1, 348) i`;
}

Deno.test("seedtask list says how many match, not the page size", async () => {
  await using t = await testSchema();
  await fill348(t);
  const r = await runMain([...t.args, "list", "--status", "failed"]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /\nShowing 50 of 87 tasks\nMore: add --after \S+\n$/);

  const json = await runMain([...t.args, "list", "--status", "failed", "--json"]);
  const doc = JSON.parse(json.stdout);
  assert.deepEqual(Object.keys(doc), [
    "items",
    "next_cursor",
    "total",
    "total_exact",
    "total_note",
  ]);
  assert.equal(doc.items.length, 50);
  assert.equal(doc.total, 87);
  assert.equal(doc.total_exact, true);
  assert.equal(doc.total_note, null);

  // The same total over HTTP with total=auto; total=true still counts every match.
  const app = createApp({ db: t.db });
  const auto = await (await app.request("/tasks?status=failed&total=auto")).json();
  assert.deepEqual(
    [auto.total, auto.total_exact, auto.total_note, auto.items.length],
    [87, true, null, 50],
  );
  const exact = await (await app.request("/tasks?status=failed&total=true&limit=5")).json();
  assert.deepEqual([exact.total, exact.total_exact], [87, true]);
  const none = await (await app.request("/tasks?status=failed")).json();
  assert.equal("total" in none, false);
  const bad = await app.request("/tasks?total=maybe");
  assert.equal(bad.status, 400);
  assert.match((await bad.json()).error.message, /Invalid total "maybe"/);
});

Deno.test("countListTotal() estimates when counting is not cheap, and counts with exact", async () => {
  await using t = await testSchema();
  await t.sql`insert into ${t.sql(t.table)} (type, status)
    select 'bulk', 'queued' from generate_series(1, 30000)`;
  await t.sql`insert into ${t.sql(t.table)} (type, status)
    select 'small', 'queued' from generate_series(1, 4000)`;
  await t.sql`analyze ${t.sql(t.table)}`;
  // A few thousand matches, cheap to read: counted.
  assert.deepEqual(await countListTotal(t.db, { type: "small" }), {
    total: 4000,
    exact: true,
    note: null,
  });
  // More than the count cap expected: the planner's estimate, marked as such, without a count
  // (however cheap the plan, counting every match is not bounded).
  const many = await countListTotal(t.db, { type: "bulk" });
  assert.equal(many.exact, false);
  assert.match(many.note!, /estimate/);
  assert.ok(Math.abs(many.total - 30000) < 3000, `estimate ${many.total}`);
  assert.ok(COUNT_CAP < 30000);
  // When no count is cheap enough, the planner's estimate too.
  const est = await countListTotal(t.db, { type: "small" }, { maxCost: 0 });
  assert.equal(est.exact, false);
  assert.match(est.note!, /estimate/);
  assert.ok(Math.abs(est.total - 4000) < 800, `estimate ${est.total}`);
  assert.deepEqual(await countListTotal(t.db, { type: "bulk" }, { exact: true, maxCost: 0 }), {
    total: 30000,
    exact: true,
    note: null,
  });
  // A few matches among many rows: counted up to the cap, exact.
  await t.sql`update ${t.sql(t.table)} set domain = 'rare'
    where id in (select id from ${t.sql(t.table)} limit 7)`;
  await t.sql`analyze ${t.sql(t.table)}`;
  const rare = await countListTotal(t.db, { domain: "rare" }, { maxCost: 1000 });
  assert.deepEqual(rare, { total: 7, exact: true, note: null });
  assert.ok(COUNT_CAP >= 1000);

  // A last page without a cursor is its own count: no query needed, always exact.
  const page = await listTasks(t.db, { domain: "rare" });
  assert.deepEqual(await pageTotal(t.db, { domain: "rare" }, page, { maxCost: 0 }), {
    total: 7,
    exact: true,
    note: null,
  });
  // An estimate never claims fewer than the page already shows.
  const first = await listTasks(t.db, { type: "bulk", limit: 10 });
  const total = await pageTotal(t.db, { type: "bulk", limit: 10 }, first, { maxCost: 0 });
  assert.ok(total.total > 10);
});

Deno.test("a count stopped at the cap is not called the planner's estimate", async () => {
  await using t = await testSchema();
  // Not analyzed yet: the planner guesses JSON containment at a fixed 0.1% of the rows (12
  // here), so the capped count runs, and stops at 10,001 of the 12,000 matches.
  await t.sql`insert into ${t.sql(t.table)} (type, status, params)
    select 'bulk', 'queued', '{"k": 1}' from generate_series(1, 12000)`;
  const total = await countListTotal(t.db, { params: { k: 1 } });
  assert.equal(total.exact, false);
  assert.equal(total.total, COUNT_CAP + 1);
  assert.equal(total.note, "more than 10,000 match; counting stopped there");
  assert.equal((await countListTotal(t.db, { params: { k: 1 } }, { exact: true })).total, 12000);
});

Deno.test("listTasksWithTotal() reads the page and its total side by side, with the same answers", async () => {
  await using t = await testSchema();
  await t.sql`insert into ${t.sql(t.table)} (type, status, error)
    select 'bulk', 'failed', 'upstream error ' || i % 7 from generate_series(1, 3000) as i`;
  await t.sql`analyze ${t.sql(t.table)}`;
  const filter = { search: "upstream error 3", limit: 20 };
  // the same page and total as listTasks() then pageTotal()
  const page = await listTasks(t.db, filter);
  const both = await listTasksWithTotal(t.db, filter);
  assert.deepEqual(both.page, page);
  assert.deepEqual(both.total, await pageTotal(t.db, filter, page));
  assert.deepEqual(both.total, { total: 429, exact: true, note: null });
  // a page that holds every match is its own count
  const whole = await listTasksWithTotal(t.db, { search: "upstream error 3", limit: 500 });
  assert.deepEqual(whole.total, { total: 429, exact: true, note: null });

  // Side by side: with the table locked, both statements wait at once, on two connections.
  // (PGlite, the fallback without a server, is one session: no lock waits to see there.)
  if (EMBEDDED) return;
  const holder = await t.sql.reserve();
  try {
    await holder`begin`;
    await holder`lock table ${t.sql(t.table)} in access exclusive mode`;
    const pending = listTasksWithTotal(t.db, filter);
    const waiting = async () => {
      const [r] = await holder<{ n: number }[]>`
        select count(*)::int as n from pg_stat_activity
        where pid <> pg_backend_pid() and wait_event_type = 'Lock'
          and query like ${`%${t.schema}%`}`;
      return r!.n;
    };
    let n = 0;
    for (let i = 0; i < 200 && n < 2; i++) {
      n = await waiting();
      if (n < 2) await new Promise((r) => setTimeout(r, 25));
    }
    await holder`commit`;
    assert.equal(n, 2, "the page and the count wait on the lock together");
    assert.deepEqual((await pending).total, { total: 429, exact: true, note: null });
  } finally {
    holder.release();
  }
});

Deno.test("the list footer marks an estimate with ~ and says why", () => {
  const task = {
    id: IDS.failedRecent,
    status: "failed",
    type: "graph_embed",
    description: "d",
    domain: null,
    drift_score: 0,
    attempts: 1,
    locked_by: null,
    locked_at: null,
    run_after: null,
    params: {},
    result: null,
    error: "boom",
    created_at: new Date(0),
    updated_at: new Date(0),
  } as const;
  const text = formatTaskTable([task], {
    width: 80,
    total: { total: 9_812_345, exact: false, note: "the planner's estimate" },
    nextCursor: "abc",
  });
  assert.match(
    text,
    /\nShowing 1 of ~9\.8M tasks \(estimated: the planner's estimate; --exact counts them\)\nMore: add --after abc\n$/,
  );
  const small = formatTaskTable([task], {
    total: { total: 12_345, exact: false, note: "x" },
  });
  assert.match(small, /Showing 1 of ~12,000 tasks/);
  assert.match(
    formatTaskTable([task], { total: { total: 1, exact: true, note: null } }),
    /\nFound 1 task\n$/,
  );
});

Deno.test("seedtask list shows why tasks failed, fitted to the terminal", async () => {
  await using t = await testSchema();
  await insertFixture(t);
  // A second line of error, without the trigger moving updated_at.
  await t.sql.begin(async (tx) => {
    await tx`set local session_replication_role = replica`;
    await tx`update ${tx(t.table)} set error = error || E'\n  at stack line'
      where id = ${IDS.failedRecent}`;
  });
  const narrow = await runMain([...t.args, "list"], { env: { COLUMNS: "80" } });
  assert.equal(narrow.code, 0, narrow.stderr);
  const lines = narrow.stdout.trimEnd().split("\n");
  for (const line of lines.slice(0, -2)) {
    assert.ok(displayWidth(line) <= 80, `${displayWidth(line)} columns: ${line}`);
  }
  assert.match(lines[0]!, /^ID\s+Status\s+Type\s+Att\s+Updated\s+Error$/);
  const failed = lines.find((l) => l.startsWith(IDS.failedRecent.slice(0, 8)))!;
  assert.match(failed, /failed .* 15m ago\s+Max attempts \(3\) exceeded: /);
  assert.doesNotMatch(narrow.stdout, /stack line/, "only the first line of the error");
  const retry = lines.find((l) => l.startsWith(IDS.retryReady.slice(0, 8)))!;
  assert.match(retry, /transient 503$/);
  assert.equal(lines.at(-1), "(cut to fit 80 columns; --wide shows every column in full)");
  const cancelled = lines.find((l) => l.startsWith(IDS.cancelled1.slice(0, 8)))!;
  assert.doesNotMatch(cancelled, /error|Max/);

  // A wide terminal keeps description and domain.
  const wide = await runMain([...t.args, "list"], { env: { COLUMNS: "200" } });
  const head = wide.stdout.split("\n")[0]!;
  assert.match(head, /^ID\s+Status\s+Type\s+Domain\s+Att\s+Updated\s+Description\s+Error$/);
  for (const line of wide.stdout.trimEnd().split("\n").slice(0, -2)) {
    assert.ok(displayWidth(line) <= 200, line);
  }

  // Piped (no terminal): every column, whole, with UTC times; --wide does the same anywhere.
  for (
    const r of [
      await runMain([...t.args, "list"]),
      await runMain([...t.args, "list", "--wide"], { env: { COLUMNS: "80" } }),
    ]
  ) {
    assert.match(
      r.stdout.split("\n")[0]!,
      /^ID\s+Status\s+Type\s+Domain\s+Attempts\s+Updated \(UTC\)\s+Description\s+Error$/,
    );
    assert.match(
      r.stdout,
      /broken embed\s+Max attempts \(3\) exceeded: connection reset by organism\n/,
    );
    assert.match(r.stdout, / \d{4}-\d\d-\d\d \d\d:\d\d:\d\d \(15m ago\) /);
    assert.doesNotMatch(r.stdout, /cut to fit/);
  }
});

Deno.test("--type, --domain and --status take comma lists and repeats, in CLI, HTTP and lib", async () => {
  await using t = await testSchema();
  await insertFixture(t);
  const ids = async (args: string[]) =>
    JSON.parse((await runMain([...t.args, "list", "--json", ...args])).stdout).items
      .map((x: { id: string }) => x.id).sort();
  const both = (await listTasks(t.db, { limit: 100 })).items
    .filter((x) => x.type === "fact_search" || x.type === "graph_rag_query").map((x) => x.id)
    .sort();
  assert.ok(both.length >= 4);
  assert.deepEqual(await ids(["--type", "fact_search,graph_rag_query"]), both);
  assert.deepEqual(await ids(["--type", "fact_search", "--type", "graph_rag_query"]), both);
  assert.deepEqual(
    (await listTasks(t.db, { type: ["fact_search", "graph_rag_query"] })).items.map((x) => x.id)
      .sort(),
    both,
  );
  const app = createApp({ db: t.db });
  const viaHttp = await (await app.request("/tasks?type=fact_search&type=graph_rag_query"))
    .json();
  assert.deepEqual(viaHttp.items.map((x: { id: string }) => x.id).sort(), both);

  const domains = (await listTasks(t.db, { limit: 100 })).items
    .filter((x) => x.domain === "user_1" || x.domain === "user_3").map((x) => x.id).sort();
  assert.deepEqual(await ids(["--domain", "user_1,user_3"]), domains);
  assert.deepEqual(await ids(["--domain", "user_1", "--domain", "user_3"]), domains);
  // Combined: any of the types, any of the statuses.
  const combined = (await listTasks(t.db, { limit: 100 })).items
    .filter((x) =>
      ["graph_embed", "fact_search"].includes(x.type) && ["failed", "retry"].includes(x.status)
    ).map((x) => x.id).sort();
  assert.ok(combined.length >= 2);
  assert.deepEqual(
    await ids(["--type", "graph_embed,fact_search", "--status", "failed", "--status", "retry"]),
    combined,
  );

  const bad = await runMain([...t.args, "list", "--type", ","]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /^error: invalid --type "": expected a name/);
});

Deno.test("seedtask list --param finds the task of an entity (JSON containment)", async () => {
  await using t = await testSchema();
  await fill348(t);
  await t.sql`insert into ${t.sql(t.table)} (type, params)
    values ('x', '{"order_id": "77", "ref": "text id"}'), ('y', '{"nested": {"a": 1}}')`;
  const ids = async (args: string[]) =>
    JSON.parse((await runMain([...t.args, "list", "--json", ...args])).stdout).items
      .map((x: { params: unknown }) => x.params);
  // 77 matches the number 77 and the text "77".
  assert.deepEqual(await ids(["--param", "order_id=77"]), [
    { order_id: "77", ref: "text id" },
    { order_id: 77, ref: "r77" },
  ]);
  assert.deepEqual(await ids(["--param", "order_id=77", "--param", "ref=r77"]), [
    { order_id: 77, ref: "r77" },
  ]);
  assert.deepEqual(await ids(["--param", "ref=text id"]), [{ order_id: "77", ref: "text id" }]);
  assert.deepEqual(await ids(["--param", "ref=nope"]), []);
  // HTTP: the same schema.
  const app = createApp({ db: t.db });
  const viaHttp = await (await app.request(
    `/tasks?param=${encodeURIComponent("order_id=77")}&param=ref%3Dr77&total=auto`,
  )).json();
  assert.deepEqual(viaHttp.items.map((x: { params: unknown }) => x.params), [
    { order_id: 77, ref: "r77" },
  ]);
  assert.equal(viaHttp.total, 1);
  // The library takes the JSON object itself, nested values too.
  const lib = await listTasks(t.db, { params: { nested: { a: 1 } } });
  assert.deepEqual(lib.items.map((x) => x.type), ["y"]);

  for (const [arg, message] of [["order_id", /expected key=value/], ["=5", /expected key=value/]]) {
    const r = await runMain([...t.args, "list", "--param", arg as string]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, message as RegExp);
    const h = await app.request(`/tasks?param=${encodeURIComponent(arg as string)}`);
    assert.equal(h.status, 400);
  }
});

Deno.test("seedtask list --format csv|ndjson exports every match, with the same columns", async () => {
  await using t = await testSchema();
  await fill348(t);
  const csv = await runMain([...t.args, "list", "--format", "csv", "--status", "failed"]);
  assert.equal(csv.code, 0, csv.stderr);
  assert.equal(csv.stderr, "");
  const nd = await runMain([...t.args, "list", "--format", "ndjson", "--status", "failed"]);
  const docs = nd.stdout.trimEnd().split("\n").map((l) => JSON.parse(l));
  assert.equal(docs.length, 87);
  // RFC 4180 records: a quoted cell may hold a newline, so count records by their id.
  const records = csv.stdout.match(/^[0-9a-f]{8}-[0-9a-f-]{27},failed,/gm) ?? [];
  assert.equal(records.length, 87);
  assert.equal(csv.stdout.split("\n")[0], Object.keys(docs[0]).join(","));

  // With --limit: that many, and a word on stderr that more match.
  const some = await runMain([...t.args, "list", "--format", "csv", "--limit", "10"]);
  assert.equal(some.stdout.match(/^[0-9a-f]{8}-/gm)?.length, 10);
  assert.match(some.stderr, /^note: wrote the first 10 matches \(--limit 10\); more match/);
  // No match: the header alone.
  const none = await runMain([...t.args, "list", "--format", "csv", "--type", "nope"]);
  assert.equal(none.stdout, Object.keys(docs[0]).join(",") + "\n");
  // Table and JSON keep the page size.
  const page = JSON.parse((await runMain([...t.args, "list", "--json"])).stdout);
  assert.equal(page.items.length, 50);
});
