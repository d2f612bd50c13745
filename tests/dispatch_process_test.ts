/**
 * `seedtask dispatch` as real processes against a real PostgreSQL: several dispatchers at once,
 * SIGKILL, SIGTERM, leases and LISTEN (issue 3, "Done when").
 */
import assert from "node:assert/strict";
import {
  eventually,
  runCli,
  serverTest,
  spawnCli,
  type TestSchema,
  testSchema,
} from "./helpers.ts";

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
  "four dispatch processes drain 2,000 tasks: each executed exactly once",
  "needs several real connections",
  async () => {
    await using t = await testSchema();
    await enqueue(t, 2000);
    const log = await tempLog();
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
        "--exec",
        recording(`echo '{"ok": true}'`),
      ], { env: { EXEC_LOG: log } }));
    const codes = await Promise.all(procs.map((p) => p.exit()));
    assert.deepEqual(codes, [0, 0, 0, 0], procs.map((p) => p.stderr()).join("\n"));
    const runs = await executions(log);
    assert.equal(runs.length, 2000, "2,000 executions");
    assert.equal(new Set(runs.map((r) => r.id)).size, 2000, "each task exactly once");
    assert.ok(runs.every((r) => r.attempt === 1));
    assert.deepEqual(await count(t), { completed: 2000 });
    const [{ bad }] = await t.sql`select count(*)::int as bad from ${t.sql(t.table)}
    where attempts <> 1 or result <> '{"ok": true}'::jsonb` as unknown as [{ bad: number }];
    assert.equal(bad, 0);
    // the work was shared between the processes
    const owners = await t.sql`select locked_by, count(*)::int as n from ${
      t.sql(t.table)
    } group by 1`;
    assert.ok(owners.length >= 2, JSON.stringify(owners));
    // every log line of a task event names the task
    for (const line of procs.flatMap((p) => p.stdout().trim().split("\n"))) {
      if (/Processing|Sending|completed successfully/.test(line)) {
        assert.match(line, /task [0-9a-f-]{36}|Task [0-9a-f-]{36}/);
      }
    }
    await Deno.remove(log);
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
    "--poll",
    "5s",
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
    // run_after = failure time + base * 2^(attempt-1): the next start is at least that late,
    // and (woken by its own timer, not the 5s poll) not much later.
    const gap1 = mine[1]!.at - mine[0]!.at;
    const gap2 = mine[2]!.at - mine[1]!.at;
    assert.ok(gap1 >= base && gap1 < base + 1500, `first gap ${gap1}ms`);
    assert.ok(gap2 >= 2 * base && gap2 < 2 * base + 1500, `second gap ${gap2}ms`);
  }
  assert.match(
    p.stdout(),
    /Task [0-9a-f-]{36} failed \(attempt 1\/3\), retrying in 0\.4s: embedding service unavailable/,
  );
  assert.match(p.stdout(), /Task [0-9a-f-]{36} failed \(attempt 2\/3\), retrying in 0\.8s/);
  assert.match(
    p.stdout(),
    /Task [0-9a-f-]{36} failed permanently after 3\/3 attempts: embedding service unavailable/,
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
    const cmd = recording(`sleep 3.5; echo '{"long": true}'`);
    const owner = spawnCli(
      [
        ...t.args,
        "dispatch",
        "--name",
        "owner",
        "--lease",
        "1s",
        "--exec-env",
        "EXEC_LOG",
        "--exec",
        cmd,
      ],
      {
        env: { EXEC_LOG: log },
      },
    );
    await eventually(async () => (await executions(log)).length === 2, 20_000, "both started");
    // A second dispatcher with an eager reaper watches the whole time.
    const rival = spawnCli([
      ...t.args,
      "dispatch",
      "--name",
      "rival",
      "--lease",
      "1s",
      "--poll",
      "100ms",
      "--exec-env",
      "EXEC_LOG",
      "--exec",
      cmd,
    ], {
      env: { EXEC_LOG: log },
    });
    try {
      await eventually(async () => (await count(t)).completed === 2, 20_000, "both completed");
    } finally {
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
  },
);

Deno.test("SIGTERM during work: in-flight tasks finish, exit 0, nothing left running", async () => {
  await using t = await testSchema();
  await enqueue(t, 4);
  const log = await tempLog();
  const p = spawnCli([
    ...t.args,
    "dispatch",
    "--name",
    "graceful",
    "--concurrency",
    "2",
    "--exec-env",
    "EXEC_LOG",
    "--exec",
    recording(`sleep 1.5; echo '{"ok": 1}'`),
  ], { env: { EXEC_LOG: log } });
  await eventually(async () => (await executions(log)).length === 2, 20_000, "two in flight");
  p.child.kill("SIGTERM");
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
      "--poll",
      "30s",
      "--exec",
      `cat >/dev/null; echo '{}'`,
    ]);
    try {
      await p.waitFor(/Dispatcher listener started .*listen/);
      await new Promise((r) => setTimeout(r, 300)); // the first (empty) claim is done; now idle
      const enq = await runCli([...t.args, "enqueue", "--type", "ping"]);
      const enqueuedAt = Date.now();
      const id = enq.stdout.trim();
      await eventually(async () => (await count(t)).completed === 1, 10_000, "picked up");
      const latency = Date.now() - enqueuedAt;
      assert.ok(latency < 3000, `picked up after ${latency}ms with a 30s poll`);
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
  const port = 20_000 + Math.floor(Math.random() * 20_000);
  const p = spawnCli([
    ...t.args,
    "dispatch",
    "--name",
    "metered",
    "--log-format",
    "json",
    "--metrics-port",
    String(port),
    "--exec",
    `cat >/dev/null; echo '{"n": 1}'`,
  ]);
  try {
    await eventually(async () => (await count(t)).completed === 3, 20_000, "three completed");
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    assert.match(text, /^seedtask_dispatcher_claimed_total\{dispatcher="metered"\} 3$/m);
    assert.match(text, /^seedtask_dispatcher_completed_total\{dispatcher="metered"\} 3$/m);
    assert.match(text, /^seedtask_dispatcher_in_flight\{dispatcher="metered"\} 0$/m);
  } finally {
    p.child.kill("SIGINT");
  }
  assert.equal(await p.exit(), 0);
  const events = p.stdout().trim().split("\n").map((l) => JSON.parse(l));
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
    const r = await runCli([...t.args, "dispatch", ...args]);
    assert.equal(r.code, 2, `${args}: ${r.stderr}`);
    assert.match(r.stderr, message);
  }
  await t.sql`alter table ${t.sql(t.table)} drop column owner_id`;
  const r = await runCli([...t.args, "dispatch", "--exec", "true", "--once"]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /has no lease columns .* run `seedtask migrate`/);
});
