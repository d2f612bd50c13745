/**
 * Polish seen on the way (issue 12, item 6): counts beside truncated stats sections, singular
 * and plural, the HTTP 409 naming its body field, `show` on a finished task, and dispatcher
 * text logs with short ids.
 */
import assert from "node:assert/strict";
import { formatEvent } from "../lib/dispatch/events.ts";
import { formatStatistics } from "../lib/format/stats.ts";
import { formatTaskDetails } from "../lib/format/tasks.ts";
import { getTask } from "../lib/queries/get_task.ts";
import { getTaskStatistics } from "../lib/queries/task_stats.ts";
import { createApp } from "../server/app.ts";
import { IDS, insertFixture, testSchema } from "./helpers.ts";
import { runMain } from "./run_main.ts";

Deno.test("stats says how many high-attempt and long-running tasks there are beyond the list", async () => {
  await using t = await testSchema();
  await t.sql`insert into ${t.sql(t.table)} (type, status, attempts, locked_by, locked_at)
    select 'many', 'failed', 5, null, null from generate_series(1, 87)`;
  await t.sql`insert into ${t.sql(t.table)} (type, status, attempts, locked_by, locked_at)
    select 'slow', 'running', 1, 'disp', now() - interval '2 hours' from generate_series(1, 12)`;
  const stats = await getTaskStatistics(t.db, { top: 10, days: 1 });
  assert.equal(stats.high_attempts.length, 10);
  assert.equal(stats.high_attempts_total, 87);
  assert.equal(stats.long_running.length, 10);
  assert.equal(stats.long_running_total, 12);
  const text = formatStatistics(stats);
  assert.match(text, /^HIGH ATTEMPTS \(>= 3\): 10 of 87$/m);
  assert.match(text, /^LONG RUNNING \(> 10m 0s\): 10 of 12$/m);
  assert.match(text, /^RECENT ACTIVITY \(1 day, UTC\)$/m);
  assert.doesNotMatch(text, /1 days/);
  const json = JSON.parse((await runMain([...t.args, "stats", "--json", "--top", "10"])).stdout);
  assert.equal(json.high_attempts_total, 87);
  assert.equal(json.long_running_total, 12);
  // A complete list says nothing more.
  const all = formatStatistics(await getTaskStatistics(t.db, { top: 100, days: 2 }));
  assert.match(all, /^HIGH ATTEMPTS \(>= 3\)$/m);
  assert.match(all, /^RECENT ACTIVITY \(2 days, UTC\)$/m);
});

Deno.test("a refused cancel over HTTP names the body field, the CLI its flag", async () => {
  await using t = await testSchema();
  await insertFixture(t);
  const app = createApp({ db: t.db, allowWrite: true, token: "tok" });
  const res = await app.request(`/tasks/${IDS.runningHealthy}/cancel`, {
    method: "POST",
    headers: { authorization: "Bearer tok" },
  });
  assert.equal(res.status, 409);
  const body = await res.json();
  assert.match(body.error.message, /send \{"force": true\}/);
  assert.doesNotMatch(body.error.message, /--force/);
  assert.doesNotMatch(body.refused[0].message, /--force/);

  const cli = await runMain([...t.args, "cancel", IDS.runningHealthy.slice(0, 8)]);
  assert.equal(cli.code, 1);
  assert.match(cli.stderr, /it is "running" \(pass --force to cancel a running task\)/);
});

Deno.test("seedtask cancel --status running --force <id> cancels that task if it is running", async () => {
  await using t = await testSchema();
  await insertFixture(t);
  // The README's example: the filter guards the ids.
  const r = await runMain([
    ...t.args,
    "cancel",
    "--status",
    "running",
    "--force",
    IDS.runningHealthy.slice(0, 8),
  ]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^cancelled cccc1000/m);
  const [row] = await t.sql`select status from ${t.sql(t.table)} where id = ${IDS.runningHealthy}`;
  assert.equal(row!.status, "cancelled");
  // A task the filter does not match is refused and left alone.
  const queued = await runMain([
    ...t.args,
    "cancel",
    "--status",
    "running",
    "--force",
    IDS.queuedOld,
  ]);
  assert.equal(queued.code, 1);
  assert.match(
    queued.stderr,
    /Cannot cancel task "bbbb1000": it is "queued" and does not match the given filter/,
  );
  const [q] = await t.sql`select status from ${t.sql(t.table)} where id = ${IDS.queuedOld}`;
  assert.equal(q!.status, "queued");
});

Deno.test("show on a finished task presents its lock as history, not as held", async () => {
  await using t = await testSchema();
  await insertFixture(t);
  const now = new Date();
  const done = formatTaskDetails(await getTask(t.db, IDS.completedRecent1), { now });
  assert.doesNotMatch(done, /Locked by|LOCK AND LEASE|Lease expires/);
  assert.match(done, /LAST RUN\n/);
  assert.match(done, /Ran on\s+disp-a\n/);
  assert.match(done, /Claimed at\s+\d{4}-/);
  const running = formatTaskDetails(await getTask(t.db, IDS.runningHealthy), { now });
  assert.match(running, /LOCK AND LEASE\n/);
  assert.match(running, /Locked by\s+disp-a\n/);
  assert.match(running, /Lease expires/);
});

Deno.test("dispatcher text logs print short ids, JSON logs full ones", () => {
  const id = "0f3bb2fa-1234-4abc-8def-0123456789ab";
  const e = { event: "completed", task_id: id, type: "t", duration_ms: 1200 } as const;
  const text = formatEvent(e, "text");
  assert.match(text, / Task 0f3bb2fa completed successfully/);
  assert.doesNotMatch(text, /1234-4abc/);
  const json = JSON.parse(formatEvent(e, "json"));
  assert.equal(json.task_id, id);
  assert.match(json.msg, new RegExp(`Task ${id} completed`));
  assert.match(formatEvent(e, "text", { fullId: true }), new RegExp(`Task ${id} completed`));
});
