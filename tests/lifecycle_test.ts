import assert from "node:assert/strict";
import { requeueStale } from "../lib/ops/requeue_stale.ts";
import { cancelTasks, retryTasks } from "../lib/ops/task_transitions.ts";
import {
  EMBEDDED,
  FIXTURE,
  IDS,
  insertFixture,
  notificationsDuring,
  testSchema,
} from "./helpers.ts";
import { runMain } from "./run_main.ts";

type Row = {
  id: string;
  status: string;
  attempts: number;
  run_after: Date | null;
  error: string | null;
};

async function snapshot(t: Awaited<ReturnType<typeof testSchema>>): Promise<Map<string, Row>> {
  const rows = await t.sql<Row[]>`select id, status, attempts, run_after, error from ${
    t.sql(t.table)
  }`;
  return new Map(rows.map((r) => [r.id, r]));
}

/** Asserts that only `changed` ids differ between two snapshots. */
function onlyChanged(before: Map<string, Row>, after: Map<string, Row>, changed: string[]): void {
  for (const [id, row] of before) {
    if (changed.includes(id)) continue;
    assert.deepEqual(after.get(id), row, `unrelated task ${id} must be untouched`);
  }
}

Deno.test("seedtask enqueue inserts a queued task, prints its id and notifies tasks_new", async () => {
  await using t = await testSchema();
  let id = "";
  const notified = await notificationsDuring(t, async () => {
    const r = await runMain([
      ...t.args,
      "enqueue",
      "--type",
      "graph_embed",
      "--params",
      '{"graph_id": 42, "k": [1, 2]}',
      "--description",
      "embed graph 42",
      "--domain",
      "user_7",
      "--drift-score",
      "0.25",
    ]);
    assert.equal(r.code, 0, r.stderr);
    id = r.stdout.trim();
    assert.match(id, /^[0-9a-f-]{36}$/);
    const [row] = await t.sql`select * from ${t.sql(t.table)} where id = ${id}`;
    assert.equal(row!.status, "queued");
    assert.deepEqual(row!.params, { graph_id: 42, k: [1, 2] });
    assert.equal(row!.domain, "user_7");
    assert.equal(row!.drift_score, 0.25);
    assert.equal(row!.attempts, 0);
    // PGlite does not deliver NOTIFY to other connections: checked on a real server only.
    const before = Date.now();
    const later = await runMain([
      ...t.args,
      "enqueue",
      "--type",
      "x",
      "--run-after",
      "10m",
      "--json",
    ]);
    const after = Date.now();
    const doc = JSON.parse(later.stdout);
    // 10 minutes after some moment of the command, however long it took (1s for rounding)
    const runAfter = new Date(doc.run_after).getTime();
    assert.ok(
      runAfter >= before + 600_000 - 1000 && runAfter <= after + 600_000 + 1000,
      `run_after in 10m: ${runAfter - before}ms after the start, ${
        runAfter - after
      }ms after the end`,
    );
    const staged = await runMain([...t.args, "enqueue", "--type", "x", "--created", "--json"]);
    assert.equal(JSON.parse(staged.stdout).status, "created");
    const at = await runMain([
      ...t.args,
      "enqueue",
      "--type",
      "x",
      "--run-after",
      "2030-01-02T03:04:05Z",
      "--json",
    ]);
    assert.equal(JSON.parse(at.stdout).run_after, "2030-01-02T03:04:05.000Z");
  });
  // Only the task claimable now is announced, not the scheduled or staged ones.
  if (!EMBEDDED) assert.deepEqual(notified, [id]);
});

