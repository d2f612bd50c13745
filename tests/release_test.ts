/**
 * Issue 12 item 5: `seedtask release` moves staged (created) tasks to queued, by id or filter
 * (a dry run without --yes); `retry` also runs a task waiting on its backoff now. Every change
 * reports exactly the rows it changed, also when two processes release the same rows.
 */
import assert from "node:assert/strict";
import { claimTasks } from "../lib/dispatch/claim_tasks.ts";
import { enqueueTasks } from "../lib/ops/enqueue_tasks.ts";
import {
  releaseCreatedTasks,
  releaseCreatedWhere,
  retryTasks,
} from "../lib/ops/task_transitions.ts";
import { createApp } from "../server/app.ts";
import {
  EMBEDDED,
  IDS,
  insertFixture,
  notificationsDuring,
  runCli,
  type TestSchema,
  testSchema,
} from "./helpers.ts";
import { runMain } from "./run_main.ts";

type Row = { id: string; status: string; attempts: number; run_after: Date | null; error: string };

async function snapshot(t: TestSchema): Promise<Map<string, Row>> {
  const rows = await t.sql<Row[]>`
    select id, status, attempts, run_after, error, updated_at from ${t.sql(t.table)}`;
  return new Map(rows.map((r) => [r.id, r]));
}

/** Only `ids` differ between the snapshots. */
function onlyChanged(before: Map<string, Row>, after: Map<string, Row>, ids: string[]): void {
  const changed = [...after.keys()].filter((id) =>
    JSON.stringify(after.get(id)) !== JSON.stringify(before.get(id))
  );
  assert.deepEqual(changed.sort(), [...ids].sort());
}

Deno.test("release by id: a created task becomes queued; anything else is refused with exit 1", async () => {
  await using t = await testSchema();
  await insertFixture(t);
  const before = await snapshot(t);
  let r = { code: -1, stdout: "", stderr: "" };
  const notified = await notificationsDuring(t, async () => {
    r = await runMain([...t.args, "release", IDS.created1.slice(0, 8), IDS.queuedOld]);
  });
  assert.equal(r.code, 1);
  assert.equal(r.stdout, "released aaaa1000  graph_embed\n");
  assert.equal(
    r.stderr,
    'error: Cannot release task "bbbb1000": it is "queued" (only created tasks can be released)\n',
  );
  const after = await snapshot(t);
  onlyChanged(before, after, [IDS.created1]);
  assert.equal(after.get(IDS.created1)!.status, "queued");
  // Released tasks wake listening dispatchers (PGlite delivers no NOTIFY to others).
  if (!EMBEDDED) assert.ok(notified.length >= 1, "a NOTIFY with one of this table's ids");

  const json = await runMain([...t.args, "release", IDS.created2NoDomain, "--json"]);
  assert.equal(json.code, 0, json.stderr);
  const doc = JSON.parse(json.stdout);
  assert.deepEqual(doc.changed.map((x: Row) => [x.id, x.status]), [
    [IDS.created2NoDomain, "queued"],
  ]);
  assert.deepEqual(doc.refused, []);
});

Deno.test("release with a filter: a dry run without --yes; with it exactly the created rows", async () => {
  await using t = await testSchema();
  await insertFixture(t);
  const before = await snapshot(t);
  const dry = await runMain([...t.args, "release", "--type", "graph_embed"]);
  assert.equal(dry.code, 0, dry.stderr);
  assert.match(dry.stdout, /^Would release 1 task:\n/);
  assert.match(dry.stdout, /Nothing changed\. Add --yes to apply\.\n$/);
  assert.deepEqual(await snapshot(t), before);

  const bad = await runMain([...t.args, "release", "--status", "failed", "--yes"]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /cannot release tasks in status "failed": release applies to created/);

  const all = await runMain([...t.args, "release", "--status", "created", "--yes", "--json"]);
  assert.equal(all.code, 0, all.stderr);
  const doc = JSON.parse(all.stdout);
  assert.deepEqual(
    doc.changed.map((x: Row) => x.id).sort(),
    [IDS.created1, IDS.created2NoDomain].sort(),
  );
  onlyChanged(before, await snapshot(t), [IDS.created1, IDS.created2NoDomain]);
  const again = await runMain([...t.args, "release", "--status", "created", "--yes"]);
  assert.equal(again.stdout, "Released 0 tasks\n");
});

