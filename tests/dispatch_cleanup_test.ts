import assert from "node:assert/strict";
import type { DispatchEvent } from "../lib/dispatch/events.ts";
import { createDispatcher } from "../lib/dispatch/dispatcher.ts";
import { commandExecutor } from "../lib/dispatch/executors.ts";
import { DispatcherMetrics } from "../lib/dispatch/metrics.ts";
import { cancelTasks } from "../lib/ops/task_transitions.ts";
import { EMBEDDED, eventually, testSchema } from "./helpers.ts";

/** Resolves when `signal` aborts. */
function aborted(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener("abort", () => resolve(), { once: true });
  });
}

/** The value of one sample in a Prometheus text exposition. */
function sample(text: string, name: string): number {
  const line = text.split("\n").find((l) => l.startsWith(`${name}{`));
  assert.ok(line, `${name} is exposed`);
  return Number(line.split(" ").at(-1));
}

// With the sanitizers on (Deno 2.9 leaves them off by default, so they are asked for): a timer,
// an operation or a resource the dispatcher started and left behind fails this test. It goes through everything that starts
// one: a retry (whose wake-up is due long after the run), a lease lost to a forced cancel, a
// reaped task of a dead dispatcher, the LISTEN self-test, and a stop() that releases work
// still running after the shutdown timeout.
Deno.test({
  name: "a dispatcher's run() leaves nothing behind: retries, lease loss, reaping, stop",
  ignore: EMBEDDED, // LISTEN and a concurrent cancel need real connections
  sanitizeOps: true,
  sanitizeResources: true,
}, async () => {
  await using t = await testSchema();
  const tbl = t.sql(t.table);
  const [flaky, held, stuck] = await t.sql`
    insert into ${tbl} (type, status, created_at) values
      ('flaky', 'queued', now() - interval '3 seconds'),
      ('held', 'queued', now() - interval '2 seconds'),
      ('stuck', 'queued', now() - interval '1 second')
    returning id`;
  const [orphan] = await t.sql`
    insert into ${tbl} (type, status, attempts, locked_by, locked_at, owner_id, lease_expires_at)
    values ('ok', 'running', 1, 'dead-dispatcher', now() - interval '1 minute', 'dead-dispatcher',
      now() - interval '10 seconds')
    returning id`;
  const started = new Set<string>();
  const events: DispatchEvent[] = [];
  const seen = (event: string, taskId?: string) =>
    events.some((e) => e.event === event && (!taskId || ("task_id" in e && e.task_id === taskId)));
  const metrics = new DispatcherMetrics("cleanup-test");
  const dispatcher = createDispatcher({
    db: t.db,
    name: "cleanup-test",
    pollMs: 50,
    // Heartbeats every second; the lease is long enough that no heartbeat is missed under load.
    leaseMs: 3000,
    listen: true,
    // The retry is due in a minute: long after this test has ended.
    backoff: { baseMs: 60_000, jitter: 0 },
    shutdownTimeoutMs: 100,
    metrics,
    handlers: {
      flaky: () => {
        throw new Error("transient");
      },
      held: async (task, { signal }) => {
        started.add(task.id);
        await aborted(signal);
        throw new Error("stopped");
      },
      stuck: async (task, { signal }) => {
        started.add(task.id);
        await aborted(signal);
        return "too late";
      },
      ok: () => ({ ok: true }),
    },
    onEvent: (e) => events.push(e),
  });
  const run = dispatcher.run();
  await eventually(
    () =>
      Promise.resolve(
        seen("retry", flaky!.id) && started.has(held!.id) && started.has(stuck!.id) &&
          seen("completed", orphan!.id) && seen("listening"),
      ),
    20_000,
    "the retry, both long handlers, the reaped task completed and the LISTEN self-test",
  );
  // A forced cancel takes the lease away: the next heartbeat notices, once, and aborts.
  const report = await cancelTasks(t.db, [held!.id], { force: true });
  assert.equal(report.changed.length, 1);
  await eventually(() => Promise.resolve(seen("refused", held!.id)), 20_000, "the refusal");
  dispatcher.stop("test done");
  const stats = await run;

  assert.deepEqual({ ...stats }, {
    claimed: 4,
    completed: 1,
    retried: 1,
    failed: 0,
    reaped: 1,
    released: 1,
    refused: 1,
  });
  assert.equal(events.filter((e) => e.event === "lease_lost").length, 1, "lease_lost once");
  assert.deepEqual(events.find((e) => e.event === "lease_lost"), {
    event: "lease_lost",
    task_id: held!.id,
  });
  assert.ok(seen("released", stuck!.id));
  assert.ok(seen("reaped", orphan!.id));
  // The metrics count the same outcomes as the stats.
  const text = await metrics.text();
  assert.deepEqual(
    ["claimed", "completed", "retried", "failed", "reaped"].map((k) =>
      sample(text, `seedtask_dispatcher_${k}_total`)
    ),
    [4, 1, 1, 0, 1],
  );
  assert.equal(sample(text, "seedtask_dispatcher_in_flight"), 0);
  const rows = await t.sql`select id, status, attempts,
      run_after > now() + interval '30 seconds' as later from ${tbl}`;
  const byId = new Map(rows.map((r) => [r.id, { status: r.status, attempts: r.attempts }]));
  assert.deepEqual(byId.get(flaky!.id), { status: "retry", attempts: 1 });
  assert.ok(rows.find((r) => r.id === flaky!.id)!.later, "the retry waits out its backoff");
  assert.deepEqual(byId.get(held!.id), { status: "cancelled", attempts: 1 });
  assert.deepEqual(byId.get(stuck!.id), { status: "retry", attempts: 1 });
  assert.deepEqual(byId.get(orphan!.id), { status: "completed", attempts: 2 });
});