Deno.test("seedtask enqueue rejects bad input with exit 2 and inserts nothing", async () => {
  await using t = await testSchema();
  const cases: Array<[string[], RegExp]> = [
    [["--type", "x", "--params", "{not json"], /invalid --params: not JSON/],
    [["--params", "{}"], /missing --type \(or --file for many tasks\)/],
    [["--type", "x", "--drift-score", "high"], /invalid --drift-score "high"/],
    [["--type", "x", "--run-after", "soon"], /invalid --run-after "soon"/],
    [["--type", "x", "--run-after", "2030-13-45T99:00:00Z"], /not a valid ISO-8601 time/],
  ];
  for (const [args, message] of cases) {
    const r = await runMain([...t.args, "enqueue", ...args]);
    assert.equal(r.code, 2, `${args}: ${r.stderr}`);
    assert.match(r.stderr, message);
  }
  const [{ n }] = await t.sql`select count(*)::int as n from ${t.sql(t.table)}` as unknown as [
    { n: number },
  ];
  assert.equal(n, 0);
});

Deno.test("cancel by id: created, queued and retry are cancelled; the rest refused per task", async () => {
  await using t = await testSchema();
  await insertFixture(t);
  const before = await snapshot(t);
  const ok = [IDS.created1, IDS.queuedOld, IDS.retryReady];
  const refused = [IDS.runningHealthy, IDS.completed3h, IDS.failed5h, IDS.cancelled1];
  const report = await cancelTasks(t.db, [...ok, ...refused.map((id) => id.slice(0, 8))]);
  assert.deepEqual(report.changed.map((r) => r.id).sort(), [...ok].sort());
  assert.ok(report.changed.every((r) => r.status === "cancelled"));
  assert.deepEqual(report.refused.map((r) => [r.id, r.status]), [
    [IDS.runningHealthy, "running"],
    [IDS.completed3h, "completed"],
    [IDS.failed5h, "failed"],
    [IDS.cancelled1, "cancelled"],
  ]);
  assert.equal(
    report.refused[0]!.message,
    'Cannot cancel task "cccc1000": it is "running"',
  );
  assert.equal(report.refused[1]!.message, 'Cannot cancel task "dddd3000": it is "completed"');
  onlyChanged(before, await snapshot(t), ok);

  const forced = await cancelTasks(t.db, [IDS.runningHealthy], { force: true });
  assert.equal(forced.changed[0]!.status, "cancelled");
  assert.equal(forced.changed[0]!.lease_expires_at, null);
  assert.equal(forced.changed[0]!.locked_by, "disp-a", "who ran it is kept");
});

Deno.test("seedtask cancel prints per-task results and exits 1 when any is refused", async () => {
  await using t = await testSchema();
  await insertFixture(t);
  const r = await runMain([...t.args, "cancel", "bbbb1", "dddd1"]);
  assert.equal(r.code, 1);
  assert.equal(r.stdout, "cancelled bbbb1000  graph_embed\n");
  assert.equal(r.stderr, 'error: Cannot cancel task "dddd1000": it is "completed"\n');
  const ok = await runMain([...t.args, "cancel", "bbbb2", "--json"]);
  assert.equal(ok.code, 0, ok.stderr);
  const doc = JSON.parse(ok.stdout);
  assert.deepEqual(doc.changed.map((x: { id: string }) => x.id), [IDS.queuedRecent]);
  assert.deepEqual(doc.refused, []);
  const amb = await runMain([...t.args, "cancel", "bbbb"]);
  assert.equal(amb.code, 1);
  assert.match(amb.stderr, /prefix "bbbb" is ambiguous/);
  const none = await runMain([...t.args, "cancel"]);
  assert.equal(none.code, 2);
  // Ids with a filter: the filter guards them (bbbb3 is queued, of another type).
  const both = await runMain([...t.args, "cancel", "bbbb3", "--type", "x"]);
  assert.equal(both.code, 1);
  assert.match(both.stderr, /it is "queued" and does not match the given filter/);
});

