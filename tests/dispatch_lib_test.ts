import assert from "node:assert/strict";
import { backoffDelay } from "../lib/dispatch/backoff.ts";
import { claimTasks } from "../lib/dispatch/claim_tasks.ts";
import { connect } from "../lib/db.ts";
import { resolveConfig } from "../lib/config.ts";
import type { DispatchEvent } from "../lib/dispatch/events.ts";
import { createDispatcher } from "../lib/dispatch/dispatcher.ts";
import { completeTasks } from "../lib/dispatch/finish_task.ts";
import { cancelTasks } from "../lib/ops/task_transitions.ts";
import { requeueStale } from "../lib/ops/requeue_stale.ts";
import type { Task } from "../lib/table/contract.ts";
import { eventually, serverTest, TEST_DSN, testSchema } from "./helpers.ts";

Deno.test("backoffDelay() doubles from the base up to the cap, plus bounded jitter", () => {
  const policy = { baseMs: 10_000, maxMs: 300_000, jitter: 0 };
  assert.deepEqual([1, 2, 3, 4, 5, 6, 7].map((a) => backoffDelay(a, policy)), [
    10_000,
    20_000,
    40_000,
    80_000,
    160_000,
    300_000,
    300_000,
  ]);
  assert.equal(backoffDelay(1000, policy), 300_000);
  assert.equal(backoffDelay(2, { ...policy, jitter: 0.1 }, () => 0.5), 21_000);
  assert.equal(backoffDelay(2, { ...policy, jitter: 0.1 }, () => 0.999), 21_998);
});

serverTest(
  "claimTasks() on several connections: each row goes to exactly one claimer",
  "needs several real connections",
  async () => {
    await using t = await testSchema();
    await t.sql`insert into ${t.sql(t.table)} (type, status, created_at)
    select 'job', 'queued', now() - i * interval '1 second' from generate_series(1, 300) i`;
    // Eight pools (separate connections) claim concurrently until the queue is empty.
    const pools = Array.from(
      { length: 8 },
      () => connect(resolveConfig({ dsn: TEST_DSN, table: t.table }, {})),
    );
    try {
      const claimed = await Promise.all(pools.map(async (db, i) => {
        const mine: string[] = [];
        while (true) {
          const batch = await claimTasks(db, { owner: `w${i}`, limit: 7, leaseMs: 60_000 });
          if (batch.length === 0) return mine;
          mine.push(...batch.map((x) => x.id));
        }
      }));
      const all = claimed.flat();
      assert.equal(all.length, 300);
      assert.equal(new Set(all).size, 300, "no task claimed twice");
      assert.ok(claimed.filter((c) => c.length > 0).length >= 2, "the work was shared");
      const rows = await t.sql`select status, attempts, locked_by = owner_id as same,
      lease_expires_at > now() + interval '50 seconds' as leased from ${t.sql(t.table)}`;
      assert.ok(
        rows.every((r) => r.status === "running" && r.attempts === 1 && r.same && r.leased),
      );
    } finally {
      await Promise.all(pools.map((p) => p.close()));
    }
  },
);