// The command executor's timers (the timeout, the kill grace, the wait for a group to go) and
// processes (the command's, the watchdog) end with the execution, or with close().
Deno.test({
  name: "a dispatcher running commands leaves nothing behind once its executor is closed",
  ignore: EMBEDDED || Deno.build.os === "windows",
  sanitizeOps: true,
  sanitizeResources: true,
}, async () => {
  await using t = await testSchema();
  const tbl = t.sql(t.table);
  const [stubborn, quick] = await t.sql`
    insert into ${tbl} (type, status, created_at) values
      ('stubborn', 'queued', now() - interval '2 seconds'),
      ('quick', 'queued', now() - interval '1 second')
    returning id`;
  // The stubborn command ignores TERM: stopping it takes the kill grace, then KILL.
  const mark = await Deno.makeTempFile();
  await Deno.remove(mark);
  const executor = commandExecutor(
    `case "$SEEDTASK_TASK_TYPE" in
       stubborn) trap '' TERM; touch "$MARK"; sleep 30 ;;
       *) cat >/dev/null; echo '{"ok": true}' ;;
     esac`,
    { timeoutMs: 60_000, killGraceMs: 200, env: { PATH: "/usr/bin:/bin", MARK: mark } },
  );
  const events: DispatchEvent[] = [];
  const dispatcher = createDispatcher({
    db: t.db,
    name: "command-cleanup-test",
    pollMs: 50,
    leaseMs: 3000,
    executor,
    onEvent: (e) => events.push(e),
  });
  const run = dispatcher.run();
  try {
    await eventually(
      async () => {
        const [row] = await t.sql`select status from ${tbl} where id = ${quick!.id}`;
        const started = await Deno.stat(mark).then(() => true, () => false);
        return row!.status === "completed" && started;
      },
      20_000,
      "the quick task completed and the stubborn one started",
    );
    assert.equal((await cancelTasks(t.db, [stubborn!.id], { force: true })).changed.length, 1);
    await eventually(
      () => Promise.resolve(events.some((e) => e.event === "refused")),
      20_000,
      "the stubborn command stopped and its failure refused",
    );
  } finally {
    dispatcher.stop("test done");
    await run;
    await executor.close?.();
    await Deno.remove(mark).catch(() => {});
  }
  assert.deepEqual(events.filter((e) => e.event === "lease_lost"), [
    { event: "lease_lost", task_id: stubborn!.id },
  ]);
  assert.deepEqual({ ...dispatcher.stats }, {
    claimed: 2,
    completed: 1,
    retried: 0,
    failed: 0,
    reaped: 0,
    released: 0,
    refused: 1,
  });
});