Deno.test("a released task keeps its run_after: claimable once it passes, not before", async () => {
  await using t = await testSchema();
  await enqueueTasks(t.db, [
    { at: "[0]", task: { type: "later", status: "created", run_after: "1h" } },
    { at: "[1]", task: { type: "now", status: "created" } },
  ]);
  const changed = await releaseCreatedWhere(t.db, { statuses: ["created"] });
  assert.equal(changed.length, 2);
  const claimed = await claimTasks(t.db, { owner: "t", limit: 10, leaseMs: 60_000 });
  assert.deepEqual(claimed.map((c) => c.type), ["now"]);
  const later = await claimTasks(t.db, {
    owner: "t",
    limit: 10,
    leaseMs: 60_000,
    now: new Date(Date.now() + 2 * 3600_000),
  });
  assert.deepEqual(later.map((c) => c.type), ["later"]);
});

Deno.test("retry runs a task waiting on its backoff now: run_after now, attempts and error kept", async () => {
  await using t = await testSchema();
  await insertFixture(t);
  const before = await snapshot(t);
  // retryLater waits 10 more minutes: not claimable now.
  const none = await claimTasks(t.db, { owner: "t", limit: 10, leaseMs: 60_000, types: ["x"] });
  assert.deepEqual(none, []);
  const report = await retryTasks(t.db, [IDS.retryLater, IDS.failedRecent]);
  assert.deepEqual(report.refused, []);
  const byId = new Map(report.changed.map((r) => [r.id, r]));
  const waited = byId.get(IDS.retryLater)!;
  assert.deepEqual(
    [waited.status, waited.attempts, waited.error],
    ["retry", 2, "transient 429"],
  );
  assert.ok(waited.run_after!.getTime() <= Date.now() + 1000, "due now");
  const failed = byId.get(IDS.failedRecent)!;
  assert.deepEqual([failed.status, failed.attempts, failed.error], ["queued", 0, null]);
  onlyChanged(before, await snapshot(t), [IDS.retryLater, IDS.failedRecent]);
  const claimed = await claimTasks(t.db, {
    owner: "t",
    limit: 10,
    leaseMs: 60_000,
    types: ["graph_embed"],
  });
  assert.ok(claimed.some((c) => c.id === IDS.retryLater), "claimable at once");

  // The CLI says which happened.
  await t.sql`update ${t.sql(t.table)} set status = 'retry', run_after = now() + interval '1h'
    where id = ${IDS.retryReady}`;
  const cli = await runMain([...t.args, "retry", IDS.retryReady, IDS.cancelled1]);
  assert.equal(cli.code, 0, cli.stderr);
  assert.equal(cli.stdout, "due now 12341000  graph_rag_query\nrequeued ffff1000  graph_embed\n");
});

Deno.test("retry with a filter leaves backoffs alone unless --status names retry", async () => {
  await using t = await testSchema();
  await insertFixture(t);
  const before = await snapshot(t);
  const byType = await runMain([...t.args, "retry", "--type", "graph_embed", "--yes", "--json"]);
  assert.equal(byType.code, 0, byType.stderr);
  // failed or cancelled graph_embed: failedRecent, cancelled1 (not retryLater)
  assert.deepEqual(
    JSON.parse(byType.stdout).changed.map((x: Row) => x.id).sort(),
    [IDS.failedRecent, IDS.cancelled1].sort(),
  );
  const backoffs = await runMain([...t.args, "retry", "--status", "retry", "--yes", "--json"]);
  assert.deepEqual(
    JSON.parse(backoffs.stdout).changed.map((x: Row) => [x.id, x.status]).sort(),
    [[IDS.retryReady, "retry"], [IDS.retryLater, "retry"]].sort(),
  );
  onlyChanged(before, await snapshot(t), [
    IDS.failedRecent,
    IDS.cancelled1,
    IDS.retryReady,
    IDS.retryLater,
  ]);
});

