/**
 * Issue 12 item 3: bulk enqueue. `seedtask enqueue --file` (a file or stdin) and
 * `POST /tasks/batch` call one lib function, enqueueTasks(): batches of one INSERT and one
 * NOTIFY, a bad line named by its number with nothing of its batch written, a dry run.
 */
import assert from "node:assert/strict";
import { BulkEnqueueError, enqueueTasks } from "../lib/ops/enqueue_tasks.ts";
import { createApp } from "../server/app.ts";
import { EMBEDDED, notificationsDuring, type TestSchema, testSchema } from "./helpers.ts";
import { runMain } from "./run_main.ts";

const TOKEN = "bulk-token-1234";

function line(i: number, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({ type: `job_${i % 3}`, params: { n: i }, ...extra });
}

async function count(t: TestSchema, where = t.sql`true`): Promise<number> {
  const [{ n }] = await t.sql`select count(*)::int as n from ${
    t.sql(t.table)
  } where ${where}` as unknown as [{ n: number }];
  return n;
}

async function tempFile(text: string): Promise<string> {
  const path = await Deno.makeTempFile({ suffix: ".ndjson" });
  await Deno.writeTextFile(path, text);
  return path;
}

Deno.test("enqueue --file writes every line in batches with one NOTIFY per batch", async () => {
  await using t = await testSchema();
  const lines = Array.from({ length: 2500 }, (_, i) => line(i));
  // Every field of POST /tasks, on the first line.
  lines[0] = JSON.stringify({
    type: "graph_embed",
    params: { graph: 1 },
    description: "first",
    domain: "user_1",
    drift_score: 0.5,
    run_after: "2030-01-01T00:00:00Z",
    status: "created",
  });
  lines.splice(10, 0, "", "   "); // blank lines are skipped
  const file = await tempFile(lines.join("\n") + "\n");
  let result;
  const notified = await notificationsDuring(t, async () => {
    result = await runMain([...t.args, "enqueue", "--file", file, "--batch-size", "1000"]);
  });
  assert.equal(result!.code, 0, result!.stderr);
  assert.equal(result!.stdout, "Enqueued 2500 tasks in 3 batches\n");
  assert.equal(await count(t), 2500);
  assert.equal(await count(t, t.sql`status = 'queued'`), 2499);
  const [first] = await t.sql`select * from ${t.sql(t.table)} where type = 'graph_embed'`;
  assert.deepEqual(
    [first!.status, first!.params, first!.description, first!.domain, first!.drift_score],
    ["created", { graph: 1 }, "first", "user_1", 0.5],
  );
  assert.equal((first!.run_after as Date).toISOString(), "2030-01-01T00:00:00.000Z");
  if (!EMBEDDED) assert.equal(notified.length, 3, "one NOTIFY per batch");
  await Deno.remove(file);
});

Deno.test("enqueue --file - reads stdin; --json prints the counts", async () => {
  await using t = await testSchema();
  const r = await runMain([...t.args, "enqueue", "--file", "-", "--json"], {
    stdin: `${line(1)}\n${line(2)}`, // no newline at the end
  });
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), { enqueued: 2, batches: 1, dry_run: false });
  assert.equal(await count(t), 2);
});

Deno.test("a bad line is named by its number; nothing of its batch is written, earlier batches stay", async () => {
  await using t = await testSchema();
  const lines = Array.from({ length: 30 }, (_, i) => line(i));
  lines[24] = JSON.stringify({ type: "ok", drift_score: "high" }); // line 25
  const file = await tempFile(lines.join("\n"));
  const r = await runMain([...t.args, "enqueue", "--file", file, "--batch-size", "10"]);
  assert.equal(r.code, 2);
  assert.equal(r.stdout, "");
  assert.match(r.stderr, /^error: line 25: invalid drift_score "high": expected a number/);
  assert.match(r.stderr, /earlier batches wrote 20 tasks, through line 20; nothing after/);
  assert.equal(await count(t), 20, "lines 1-20 written, 21-30 not");
  assert.equal(await count(t, t.sql`(params->>'n')::int >= 20`), 0);

  // Not JSON, and not a task: each named by its line.
  for (
    const [text, message] of [
      [`${line(1)}\n{"type": "x",\n`, /^error: line 2: not JSON/],
      [`${line(1)}\n\n[1, 2]\n`, /^error: line 3: invalid /],
      [`{"type": "x", "colour": "red"}\n`, /^error: line 1: invalid .*colour/],
      [`{"params": {}}\n`, /^error: line 1: invalid .*type/],
    ] as const
  ) {
    await t.sql`delete from ${t.sql(t.table)}`;
    const bad = await tempFile(text);
    const r2 = await runMain([...t.args, "enqueue", "--file", bad]);
    assert.equal(r2.code, 2, text);
    assert.match(r2.stderr, message);
    assert.match(r2.stderr, /nothing was written/);
    assert.equal(await count(t), 0, "one batch: all or nothing");
    await Deno.remove(bad);
  }
  await Deno.remove(file);
});