serverTest(
  "claimTasks() takes ready tasks oldest first, honours run_after, types and locks",
  "needs a second real session holding a row lock",
  async () => {
    await using t = await testSchema();
    const tbl = t.sql(t.table);
    const [a, b, c, d, e] = await t.sql`
    insert into ${tbl} (type, status, created_at, run_after) values
      ('x', 'queued', now() - interval '3 minutes', null),
      ('y', 'retry', now() - interval '1 hour', now() - interval '1 minute'),
      ('x', 'queued', now() - interval '2 minutes', now() + interval '1 hour'),
      ('x', 'created', now() - interval '4 minutes', null),
      ('x', 'queued', now() - interval '30 seconds', null)
    returning id`;
    // Another transaction holds the oldest ready row: the claim skips it instead of waiting.
    const blocker = await t.sql.reserve();
    await blocker`begin`;
    await blocker`select 1 from ${tbl} where id = ${a!.id} for update`;
    try {
      const first = await claimTasks(t.db, { owner: "w", limit: 10, leaseMs: 1000 });
      assert.deepEqual(first.map((r) => r.id), [b!.id, e!.id]);
    } finally {
      await blocker`rollback`;
      blocker.release();
    }
    const typed = await claimTasks(t.db, { owner: "w", limit: 10, leaseMs: 1000, types: ["y"] });
    assert.deepEqual(typed, []);
    const rest = await claimTasks(t.db, { owner: "w", limit: 10, leaseMs: 1000 });
    assert.deepEqual(rest.map((r) => r.id), [a!.id]);
    const later = await claimTasks(t.db, {
      owner: "w",
      limit: 10,
      leaseMs: 1000,
      now: new Date(Date.now() + 2 * 3600_000),
    });
    assert.deepEqual(later.map((r) => r.id), [c!.id]);
    const [staged] = await t.sql`select status from ${tbl} where id = ${d!.id}`;
    assert.equal(staged!.status, "created");
  },
);

Deno.test("completeTasks() completes only the executions still held, each by its own guard", async () => {
  await using t = await testSchema();
  const tbl = t.sql(t.table);
  await t.sql`insert into ${tbl} (type, status, created_at)
    select 'x', 'queued', now() - i * interval '1 second' from generate_series(1, 5) i`;
  const [mine, stolen, reaped, cancelled, untouched] = await claimTasks(t.db, {
    owner: "a",
    limit: 5,
    leaseMs: 60_000,
  });
  const claimOf = (task: Task) => ({ id: task.id, owner: "a", attempts: task.attempts });
  // The lease of `reaped` expires; a reaper returns it and "a" claims it again: attempt 2.
  await t.sql`update ${tbl} set lease_expires_at = now() - interval '1 second'
    where id = ${reaped!.id}`;
  assert.equal((await requeueStale(t.db, { leaseOnly: true, actor: "reaper" })).length, 1);
  const [again] = await claimTasks(t.db, { owner: "a", limit: 1, leaseMs: 60_000 });
  assert.deepEqual([again!.id, again!.attempts], [reaped!.id, 2]);
  assert.equal((await cancelTasks(t.db, [cancelled!.id], { force: true })).changed.length, 1);
  const before = await t.sql`select * from ${tbl} order by id`;

  const done = await completeTasks(t.db, [
    { claim: { ...claimOf(stolen!), owner: "b" }, result: "by another owner" },
    { claim: claimOf(reaped!), result: "by the stale attempt" },
    { claim: claimOf(cancelled!), result: "after the cancel" },
    { claim: claimOf(mine!), result: { ok: 1 } },
  ]);
  assert.deepEqual([...done], [mine!.id], "only the execution still held is completed");
  const after = await t.sql`select * from ${tbl} order by id`;
  for (const [i, row] of after.entries()) {
    if (row.id === mine!.id) continue;
    assert.deepEqual({ ...row }, { ...before[i] }, "a refused completion changes nothing");
  }
  const [completed] = await t.sql`select status, result, error, owner_id, lease_expires_at
    from ${tbl} where id = ${mine!.id}`;
  assert.deepEqual({ ...completed }, {
    status: "completed",
    result: { ok: 1 },
    error: null,
    owner_id: null,
    lease_expires_at: null,
  });
  assert.equal(untouched!.status, "running");
  // Once: the same execution cannot complete twice; the current attempt of `reaped` can.
  assert.deepEqual(await completeTasks(t.db, [{ claim: claimOf(mine!), result: 2 }]), new Set());
  assert.deepEqual(
    [...await completeTasks(t.db, [{ claim: claimOf(again!), result: "second attempt" }])],
    [reaped!.id],
  );
});

