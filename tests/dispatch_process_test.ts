/**
 * `seedtask dispatch` as real processes against a real PostgreSQL: several dispatchers at once,
 * SIGKILL, SIGTERM, leases and LISTEN (issue 3, "Done when").
 */
import assert from "node:assert/strict";
import { eventually, serverTest, spawnCli, type TestSchema, testSchema } from "./helpers.ts";
import { runMain } from "./run_main.ts";

async function tempLog(): Promise<string> {
  return await Deno.makeTempFile({ prefix: "seedtask-exec-", suffix: ".log" });
}

/** Lines of the executor log: "<task id> <attempt> <epoch ms>". */
async function executions(
  log: string,
): Promise<Array<{ id: string; attempt: number; at: number }>> {
  const text = await Deno.readTextFile(log);
  return text.trim() === "" ? [] : text.trim().split("\n").map((l) => {
    const [id, attempt, at] = l.split(" ");
    return { id: id!, attempt: Number(attempt), at: Number(at) };
  });
}

/** Shell that records one execution start, then runs `rest`. */
function recording(rest: string): string {
  return `cat >/dev/null; echo "$SEEDTASK_TASK_ID $SEEDTASK_ATTEMPT $(date +%s%3N)" >> "$EXEC_LOG"; ${rest}`;
}

async function count(t: TestSchema, where = "true"): Promise<Record<string, number>> {
  const rows = await t.sql.unsafe(
    `select status::text as status, count(*)::int as n from ${t.table} where ${where} group by 1`,
  );
  return Object.fromEntries(rows.map((r) => [r.status, r.n]));
}

async function enqueue(t: TestSchema, n: number, type = "job"): Promise<void> {
  await t.sql`insert into ${t.sql(t.table)} (type, status, params, created_at)
    select ${type}, 'queued', jsonb_build_object('n', i), now() - (${n} - i) * interval '1 millisecond'
    from generate_series(1, ${n}) i`;
}

serverTest(
  "four dispatch processes drain a backlog together: each task executed exactly once",
  "needs several real connections",
  async () => {
    await using t = await testSchema();
    const tasks = 300;
    await enqueue(t, tasks);
    const log = await tempLog();
    const go = `${log}.go`;
    // Executions wait for a go file until all four processes hold tasks: the work is shared
    // (and claims really race) however differently fast the processes start.
    const procs = Array.from({ length: 4 }, (_, i) =>
      spawnCli([
        ...t.args,
        "dispatch",
        "--once",
        "--name",
        `drain-${i}`,
        "--concurrency",
        "8",
        "--exec-env",
        "EXEC_LOG",
        "--exec-env",
        "GO",
        "--exec",
        recording(`while [ ! -e "$GO" ]; do sleep 0.05; done; echo '{"ok": true}'`),
      ], { env: { EXEC_LOG: log, GO: go } }));
    try {
      await eventually(
        async () => {
          const [{ n }] = await t.sql`select count(distinct locked_by)::int as n
            from ${t.sql(t.table)} where status = 'running'` as unknown as [{ n: number }];
          return n === 4;
        },
        60_000,
        "all four processes holding tasks",
      );
    } finally {
      await Deno.writeTextFile(go, "");
    }
    const codes = await Promise.all(procs.map((p) => p.exit()));
    assert.deepEqual(codes, [0, 0, 0, 0], procs.map((p) => p.stderr()).join("\n"));
    const runs = await executions(log);
    assert.equal(runs.length, tasks, `${tasks} executions`);
    assert.equal(new Set(runs.map((r) => r.id)).size, tasks, "each task exactly once");
    assert.ok(runs.every((r) => r.attempt === 1));
    assert.deepEqual(await count(t), { completed: tasks });
    const [{ bad }] = await t.sql`select count(*)::int as bad from ${t.sql(t.table)}
    where attempts <> 1 or result <> '{"ok": true}'::jsonb` as unknown as [{ bad: number }];
    assert.equal(bad, 0);
    // the work was shared between the processes
    const owners = await t.sql`select locked_by, count(*)::int as n from ${
      t.sql(t.table)
    } group by 1`;
    assert.equal(owners.length, 4, JSON.stringify(owners));
    // every log line of a task event names the task
    for (const line of procs.flatMap((p) => p.stdout().trim().split("\n"))) {
      if (/Processing|Sending|completed successfully/.test(line)) {
        assert.match(line, /task [0-9a-f]{8}|Task [0-9a-f]{8}/);
      }
    }
    await Deno.remove(log);
    await Deno.remove(go);
  },
);