Deno.test("retry by id: failed and cancelled go back to queued with a fresh start", async () => {
  await using t = await testSchema();
  await insertFixture(t);
  const before = await snapshot(t);
  const report = await retryTasks(t.db, [
    IDS.failed2d,
    IDS.cancelled2,
    IDS.completed3h,
    IDS.queuedOld,
  ]);
  assert.deepEqual(report.changed.map((r) => r.id).sort(), [IDS.cancelled2, IDS.failed2d].sort());
  for (const row of report.changed) {
    assert.equal(row.status, "queued");
    assert.equal(row.attempts, 0);
    assert.equal(row.run_after, null);
    assert.equal(row.error, null);
    assert.equal(row.locked_by, null);
  }
  assert.deepEqual(report.refused.map((r) => r.message), [
    'Cannot retry task "dddd3000": it is "completed" (only failed, cancelled or retry tasks can be retried)',
    'Cannot retry task "bbbb1000": it is "queued" (only failed, cancelled or retry tasks can be retried)',
  ]);
  onlyChanged(before, await snapshot(t), [IDS.failed2d, IDS.cancelled2]);
});

Deno.test("cancel and retry with a filter: a dry run without --yes, exact changes with it", async () => {
  await using t = await testSchema();
  await insertFixture(t);
  const before = await snapshot(t);
  const dry = await runMain([...t.args, "cancel", "--type", "graph_embed"]);
  assert.equal(dry.code, 0, dry.stderr);
  // graph_embed in created/queued/retry: created1, queuedOld, queuedScheduled, retryLater
  assert.match(dry.stdout, /^Would cancel 4 tasks:\n/);
  assert.match(dry.stdout, /Nothing changed\. Add --yes to apply\.\n$/);
  assert.deepEqual(await snapshot(t), before);

  const json = await runMain([...t.args, "cancel", "--type", "graph_embed", "--json"]);
  const preview = JSON.parse(json.stdout);
  assert.equal(preview.dry_run, true);
  assert.equal(preview.count, 4);
  assert.equal(preview.sample.length, 4);

  const applied = await runMain([
    ...t.args,
    "cancel",
    "--type",
    "graph_embed",
    "--status",
    "queued",
    "--yes",
  ]);
  assert.equal(applied.code, 0, applied.stderr);
  assert.match(applied.stdout, /Cancelled 2 tasks\n$/);
  onlyChanged(before, await snapshot(t), [IDS.queuedOld, IDS.queuedScheduled]);

  const old = await runMain([...t.args, "retry", "--older-than", "4h", "--yes", "--json"]);
  // failed or cancelled and not updated for 4h: failed5h, failed2d, cancelled1, cancelled2
  const doc = JSON.parse(old.stdout);
  assert.deepEqual(
    doc.changed.map((x: { id: string }) => x.id).sort(),
    [IDS.failed5h, IDS.failed2d, IDS.cancelled1, IDS.cancelled2].sort(),
  );

  const refused = await runMain([...t.args, "cancel", "--status", "completed", "--yes"]);
  assert.equal(refused.code, 2);
  assert.match(
    refused.stderr,
    /cannot cancel tasks in status "completed": cancel applies to created, queued, retry/,
  );
  const forceRunning = await runMain([
    ...t.args,
    "cancel",
    "--status",
    "running",
    "--force",
    "--yes",
  ]);
  assert.equal(forceRunning.code, 0, forceRunning.stderr);
  assert.match(forceRunning.stdout, /Cancelled 3 tasks/);
});