Deno.test("a dispatcher with handlers completes, retries with backoff and fails at max attempts", async () => {
  await using t = await testSchema();
  const tbl = t.sql(t.table);
  await t.sql`insert into ${tbl} (type, params) values
    ('ok', '{"n": 1}'), ('ok', '{"n": 2}'), ('flaky', '{}'), ('broken', '{}')`;
  await t.sql`update ${tbl} set status = 'queued'`;
  const calls: Record<string, number> = {};
  const events: DispatchEvent[] = [];
  const dispatcher = createDispatcher({
    db: t.db,
    name: "lib-test",
    pollMs: 20,
    maxAttempts: 3,
    backoff: { baseMs: 50, maxMs: 1000, jitter: 0 },
    handlers: {
      ok: (task) => ({ doubled: (task.params as { n: number }).n * 2 }),
      flaky: (task) => {
        calls[task.id] = (calls[task.id] ?? 0) + 1;
        if (task.attempts < 2) throw new Error("transient");
        return "second time lucky";
      },
      broken: () => {
        throw new Error("always broken");
      },
    },
    onEvent: (e) => events.push(e),
  });
  const run = dispatcher.run();
  await eventually(
    async () => {
      const [{ n }] = await t.sql`select count(*)::int as n from ${tbl}
      where status in ('completed', 'failed')` as unknown as [{ n: number }];
      return n === 4;
    },
    20_000,
    "all tasks finished",
  );
  dispatcher.stop("test done");
  const stats = await run;
  const rows = await t
    .sql`select type, status, attempts, result, error from ${tbl} order by type, params::text`;
  assert.deepEqual(rows.map((r) => ({ ...r })), [
    {
      type: "broken",
      status: "failed",
      attempts: 3,
      result: null,
      error: "Max attempts (3) exceeded: always broken",
    },
    { type: "flaky", status: "completed", attempts: 2, result: "second time lucky", error: null },
    { type: "ok", status: "completed", attempts: 1, result: { doubled: 2 }, error: null },
    { type: "ok", status: "completed", attempts: 1, result: { doubled: 4 }, error: null },
  ]);
  assert.deepEqual(
    { ...stats },
    { claimed: 7, completed: 3, retried: 3, failed: 1, reaped: 0, released: 0, refused: 0 },
  );
  const retries = events.flatMap((e) =>
    e.event === "retry" ? [[e.type, e.attempts, e.max_attempts, e.delay_ms, e.error].join(" ")] : []
  );
  assert.deepEqual(retries.sort(), [
    "broken 1 3 50 always broken",
    "broken 2 3 100 always broken",
    "flaky 1 3 50 transient",
  ]);
  // every task event names its task
  for (const e of events) {
    if (["processing", "sending", "completed", "retry", "failed"].includes(e.event)) {
      assert.match((e as { task_id: string }).task_id, /^[0-9a-f-]{36}$/);
    }
  }
});

Deno.test("a task cancelled while running stays cancelled when its execution ends", async () => {
  await using t = await testSchema();
  const tbl = t.sql(t.table);
  const [row] = await t
    .sql`insert into ${tbl} (type, status) values ('slow', 'queued') returning id`;
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  let started = false;
  const events: DispatchEvent[] = [];
  const dispatcher = createDispatcher({
    db: t.db,
    name: "cancel-test",
    pollMs: 20,
    handlers: {
      slow: async () => {
        started = true;
        await gate;
        return { finished: true };
      },
    },
    onEvent: (e) => events.push(e),
  });
  const run = dispatcher.run();
  await eventually(() => Promise.resolve(started), 10_000, "handler started");
  const report = await cancelTasks(t.db, [row!.id], { force: true });
  assert.equal(report.changed.length, 1);
  release();
  await eventually(
    () => Promise.resolve(events.some((e) => e.event === "refused")),
    10_000,
    "refusal",
  );
  dispatcher.stop();
  const stats = await run;
  const [after] = await t.sql`select status, result, attempts from ${tbl} where id = ${row!.id}`;
  assert.deepEqual({ ...after }, { status: "cancelled", result: null, attempts: 1 });
  assert.equal(stats.completed, 0);
  assert.equal(stats.refused, 1);
  const refused = events.find((e) => e.event === "refused");
  assert.deepEqual(refused, {
    event: "refused",
    task_id: row!.id,
    outcome: "completion",
    reason: 'the task is now "cancelled"',
  });
});