Deno.test("an always-failing executor runs each task three times, with backoff, then fails it", async () => {
  await using t = await testSchema();
  await enqueue(t, 5, "doomed");
  const log = await tempLog();
  const base = 400;
  const p = spawnCli([
    ...t.args,
    "dispatch",
    "--name",
    "doom",
    "--max-attempts",
    "3",
    "--backoff-base",
    `${base}ms`,
    "--backoff-jitter",
    "0",
    // No poll during the test: only the dispatcher's own timer for a retry coming due can
    // start the second and third attempts.
    "--poll",
    "1h",
    "--exec-env",
    "EXEC_LOG",
    "--exec",
    recording("echo 'embedding service unavailable' >&2; exit 3"),
  ], { env: { EXEC_LOG: log } });
  try {
    await eventually(async () => (await count(t)).failed === 5, 30_000, "all five failed");
  } finally {
    p.child.kill("SIGTERM");
  }
  assert.equal(await p.exit(), 0, p.stderr());
  const rows = await t.sql`select id, status, attempts, error from ${t.sql(t.table)}`;
  for (const r of rows) {
    assert.equal(r.status, "failed");
    assert.equal(r.attempts, 3);
    assert.equal(r.error, "Max attempts (3) exceeded: embedding service unavailable");
  }
  const runs = await executions(log);
  assert.equal(runs.length, 15, "exactly three executions per task");
  for (const r of rows) {
    const mine = runs.filter((x) => x.id === r.id).sort((a, b) => a.at - b.at);
    assert.deepEqual(mine.map((x) => x.attempt), [1, 2, 3]);
    // run_after = failure time + base * 2^(attempt-1): the next start is at least that late
    const gap1 = mine[1]!.at - mine[0]!.at;
    const gap2 = mine[2]!.at - mine[1]!.at;
    assert.ok(gap1 >= base, `first gap ${gap1}ms`);
    assert.ok(gap2 >= 2 * base, `second gap ${gap2}ms`);
  }
  assert.match(
    p.stdout(),
    /Task [0-9a-f]{8} failed \(attempt 1\/3\), retrying in 0\.4s: embedding service unavailable/,
  );
  assert.match(p.stdout(), /Task [0-9a-f]{8} failed \(attempt 2\/3\), retrying in 0\.8s/);
  assert.match(
    p.stdout(),
    /Task [0-9a-f]{8} failed permanently after 3\/3 attempts: embedding service unavailable/,
  );
  await Deno.remove(log);
});

serverTest(
  "a dispatcher killed with SIGKILL mid-task: another completes its tasks after the lease",
  "needs several real connections",
  async () => {
    await using t = await testSchema();
    await enqueue(t, 6);
    const log = await tempLog();
    // First execution hangs (its dispatcher dies), later ones finish at once.
    const cmd = recording(`[ "$SEEDTASK_ATTEMPT" = 1 ] && sleep 20; echo '{"done": true}'`);
    const a = spawnCli(
      [
        ...t.args,
        "dispatch",
        "--name",
        "victim",
        "--lease",
        "2s",
        "--exec-env",
        "EXEC_LOG",
        "--exec",
        cmd,
      ],
      {
        env: { EXEC_LOG: log },
      },
    );
    await eventually(
      async () => (await executions(log)).length === 6,
      20_000,
      "six executions started",
    );
    a.child.kill("SIGKILL");
    await a.exit();
    assert.deepEqual(await count(t), { running: 6 });

    const b = spawnCli([
      ...t.args,
      "dispatch",
      "--name",
      "rescuer",
      "--lease",
      "2s",
      "--poll",
      "200ms",
      "--exec-env",
      "EXEC_LOG",
      "--exec",
      cmd,
    ], {
      env: { EXEC_LOG: log },
    });
    try {
      await eventually(async () => (await count(t)).completed === 6, 30_000, "all six completed");
    } finally {
      b.child.kill("SIGTERM");
    }
    assert.equal(await b.exit(), 0);
    const runs = await executions(log);
    const rows = await t.sql`select id, attempts, locked_by, error from ${t.sql(t.table)}`;
    for (const r of rows) {
      const n = runs.filter((x) => x.id === r.id).length;
      assert.equal(r.attempts, n, "attempts equal real executions");
      assert.equal(n, 2);
      assert.equal(r.locked_by, "rescuer");
      assert.match(r.error ?? "", /^$|lease expired/);
    }
    assert.match(b.stdout(), /lease expired \(locked by victim\): moved to retry/);
    await Deno.remove(log);
  },
);

