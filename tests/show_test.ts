import assert from "node:assert/strict";
import { AmbiguousTaskIdError, InvalidInputError, TaskNotFoundError } from "../lib/errors.ts";
import { getTask } from "../lib/queries/get_task.ts";
import { IDS, insertFixture, testSchema } from "./helpers.ts";
import { runMain } from "./run_main.ts";

Deno.test("getTask() finds a task by full id, by prefix, and without hyphens", async () => {
  await using t = await testSchema();
  await insertFixture(t);
  assert.equal((await getTask(t.db, IDS.failedRecent)).id, IDS.failedRecent);
  assert.equal((await getTask(t.db, "eeee1")).id, IDS.failedRecent);
  assert.equal((await getTask(t.db, "EEEE1000-0000-4")).id, IDS.failedRecent);
  assert.equal((await getTask(t.db, "eeee1000000040008")).id, IDS.failedRecent);
  await assert.rejects(() => getTask(t.db, "eeee"), (err: unknown) => {
    assert.ok(err instanceof AmbiguousTaskIdError);
    assert.deepEqual(err.candidates, [IDS.failedRecent, IDS.failed5h, IDS.failed2d]);
    return true;
  });
  await assert.rejects(() => getTask(t.db, "0123"), TaskNotFoundError);
  await assert.rejects(
    () => getTask(t.db, "aaaa1000-0000-4000-8000-0000000000ff"),
    TaskNotFoundError,
  );
  await assert.rejects(() => getTask(t.db, "not-an-id"), InvalidInputError);
  await assert.rejects(() => getTask(t.db, "a".repeat(33)), InvalidInputError);
});

Deno.test("seedtask show prints every column, timing, lease, params, result and error", async () => {
  await using t = await testSchema();
  await insertFixture(t);
  const r = await runMain([...t.args, "show", "cccc2"]);
  assert.equal(r.code, 0, r.stderr);
  const out = r.stdout;
  assert.match(out, new RegExp(`TASK ${IDS.runningLong}`));
  assert.match(out, /Status\s+running\n/);
  assert.match(out, /Type\s+graph_rag_query\n/);
  assert.match(out, /Description\s+long rag query\n/);
  assert.match(out, /Domain\s+user_2\n/);
  assert.match(out, /Drift score\s+0\.4\n/);
  assert.match(out, /Queue wait\s+10m 0s\n/);
  assert.match(out, /Running for\s+30m \d+s\n/);
  assert.match(out, /Locked by\s+disp-a\n/);
  assert.match(out, /Lease owner\s+disp-a\n/);
  assert.match(out, /Lease expires\s+20\d\d-\d\d-\d\d \d\d:\d\d:\d\d UTC \(in 5\d?s\)\n/);
  assert.match(out, /PARAMS\n {3}\{\n {5}"n": 1,\n {5}"description": "long rag query"\n {3}\}/);
  // extra SeedCore columns are shown too
  assert.match(out, /OTHER COLUMNS\n {3}priority\s+2\n {3}labels\s+\[\n/);

  const done = await runMain([...t.args, "show", IDS.completed3h]);
  assert.match(done.stdout, /Run duration\s+1m 0s\n/);
  assert.match(done.stdout, /RESULT\n {3}\{\n {5}"hits": 12\n {3}\}/);
  const failed = await runMain([...t.args, "show", "eeee3"]);
  assert.match(failed.stdout, /ERROR\n {3}timeout talking to LLM\n/);
  const retry = await runMain([...t.args, "show", "12342"]);
  assert.match(retry.stdout, /Run after\s+\S+ \S+ UTC \(in 9m \d+s\)\n/);
});

Deno.test("seedtask show --json prints the whole row, extra columns included", async () => {
  await using t = await testSchema();
  await insertFixture(t);
  const r = await runMain([...t.args, "show", "dddd1", "--json"]);
  assert.equal(r.code, 0, r.stderr);
  const task = JSON.parse(r.stdout);
  assert.equal(task.id, IDS.completedRecent1);
  assert.deepEqual(task.result, { vectors: 3 });
  assert.equal(task.priority, 2);
  assert.deepEqual(task.labels, ["fixture", "completed"]);
  assert.deepEqual(task, JSON.parse(JSON.stringify(await getTask(t.db, IDS.completedRecent1))));
});

Deno.test("seedtask show: ambiguous prefix exit 1 with candidates, unknown exit 1, bad id exit 2", async () => {
  await using t = await testSchema();
  await insertFixture(t);
  const amb = await runMain([...t.args, "show", "dddd", "--json"]);
  assert.equal(amb.code, 1);
  assert.equal(amb.stdout, "", "--json prints nothing on stdout when it fails");
  assert.equal(
    amb.stderr,
    `error: task id prefix "dddd" is ambiguous: it matches ${IDS.completedRecent1}, ` +
      `${IDS.completedRecent2}, ${IDS.completed3h}, ${IDS.completed3d} — give more characters of the id\n`,
  );
  const none = await runMain([...t.args, "show", "9999"]);
  assert.equal(none.code, 1);
  assert.equal(none.stderr, 'error: task "9999" not found\n');
  const bad = await runMain([...t.args, "show", "xyz"]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /^error: invalid task id "xyz": expected a uuid or a prefix of one/);
});