Deno.test("the HTTP executor posts the payload and maps every answer to an outcome", async () => {
  await using t = await testSchema();
  const tbl = t.sql(t.table);
  const received: unknown[] = [];
  let answerAtLast!: () => void;
  const unanswered = new Promise<void>((r) => (answerAtLast = r));
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const body = await req.json();
    received.push(body);
    switch (body.type) {
      case "ok":
        return Response.json({ success: true, result: { echoed: body.params } });
      case "refuse":
        return Response.json({ success: false, error: "organism said no" });
      case "crash":
        return new Response("internal trouble", { status: 500 });
      case "garbage":
        return new Response("<html>");
      default:
        // never answers: only the executor's timeout ends the request
        await unanswered;
        return Response.json({ success: true });
    }
  });
  try {
    await t.sql`insert into ${tbl} (type, status, params, domain, drift_score) values
      ('ok', 'queued', '{"x": 1}', 'user_9', 0.5), ('refuse', 'queued', '{}', null, 0),
      ('crash', 'queued', '{}', null, 0), ('garbage', 'queued', '{}', null, 0),
      ('slow', 'queued', '{}', null, 0)`;
    const { httpExecutor } = await import("../lib/dispatch/executors.ts");
    const url = `http://127.0.0.1:${server.addr.port}/run`;
    // The answers arrive long before a generous timeout, however loaded the machine; the
    // request that is never answered meets a short one.
    await createDispatcher({
      db: t.db,
      name: "http-test",
      once: true,
      maxAttempts: 1,
      types: ["ok", "refuse", "crash", "garbage"],
      executor: httpExecutor(url, { timeoutMs: 60_000 }),
    }).run();
    await createDispatcher({
      db: t.db,
      name: "http-test",
      once: true,
      maxAttempts: 1,
      types: ["slow"],
      executor: httpExecutor(url, { timeoutMs: 300 }),
    }).run();
    const rows = await t.sql`select type, status, result, error from ${tbl} order by type`;
    assert.deepEqual(rows.map((r) => ({ ...r })), [
      {
        type: "crash",
        status: "failed",
        result: null,
        error: "Max attempts (1) exceeded: HTTP 500 from executor: internal trouble",
      },
      {
        type: "garbage",
        status: "failed",
        result: null,
        error: "Max attempts (1) exceeded: Executor answered invalid JSON: <html>",
      },
      { type: "ok", status: "completed", result: { echoed: { x: 1 } }, error: null },
      {
        type: "refuse",
        status: "failed",
        result: null,
        error: "Max attempts (1) exceeded: organism said no",
      },
      {
        type: "slow",
        status: "failed",
        result: null,
        error: "Max attempts (1) exceeded: Executor timed out after 300ms",
      },
    ]);
    const ok = received.find((b) => (b as { type: string }).type === "ok") as Record<
      string,
      unknown
    >;
    assert.deepEqual(Object.keys(ok).sort(), [
      "description",
      "domain",
      "drift_score",
      "params",
      "task_id",
      "type",
    ]);
    assert.equal(ok.domain, "user_9");
    assert.equal(ok.drift_score, 0.5);
  } finally {
    answerAtLast();
    await server.shutdown();
  }
});