serverTest(
  "a task running three times longer than its lease is not reclaimed while its dispatcher lives",
  "needs several real connections",
  async () => {
    await using t = await testSchema();
    await enqueue(t, 2);
    const log = await tempLog();
    const go = `${log}.go`;
    const lease = 2;
    // The executions last until the test has seen them run three leases long.
    const cmd = recording(`while [ ! -e "$GO" ]; do sleep 0.05; done; echo '{"long": true}'`);
    const dispatcher = (name: string, ...more: string[]) =>
      spawnCli([
        ...t.args,
        "dispatch",
        "--name",
        name,
        "--lease",
        `${lease}s`,
        ...more,
        "--exec-env",
        "EXEC_LOG",
        "--exec-env",
        "GO",
        "--exec",
        cmd,
      ], { env: { EXEC_LOG: log, GO: go } });
    const owner = dispatcher("owner");
    await eventually(async () => (await executions(log)).length === 2, 30_000, "both started");
    // A second dispatcher with an eager reaper watches the whole time.
    const rival = dispatcher("rival", "--poll", "100ms");
    try {
      await rival.waitFor(/Dispatcher rival started/, 30_000);
      await eventually(
        async () => {
          const [{ long }] = await t.sql`select bool_and(locked_at < now() - ${
            3 * lease
          } * interval '1 second') as long from ${t.sql(t.table)}` as unknown as [
            { long: boolean },
          ];
          return long;
        },
        30_000,
        "three leases of running",
      );
      await Deno.writeTextFile(go, "");
      await eventually(async () => (await count(t)).completed === 2, 30_000, "both completed");
    } finally {
      await Deno.writeTextFile(go, "");
      owner.child.kill("SIGTERM");
      rival.child.kill("SIGTERM");
    }
    assert.equal(await owner.exit(), 0);
    assert.equal(await rival.exit(), 0);
    const runs = await executions(log);
    assert.equal(runs.length, 2, "no second execution");
    const rows = await t.sql`select attempts, locked_by, error from ${t.sql(t.table)}`;
    assert.ok(rows.every((r) => r.attempts === 1 && r.locked_by === "owner" && r.error === null));
    assert.doesNotMatch(rival.stdout(), /lease expired/);
    await Deno.remove(log);
    await Deno.remove(go);
  },
);

Deno.test("SIGTERM during work: in-flight tasks finish, exit 0, nothing left running", async () => {
  await using t = await testSchema();
  await enqueue(t, 4);
  const log = await tempLog();
  const go = `${log}.go`;
  const p = spawnCli([
    ...t.args,
    "dispatch",
    "--name",
    "graceful",
    "--concurrency",
    "2",
    "--exec-env",
    "EXEC_LOG",
    "--exec-env",
    "GO",
    "--exec",
    recording(`while [ ! -e "$GO" ]; do sleep 0.05; done; echo '{"ok": 1}'`),
  ], { env: { EXEC_LOG: log, GO: go } });
  await eventually(async () => (await executions(log)).length === 2, 20_000, "two in flight");
  p.child.kill("SIGTERM");
  // the executions end only once the dispatcher has stopped claiming
  try {
    await p.waitFor(/stopping \(SIGTERM received\)/);
  } finally {
    await Deno.writeTextFile(go, "");
  }
  assert.equal(await p.exit(), 0, p.stderr());
  assert.deepEqual(await count(t), { completed: 2, queued: 2 });
  assert.match(
    p.stdout(),
    /Dispatcher graceful stopping \(SIGTERM received\): no new claims, 2 in flight/,
  );
  assert.match(
    p.stdout(),
    /Dispatcher graceful stopped: claimed 2, completed 2, retried 0, failed 0/,
  );

  // With a short shutdown timeout, unfinished work is released back to retry instead.
  const q = spawnCli([
    ...t.args,
    "dispatch",
    "--name",
    "impatient",
    "--shutdown-timeout",
    "300ms",
    "--exec-env",
    "EXEC_LOG",
    "--exec",
    recording(`sleep 30`),
  ], { env: { EXEC_LOG: log } });
  await eventually(async () => (await executions(log)).length === 4, 20_000, "two more in flight");
  q.child.kill("SIGTERM");
  assert.equal(await q.exit(), 0, q.stderr());
  assert.deepEqual(await count(t), { completed: 2, retry: 2 });
  const released = await t.sql`select attempts, error from ${
    t.sql(t.table)
  } where status = 'retry'`;
  assert.ok(
    released.every((r) => r.attempts === 1 && r.error === "released at shutdown of impatient"),
  );
  await Deno.remove(log);
  await Deno.remove(go);
});