Deno.test("enqueue --file --dry-run checks every line and writes nothing", async () => {
  await using t = await testSchema();
  const good = await tempFile([line(1), line(2), line(3)].join("\n"));
  const ok = await runMain([...t.args, "enqueue", "--file", good, "--dry-run"]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(ok.stdout, "3 tasks valid (dry run: nothing written)\n");
  const bad = await tempFile([line(1), line(2), '{"type": ""}'].join("\n"));
  const no = await runMain([...t.args, "enqueue", "--file", bad, "--dry-run"]);
  assert.equal(no.code, 2);
  assert.match(no.stderr, /^error: line 3: invalid type "": a task needs a type.*dry run/);
  assert.equal(await count(t), 0);
  await Deno.remove(good);
  await Deno.remove(bad);
});

Deno.test("enqueue --file refuses per-task flags, a missing file and bulk flags alone", async () => {
  await using t = await testSchema();
  const cases: Array<[string[], RegExp]> = [
    [["--file", "x.ndjson", "--type", "a"], /--type conflicts with --file/],
    [["--file", "x.ndjson", "--created"], /--created conflicts with --file/],
    [["--file", "/nonexistent/tasks.ndjson"], /cannot read --file .*: no such file/],
    [["--type", "a", "--dry-run"], /--dry-run needs --file/],
    [["--file", "-", "--batch-size", "0"], /invalid --batch-size "0"/],
  ];
  for (const [args, message] of cases) {
    const r = await runMain([...t.args, "enqueue", ...args], { stdin: "" });
    assert.equal(r.code, 2, `${args}: ${r.stderr}`);
    assert.match(r.stderr, message);
  }
  assert.equal(await count(t), 0);
});

Deno.test("tasks that are not claimable now are enqueued without a NOTIFY", async () => {
  if (EMBEDDED) return; // PGlite does not deliver NOTIFY to other connections
  await using t = await testSchema();
  const notified = await notificationsDuring(t, async () => {
    await enqueueTasks(t.db, [
      { at: "[0]", task: { type: "a", status: "created" } },
      { at: "[1]", task: { type: "a", run_after: "1h" } },
    ]);
  });
  assert.deepEqual(notified, []);
  assert.equal(await count(t), 2);
});

Deno.test("enqueueTasks() returns the ids in input order and reports a refused value by batch", async () => {
  await using t = await testSchema();
  const r = await enqueueTasks(
    t.db,
    Array.from({ length: 5 }, (_, i) => ({ at: `[${i}]`, task: { type: "a", params: { i } } })),
    { returnIds: true, batchSize: 2 },
  );
  assert.equal(r.batches, 3);
  const rows = await t.sql<{ id: string; i: number }[]>`
    select id::text, (params->>'i')::int as i from ${t.sql(t.table)}`;
  const byId = new Map(rows.map((row) => [row.id, row.i]));
  assert.deepEqual(r.ids!.map((id) => byId.get(id)), [0, 1, 2, 3, 4]);
  await assert.rejects(
    () => enqueueTasks(t.db, [{ at: "[0]", task: { type: 7 } }]),
    (err: unknown) => err instanceof BulkEnqueueError && err.at === "[0]" && err.enqueued === 0,
  );
});

Deno.test("POST /tasks/batch enqueues an array all or nothing, naming a bad element by its index", async () => {
  await using t = await testSchema();
  const app = createApp({ db: t.db, allowWrite: true, token: TOKEN });
  const post = (body: unknown, query = "") =>
    app.request(`/tasks/batch${query}`, {
      method: "POST",
      headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify(body),
    });
  const ok = await post([{ type: "a", params: { i: 0 } }, { type: "b", status: "created" }]);
  assert.equal(ok.status, 201);
  const body = await ok.json();
  assert.equal(body.enqueued, 2);
  assert.equal(body.ids.length, 2);
  const [a] = await t.sql`select type from ${t.sql(t.table)} where id = ${body.ids[0]}`;
  assert.equal(a!.type, "a");

  const bad = await post([{ type: "c" }, { type: "d", drift_score: "high" }]);
  assert.equal(bad.status, 400);
  const error = (await bad.json()).error;
  assert.equal(error.at, "[1]");
  assert.equal(error.enqueued, 0);
  assert.match(error.message, /^\[1\]: invalid drift_score "high"/);
  const wrongType = await post([{ type: 5 }]);
  assert.equal(wrongType.status, 400);
  assert.match((await wrongType.json()).error.message, /^\[0\]: invalid "type"/);
  assert.equal((await post({ type: "a" })).status, 400, "an object, not an array");

  const tooMany = await post(Array.from({ length: 1001 }, () => ({ type: "a" })));
  assert.equal(tooMany.status, 413);
  assert.match((await tooMany.json()).error.message, /at most 1000/);

  const dry = await post([{ type: "e" }], "?dry_run=true");
  assert.equal(dry.status, 201);
  assert.deepEqual(await dry.json(), { enqueued: 1, batches: 0, dry_run: true, ids: [] });
  assert.equal(await count(t), 2, "only the first request wrote");
});

Deno.test("params may hold JSON null anywhere; params null itself means no parameters", async () => {
  await using t = await testSchema();
  const r = await enqueueTasks(t.db, [
    { at: "[0]", task: { type: "a", params: { entity: null, tags: [null, "x"] } } },
    { at: "[1]", task: { type: "a", params: null } },
  ], { returnIds: true });
  assert.equal(r.enqueued, 2);
  const rows = await t.sql<{ id: string; params: unknown }[]>`
    select id::text, params from ${t.sql(t.table)}`;
  const byId = new Map(rows.map((row) => [row.id, row.params]));
  assert.deepEqual(r.ids!.map((id) => byId.get(id)), [{ entity: null, tags: [null, "x"] }, {}]);
});

Deno.test("with two writers a refused batch takes the batch in flight after it down; earlier ones stay", async () => {
  await using t = await testSchema();
  // The database refuses one task (a data exception, as for a value it cannot store), slowly,
  // so that the next batch is usually inserted and waiting to commit when this one fails.
  const fn = t.sql(`${t.schema}.refuse_forbidden`);
  await t.sql`
    create function ${fn}() returns trigger language plpgsql as $$
    begin
      if new.type = 'forbidden' then
        perform pg_sleep(0.2);
        raise exception 'forbidden type' using errcode = '22023';
      end if;
      return new;
    end $$`;
  await t.sql`create trigger refuse before insert on ${t.sql(t.table)}
    for each row execute function ${fn}()`;
  const items = Array.from({ length: 50 }, (_, i) => ({
    at: `[${i}]`,
    task: { type: i === 29 ? "forbidden" : "a", params: { i } },
  }));
  const err = await enqueueTasks(t.db, items, { batchSize: 10, writers: 2 }).then(
    () => assert.fail("the run succeeded"),
    (e: unknown) => e,
  );
  assert.ok(err instanceof BulkEnqueueError, String(err));
  assert.equal(err.at, "[20] to [29]");
  assert.equal(err.enqueued, 20);
  assert.equal(err.writtenThrough, "[19]");
  assert.match(err.message, /forbidden type/);
  const written = await t.sql<{ i: number }[]>`
    select (params->>'i')::int as i from ${t.sql(t.table)} order by 1`;
  assert.deepEqual(written.map((r) => r.i), Array.from({ length: 20 }, (_, i) => i));

  // Nothing is left holding a transaction: the next run writes.
  await t.sql`drop trigger refuse on ${t.sql(t.table)}`;
  const again = await enqueueTasks(t.db, items.slice(20), { batchSize: 10, writers: 2 });
  assert.equal(again.enqueued, 30);
  assert.equal(await count(t), 50);
});

Deno.test("values with tabs, newlines, backslashes, quotes and non-BMP characters are stored exactly", async () => {
  await using t = await testSchema();
  const odd = "tab\there\nnew line\r\n back\\slash \\N \"quoted\" 'single' é 中文 🙂 \u2028";
  const task = {
    type: `t\\${odd.slice(0, 20)}`,
    params: { [odd]: odd, list: [odd, "\\u0041", 1.5e300, -0, true, null], nested: { k: odd } },
    description: odd,
    domain: `d\t${odd.slice(-12)}`,
  };
  const file = await tempFile(JSON.stringify(task) + "\n");
  const r = await runMain([...t.args, "enqueue", "--file", file]);
  assert.equal(r.code, 0, r.stderr);
  const [row] = await t.sql`
    select type, params::text as params, description, domain from ${t.sql(t.table)}`;
  assert.equal(row!.type, task.type.trim());
  assert.deepEqual(JSON.parse(row!.params as string), {
    ...task.params,
    list: [odd, "\\u0041", 1.5e300, 0, true, null],
  });
  assert.equal(row!.description, odd);
  assert.equal(row!.domain, task.domain);
  await Deno.remove(file);
});

Deno.test("enqueue --file --pooler writes batches in transactions of their own, in order", async () => {
  await using t = await testSchema();
  const lines = Array.from({ length: 45 }, (_, i) => line(i));
  lines[37] = JSON.stringify({ type: "" }); // line 38
  const file = await tempFile(lines.join("\n"));
  const r = await runMain(["--pooler", ...t.args, "enqueue", "--file", file, "--batch-size", "10"]);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /^error: line 38: invalid type ""/);
  assert.match(r.stderr, /earlier batches wrote 30 tasks, through line 30/);
  const written = await t.sql<{ n: number }[]>`
    select (params->>'n')::int as n from ${t.sql(t.table)} order by 1`;
  assert.deepEqual(written.map((row) => row.n), Array.from({ length: 30 }, (_, i) => i));
  await Deno.remove(file);
});