Deno.test("concurrency bounds running handlers while several claim lanes drain a backlog", async () => {
  await using t = await testSchema();
  const tbl = t.sql(t.table);
  await t.sql`insert into ${tbl} (type, status, params)
    select 'slow', 'queued', jsonb_build_object('i', i) from generate_series(1, 60) as i`;
  let running = 0;
  let peak = 0;
  const seen: number[] = [];
  // The first handlers hold their slots until all five are taken: the dispatcher must fill
  // every slot (however slowly the machine runs) and never a sixth. Then the backlog drains.
  let open!: () => void;
  const allSlotsTaken = new Promise<void>((r) => (open = r));
  let claimedWhenFull: number | undefined;
  const safetyNet = setTimeout(open, 60_000); // a bug must fail the test, not hang it
  // concurrency 5 with batch 2: three claim lanes, each claiming at most the free slots
  const dispatcher = createDispatcher({
    db: t.db,
    name: "lanes-test",
    concurrency: 5,
    batch: 2,
    once: true,
    pollMs: 20,
    handlers: {
      slow: async (task) => {
        running++;
        peak = Math.max(peak, running);
        seen.push((task.params as { i: number }).i);
        if (running === 5 && claimedWhenFull === undefined) {
          // All slots busy: no claim may be in flight, so the table holds exactly five
          // claimed tasks, none finished yet.
          const [{ n }] = await t.sql`select count(*)::int as n from ${tbl}
            where status <> 'queued'` as unknown as [{ n: number }];
          claimedWhenFull = n;
          open();
        }
        await allSlotsTaken;
        running--;
        return null;
      },
    },
  });
  const stats = await dispatcher.run();
  clearTimeout(safetyNet);
  assert.equal(peak, 5, "the slots were all used, and never more");
  assert.equal(claimedWhenFull, 5, "claims never took more tasks than free slots");
  assert.equal(stats.completed, 60);
  assert.deepEqual([...seen].sort((a, b) => a - b), Array.from({ length: 60 }, (_, i) => i + 1));
  const [row] = await t.sql`select count(*) filter (where status = 'completed')::int as done,
    max(attempts)::int as attempts from ${tbl}`;
  assert.deepEqual({ ...row }, { done: 60, attempts: 1 });
});

serverTest(
  "stop() during a claim ends the run at once, whatever the poll interval",
  "needs a second real session holding a table lock",
  async () => {
    await using t = await testSchema();
    const tbl = t.sql(t.table);
    await t.sql`insert into ${tbl} (type, status) values ('x', 'queued')`;
    // four claim lanes, and a poll no test waits for
    const dispatcher = createDispatcher({
      db: t.db,
      name: "stop-test",
      concurrency: 4,
      batch: 1,
      pollMs: 3_600_000,
      handlers: { x: () => null },
    });
    const run = dispatcher.run();
    await eventually(
      async () => (await t.sql`select 1 from ${tbl} where status = 'completed'`).length === 1,
      30_000,
      "the first task done",
    );
    // The next claim waits for a lock held by another session: stop() arrives mid-claim.
    const blocker = await t.sql.reserve();
    await blocker`begin`;
    await blocker`lock table ${tbl} in exclusive mode`;
    try {
      dispatcher.wake();
      await eventually(
        async () => {
          const [{ n }] = await t.sql`select count(*)::int as n from pg_stat_activity
            where wait_event_type = 'Lock' and query like ${`%${t.schema}%`}
              and pid <> pg_backend_pid()` as unknown as [{ n: number }];
          return n > 0;
        },
        30_000,
        "a claim waiting for the lock",
      );
      dispatcher.stop("test");
    } finally {
      await blocker`rollback`;
      blocker.release();
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    const outcome = await Promise.race([
      run.then(() => "stopped"),
      new Promise((r) => (timer = setTimeout(() => r("still running"), 30_000))),
    ]);
    clearTimeout(timer);
    if (outcome !== "stopped") {
      dispatcher.wake(); // let it end before the schema goes
      await run;
    }
    assert.equal(outcome, "stopped", "the stop was not lost while the claim ran");
  },
);