serverTest(
  "dispatch --listen picks up a new task well before the poll interval",
  "PGlite does not deliver NOTIFY to other connections",
  async () => {
    await using t = await testSchema();
    const p = spawnCli([
      ...t.args,
      "dispatch",
      "--name",
      "listener",
      "--listen",
      // no poll during the test: only a NOTIFY can wake it
      "--poll",
      "1h",
      "--exec",
      `cat >/dev/null; echo '{}'`,
    ]);
    try {
      // The first claim follows the LISTEN self-test; a task enqueued before it is done is
      // picked up either way, and the wake below comes from the NOTIFY.
      await p.waitFor(/Listening for NOTIFY/);
      const enq = await runMain([...t.args, "enqueue", "--type", "ping"]);
      const id = enq.stdout.trim();
      await eventually(async () => (await count(t)).completed === 1, 30_000, "picked up");
      await p.waitFor(new RegExp(`Task ${id.slice(0, 8)} completed successfully`));
    } finally {
      p.child.kill("SIGTERM");
      await p.exit();
    }
  },
);

Deno.test("dispatch --log-format json and --metrics-port report the same work", async () => {
  await using t = await testSchema();
  await enqueue(t, 3);
  const p = spawnCli([
    ...t.args,
    "dispatch",
    "--name",
    "metered",
    "--log-format",
    "json",
    "--metrics-port",
    "0",
    "--exec",
    `cat >/dev/null; echo '{"n": 1}'`,
  ]);
  try {
    await eventually(async () => (await count(t)).completed === 3, 20_000, "three completed");
    // port 0: the system chose a free port, and the log names it
    await p.waitFor(/"event":"metrics"/);
    const url = p.stdout().split("\n").map((l) =>
      JSON.parse(l || "{}")
    ).find((e) => e.event === "metrics").url;
    assert.match(url, /^http:\/\/127\.0\.0\.1:[1-9]\d*\/metrics$/);
    const text = await (await fetch(url)).text();
    assert.match(text, /^seedtask_dispatcher_claimed_total\{dispatcher="metered"\} 3$/m);
    assert.match(text, /^seedtask_dispatcher_completed_total\{dispatcher="metered"\} 3$/m);
    assert.match(text, /^seedtask_dispatcher_in_flight\{dispatcher="metered"\} 0$/m);
  } finally {
    p.child.kill("SIGINT");
  }
  assert.equal(await p.exit(), 0);
  const events = p.stdout().trim().split("\n").map((l) => JSON.parse(l));
  assert.match(
    events.find((e) => e.event === "metrics").msg,
    /^\[QueueDispatcher\] Prometheus metrics of metered at http:\/\/127\.0\.0\.1:\d+\/metrics$/,
  );
  const completed = events.filter((e) => e.event === "completed");
  assert.equal(completed.length, 3);
  for (const e of completed) {
    assert.match(e.task_id, /^[0-9a-f-]{36}$/);
    assert.equal(e.level, "info");
    assert.match(e.ts, /^\d{4}-\d\d-\d\dT/);
    assert.match(e.msg, /^\[QueueDispatcher\] Task .* completed successfully/);
  }
});

Deno.test("dispatch rejects bad flags with exit 2 and a table without leases with exit 1", async () => {
  await using t = await testSchema();
  for (
    const [args, message] of [
      [[], /exactly one executor/],
      [["--exec", "true", "--executor-url", "http://x"], /exactly one executor/],
      [["--exec", "true", "--concurrency", "0"], /invalid concurrency "0"/],
      [["--exec", "true", "--lease", "500ms"], /--lease must be at least 1s/],
      [["--exec", "true", "--log-format", "xml"], /invalid --log-format "xml"/],
      [["--exec", "true", "--backoff-jitter", "2"], /invalid --backoff-jitter "2"/],
    ] as const
  ) {
    const r = await runMain([...t.args, "dispatch", ...args]);
    assert.equal(r.code, 2, `${args}: ${r.stderr}`);
    assert.match(r.stderr, message);
  }
  await t.sql`alter table ${t.sql(t.table)} drop column owner_id`;
  const r = await runMain([...t.args, "dispatch", "--exec", "true", "--once"]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /has no lease columns .* run `seedtask migrate`/);
});