Deno.test("requeueStale() returns expired leases to retry, or failed at max attempts", async () => {
  await using t = await testSchema();
  await insertFixture(t);
  const tbl = t.sql(t.table);
  // runningHealthy: lease expired long ago with 3 attempts -> failed
  await t.sql`update ${tbl} set lease_expires_at = now() - interval '1 minute', attempts = 3
    where id = ${IDS.runningHealthy}`;
  // runningLong: no lease at all, locked 30 minutes ago (a seed dispatcher's task)
  await t.sql`update ${tbl} set lease_expires_at = null where id = ${IDS.runningLong}`;
  const before = await snapshot(t);

  const dry = await requeueStale(t.db, { dryRun: true, olderThanMs: 20 * 60_000, maxAttempts: 3 });
  assert.deepEqual(
    dry.map((r) => [r.task.id, r.outcome]).sort(),
    [
      [IDS.runningHealthy, "failed"],
      [IDS.runningLong, "retry"],
      [IDS.runningStuck, "retry"],
    ].sort(),
  );
  assert.deepEqual(await snapshot(t), before, "a dry run changes nothing");

  const leaseOnly = await requeueStale(t.db, {
    leaseOnly: true,
    maxAttempts: 3,
    actor: "reaper-x",
  });
  assert.deepEqual(
    leaseOnly.map((r) => r.task.id).sort(),
    [IDS.runningHealthy, IDS.runningStuck].sort(),
  );
  const after = await snapshot(t);
  const stuck = after.get(IDS.runningStuck)!;
  assert.equal(stuck.status, "retry");
  assert.equal(stuck.attempts, 2, "requeueing never counts an attempt");
  assert.ok(stuck.run_after && stuck.run_after.getTime() <= Date.now());
  assert.equal(stuck.error, "lease expired (locked by disp-dead, requeued by reaper-x)");
  const failed = after.get(IDS.runningHealthy)!;
  assert.equal(failed.status, "failed");
  assert.equal(
    failed.error,
    "Max attempts (3) exceeded: lease expired (locked by disp-a, requeued by reaper-x)",
  );
  assert.equal(
    after.get(IDS.runningLong)!.status,
    "running",
    "the reaper never guesses about lease-less tasks",
  );
  onlyChanged(before, after, [IDS.runningHealthy, IDS.runningStuck]);

  const cli = await runMain([...t.args, "requeue-stale", "--older-than", "20m"]);
  assert.equal(cli.code, 0, cli.stderr);
  assert.equal(
    cli.stdout,
    "moved cccc2000 to retry (attempts 1, locked by disp-a)\nRequeued 1, failed 0\n",
  );
  const again = await runMain([...t.args, "requeue-stale", "--dry-run"]);
  assert.equal(again.stdout, "No stale running tasks.\n");
});

Deno.test("seedtask purge deletes only old terminal tasks, in batches, after a dry run", async () => {
  await using t = await testSchema();
  await insertFixture(t);
  await t.sql`insert into ${t.sql(t.table)} (type, status, updated_at)
    select 'old', 'completed', now() - interval '40 days' from generate_series(1, 2500)`;
  const before = await snapshot(t);
  const dry = await runMain([...t.args, "purge", "--older-than", "30d"]);
  assert.equal(dry.code, 0, dry.stderr);
  assert.match(dry.stdout, /^Would delete 2500 tasks \(showing the 10 most recently updated\):/);
  assert.deepEqual(await snapshot(t), before);

  const r = await runMain([
    ...t.args,
    "purge",
    "--older-than",
    "30d",
    "--batch",
    "1000",
    "--yes",
    "--json",
  ]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), { dry_run: false, deleted: 2500, batches: 3 });
  assert.equal(r.stderr, "", "no progress output when stderr is not a terminal");
  const after = await snapshot(t);
  assert.equal(after.size, FIXTURE.length);

  // failed tasks older than 1 day: only failed2d; other statuses untouched
  const failed = await runMain([
    ...t.args,
    "purge",
    "--older-than",
    "1d",
    "--status",
    "failed",
    "--yes",
  ]);
  assert.equal(failed.stdout, "Deleted 1 task in 1 batch\n");
  assert.equal((await snapshot(t)).has(IDS.failed2d), false);

  const bad = await runMain([...t.args, "purge", "--older-than", "1d", "--status", "queued"]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /cannot purge tasks in status "queued"/);
  const missing = await runMain([...t.args, "purge", "--yes"]);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /required option '--older-than <duration>'/);
});
