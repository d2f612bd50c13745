import assert from "node:assert/strict";
import { AmbiguousTaskIdError, ConnectionError, TaskTableHelper } from "../lib/mod.ts";
import { IDS, insertFixture, TEST_DSN, testSchema } from "./helpers.ts";

Deno.test("TaskTableHelper works as the seed's helper, with await using", async () => {
  await using t = await testSchema();
  await insertFixture(t);
  let helperRef: TaskTableHelper;
  {
    await using helper = await TaskTableHelper.connect({ dsn: TEST_DSN, table: t.table });
    helperRef = helper;
    const running = await helper.listTasks({ statuses: ["running"] });
    assert.equal(running.length, 3);
    const task = await helper.getTaskById("cccc3");
    assert.equal(task?.id, IDS.runningStuck);
    assert.equal(await helper.getTaskById("0000"), null);
    await assert.rejects(() => helper.getTaskById("cccc"), AmbiguousTaskIdError);
    const text = helper.formatTaskDetails(task!);
    assert.match(text, /Description\s+stuck search/);
    const stats = await helper.getTaskStatistics();
    assert.equal(stats.status_counts.running, 3);
    assert.match(helper.formatStatistics(stats), /^ {3}running\s+3 {2}\(/m);
    const page = await helper.listTasksPage({ limit: 5 });
    assert.equal(page.items.length, 5);
    assert.ok(page.next_cursor);
  }
  // disposed: the pool is closed
  await assert.rejects(() => helperRef.listTasks(), Error);
});

Deno.test("TaskTableHelper.connect() fails fast with a ConnectionError", async () => {
  await assert.rejects(
    () => TaskTableHelper.connect({ dsn: "postgres://postgres:pw@127.0.0.1:1/x" }),
    (err: unknown) => {
      assert.ok(err instanceof ConnectionError);
      assert.equal(err.code, "unreachable");
      assert.doesNotMatch(err.message, /pw/);
      return true;
    },
  );
  // PG_DSN from the given environment is honoured
  const viaEnv = await TaskTableHelper.connect({ env: { PG_DSN: TEST_DSN } });
  await viaEnv.close();
});