Deno.test("two processes releasing the same rows change each row once, and each reports only its own", async () => {
  await using t = await testSchema();
  const n = 3000;
  await enqueueTasks(
    t.db,
    Array.from({ length: n }, (_, i) => ({ at: `[${i}]`, task: { type: "s", status: "created" } })),
    { batchSize: 1000 },
  );
  const run = () => runCli([...t.args, "release", "--status", "created", "--yes", "--json"]);
  const [a, b] = await Promise.all([run(), run()]);
  assert.equal(a.code, 0, a.stderr);
  assert.equal(b.code, 0, b.stderr);
  const ida: string[] = JSON.parse(a.stdout).changed.map((x: Row) => x.id);
  const idb: string[] = JSON.parse(b.stdout).changed.map((x: Row) => x.id);
  assert.equal(ida.length + idb.length, n, "every row reported once in all");
  assert.equal(new Set([...ida, ...idb]).size, n, "no row reported twice");
  const [{ queued }] = await t.sql`
    select count(*)::int as queued from ${t.sql(t.table)} where status = 'queued'` as unknown as [
    { queued: number },
  ];
  assert.equal(queued, n);

  // By id too: one wins, the other is refused.
  const [id] = (await enqueueTasks(t.db, [{ at: "[0]", task: { type: "s", status: "created" } }], {
    returnIds: true,
  })).ids!;
  const both = await Promise.all([
    releaseCreatedTasks(t.db, [id!]),
    releaseCreatedTasks(t.db, [id!]),
  ]);
  assert.deepEqual(both.map((r) => r.changed.length).sort(), [0, 1]);
  assert.deepEqual(both.map((r) => r.refused.length).sort(), [0, 1]);
});

Deno.test("POST /tasks/{id}/release and the filter forms POST /tasks/{release,retry,cancel}", async () => {
  await using t = await testSchema();
  await insertFixture(t);
  const app = createApp({ db: t.db, allowWrite: true, token: "release-token" });
  const post = (path: string, body?: unknown) =>
    app.request(path, {
      method: "POST",
      headers: { authorization: "Bearer release-token", "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  const one = await post(`/tasks/${IDS.created1.slice(0, 8)}/release`);
  assert.equal(one.status, 200);
  assert.equal((await one.json()).changed[0].status, "queued");
  const refused = await post(`/tasks/${IDS.created1}/release`);
  assert.equal(refused.status, 409);
  assert.match((await refused.json()).error.message, /it is "queued"/);

  const dry = await post("/tasks/release", { type: "fact_search" });
  assert.equal(dry.status, 200);
  const preview = await dry.json();
  assert.deepEqual([preview.dry_run, preview.count], [true, 1]);
  const applied = await (await post("/tasks/release", { type: "fact_search", yes: true })).json();
  assert.deepEqual(applied.changed.map((x: Row) => x.id), [IDS.created2NoDomain]);
  assert.equal(applied.dry_run, false);

  const noFilter = await post("/tasks/release", { yes: true });
  assert.equal(noFilter.status, 400);
  assert.match((await noFilter.json()).error.message, /give a filter/i);
  const force = await post("/tasks/retry", { status: "retry", force: true });
  assert.equal(force.status, 400, "force is cancel's alone");

  const runNow = await (await post("/tasks/retry", { status: "retry", yes: true })).json();
  assert.equal(runNow.changed.length, 2);
  const cancel = await (await post("/tasks/cancel", {
    status: "running",
    force: true,
    yes: true,
  })).json();
  assert.equal(cancel.changed.length, 3);
});
