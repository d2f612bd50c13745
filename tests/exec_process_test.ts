/**
 * `dispatch --exec` stops everything a command starts (issue 10, item 3): on --timeout, on
 * `cancel --force`, at shutdown and when the dispatcher itself is killed with SIGKILL; and the
 * command's environment holds no connection string or token.
 *
 * Each command records its start ("<task id> <its pid> <its process group>") and, only if it
 * runs to the end, its task id in a "done" file — so a stopped execution never appends, and the
 * count per task shows "ran exactly once" or "was stopped". What is still alive is read from
 * /proc: every process whose environment carries one of the test's task ids, or whose process
 * group is one a command ran in (these tests need Linux).
 */
import assert from "node:assert/strict";
import { executorEnv } from "../lib/dispatch/exec_env.ts";
import {
  EMBEDDED,
  eventually,
  runCli,
  spawnCli,
  TEST_DSN,
  type TestSchema,
  testSchema,
} from "./helpers.ts";
import { runMain } from "./run_main.ts";

const LINUX = Deno.build.os === "linux";

/** A test that reads /proc (and, with `server`, needs several real connections). */
function procTest(name: string, server: boolean, fn: () => Promise<void>): void {
  const why = !LINUX
    ? "reads /proc, Linux only"
    : server && EMBEDDED
    ? "needs several real connections"
    : null;
  // deno-lint-ignore no-console -- the suite must say what it skipped
  if (why) console.error(`skipped: "${name}" — ${why}`);
  Deno.test({ name, ignore: why !== null, fn });
}

async function enqueue(t: TestSchema, n: number): Promise<string[]> {
  const rows = await t.sql`insert into ${t.sql(t.table)} (type, status, params, created_at)
    select 'job', 'queued', jsonb_build_object('n', i), now() - (${n} - i) * interval '1 millisecond'
    from generate_series(1, ${n}) i returning id`;
  return rows.map((r) => r.id as string);
}

async function statuses(t: TestSchema): Promise<Record<string, number>> {
  const rows = await t.sql`select status::text as status, count(*)::int as n
    from ${t.sql(t.table)} group by 1`;
  return Object.fromEntries(rows.map((r) => [r.status, r.n]));
}

/** A scratch directory with the "started" and "done" records the commands write. */
async function records(): Promise<
  {
    dir: string;
    /** Shell that records the start of an execution. */
    start: string;
    /** Shell that records that an execution ran to its end. */
    done: string;
    started(): Promise<Array<{ id: string; pid: number; pgid: number }>>;
    done_(): Promise<string[]>;
    [Symbol.asyncDispose](): Promise<void>;
  }
> {
  const dir = await Deno.makeTempDir({ prefix: "seedtask-exec-" });
  const lines = async (name: string) => {
    const text = await Deno.readTextFile(`${dir}/${name}`).catch(() => "");
    return text.trim() === "" ? [] : text.trim().split("\n");
  };
  return {
    dir,
    // Field 5 of /proc/PID/stat is the process group.
    start: `echo "$SEEDTASK_TASK_ID $$ $(cut -d' ' -f5 /proc/$$/stat)" >> '${dir}/started'`,
    done: `echo "$SEEDTASK_TASK_ID" >> '${dir}/done'`,
    async started() {
      return (await lines("started")).map((l) => {
        const [id, pid, pgid] = l.split(" ");
        return { id: id!, pid: Number(pid), pgid: Number(pgid) };
      });
    },
    done_: () => lines("done"),
    async [Symbol.asyncDispose]() {
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/**
 * Processes still alive (zombies — dead, waiting to be reaped — do not count) that carry one of
 * `ids` as SEEDTASK_TASK_ID or belong to one of `groups`.
 */
async function survivors(ids: readonly string[], groups: Iterable<number> = []): Promise<string[]> {
  const markers = ids.map((id) => `SEEDTASK_TASK_ID=${id}`);
  const pgids = new Set(groups);
  const found: string[] = [];
  for await (const entry of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    let stat: string;
    let environ: string;
    let cmdline: string;
    try {
      stat = await Deno.readTextFile(`/proc/${entry.name}/stat`);
      environ = await Deno.readTextFile(`/proc/${entry.name}/environ`);
      cmdline = await Deno.readTextFile(`/proc/${entry.name}/cmdline`);
    } catch {
      continue; // gone meanwhile
    }
    const [state, , pgid] = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    if (state === "Z" || state === "X") continue;
    const env = environ.split("\0");
    if (pgids.has(Number(pgid)) || markers.some((m) => env.includes(m))) {
      found.push(`${entry.name} (group ${pgid}, ${state}): ${cmdline.replaceAll("\0", " ")}`);
    }
  }
  return found;
}

/** The process groups the commands led (before the fix they shared the dispatcher's). */
function groupsOf(started: Array<{ pid: number; pgid: number }>): number[] {
  return started.filter((s) => s.pgid === s.pid).map((s) => s.pgid);
}

/** Waits until no process of `ids` / `groups` is alive. */
async function noSurvivors(
  ids: readonly string[],
  groups: Iterable<number>,
  what: string,
): Promise<void> {
  let last: string[] = [];
  await eventually(async () => (last = await survivors(ids, groups)).length === 0, 20_000, what)
    .catch((err) => {
      throw new Error(`${(err as Error).message}; still alive:\n${last.join("\n")}`);
    });
}

function count(text: string, pattern: RegExp): number {
  return text.match(new RegExp(pattern.source, "g"))?.length ?? 0;
}

procTest(
  "dispatch --timeout stops the command's whole process group, TERM first",
  false,
  async () => {
    await using t = await testSchema();
    await using rec = await records();
    const ids = await enqueue(t, 2);
    // The shell traps TERM to record it (a command may clean up); its child `sleep` holds
    // stdout, as a real worker's children would.
    const cmd = `cat >/dev/null; ${rec.start}; ` +
      `trap 'echo "$SEEDTASK_TASK_ID" >> ${rec.dir}/termed; exit 143' TERM; ` +
      `sleep 60 & wait; ${rec.done}`;
    const p = spawnCli([
      ...t.args,
      "dispatch",
      "--name",
      "timer",
      "--timeout",
      "1s",
      "--kill-grace",
      "5s",
      "--max-attempts",
      "1",
      "--exec",
      cmd,
    ]);
    try {
      await eventually(async () => (await statuses(t)).failed === 2, 20_000, "both timed out");
    } finally {
      p.child.kill("SIGTERM");
    }
    assert.equal(await p.exit(), 0, p.stderr());
    const rows = await t.sql`select error from ${t.sql(t.table)}`;
    assert.ok(
      rows.every((r) =>
        r.error === "Max attempts (1) exceeded: Executor command timed out after 1000ms"
      ),
      JSON.stringify(rows),
    );
    const started = await rec.started();
    assert.equal(started.length, 2);
    for (const s of started) assert.equal(s.pgid, s.pid, "the command leads its own process group");
    // TERM reached the shell (its trap ran) and the group is gone: the sleep too.
    const termed = (await Deno.readTextFile(`${rec.dir}/termed`)).trim().split("\n").sort();
    assert.deepEqual(termed, [...ids].sort());
    assert.deepEqual(await survivors(ids, groupsOf(started)), []);
    assert.deepEqual(await rec.done_(), [], "no execution ran to its end");
  },
);

procTest(
  "cancel --force of a running task kills its group (KILL when TERM is ignored) and logs once",
  true,
  async () => {
    await using t = await testSchema();
    await using rec = await records();
    const [victim, other] = await enqueue(t, 2) as [string, string];
    // `trap '' TERM` is inherited by sleep: only KILL stops this command.
    const cmd = `cat >/dev/null; ${rec.start}; trap '' TERM; sleep 60; ${rec.done}`;
    const p = spawnCli([
      ...t.args,
      "dispatch",
      "--name",
      "canceller",
      "--lease",
      "1500ms", // a heartbeat every 500ms: several during the grace below
      "--kill-grace",
      "2s",
      "--shutdown-timeout",
      "100ms",
      "--exec",
      cmd,
    ]);
    let started: Array<{ id: string; pid: number; pgid: number }> = [];
    try {
      await eventually(
        async () => (started = await rec.started()).length === 2,
        20_000,
        "both started",
      );
      const cancel = await runMain([...t.args, "cancel", "--force", victim]);
      assert.equal(cancel.code, 0, cancel.stderr);
      // The execution returns once its group is gone; only then is the failure (refused) logged.
      await p.waitFor(
        new RegExp(
          `Task ${victim.slice(0, 8)}: failure not recorded — the task is now "cancelled"`,
        ),
      );
      const mine = started.filter((s) => s.id === victim);
      assert.deepEqual(await survivors([victim], groupsOf(mine)), []);
      assert.equal(
        count(
          p.stdout(),
          new RegExp(`Task ${victim.slice(0, 8)} is no longer held by this dispatcher`),
        ),
        1,
        p.stdout(),
      );
      // The other task's command runs on.
      assert.notDeepEqual(await survivors([other]), []);
      assert.deepEqual(await statuses(t), { cancelled: 1, running: 1 });
    } finally {
      p.child.kill("SIGTERM");
    }
    assert.equal(await p.exit(), 0, p.stderr());
    assert.deepEqual(await survivors([victim, other], groupsOf(started)), []);
    assert.deepEqual(await rec.done_(), []);
    assert.doesNotMatch(p.stdout(), new RegExp(`Task ${other.slice(0, 8)} is no longer held`));
  },
);

procTest(
  "SIGTERM with a short --shutdown-timeout: the dispatcher exits after its commands' groups are gone",
  false,
  async () => {
    await using t = await testSchema();
    await using rec = await records();
    const ids = await enqueue(t, 3);
    // A background grandchild (in the group, not waited for) and a foreground sleep.
    const cmd = `cat >/dev/null; ${rec.start}; (sleep 61; ${rec.done}) & sleep 60; ${rec.done}`;
    const p = spawnCli([
      ...t.args,
      "dispatch",
      "--name",
      "shutter",
      "--shutdown-timeout",
      "200ms",
      "--kill-grace",
      "2s",
      "--exec",
      cmd,
    ]);
    let started: Array<{ id: string; pid: number; pgid: number }> = [];
    try {
      await eventually(
        async () => (started = await rec.started()).length === 3,
        20_000,
        "all started",
      );
    } finally {
      p.child.kill("SIGTERM");
    }
    assert.equal(await p.exit(), 0, p.stderr());
    // Checked at once, not eventually: the dispatcher waited for the groups before exiting.
    assert.deepEqual(await survivors(ids, groupsOf(started)), []);
    assert.deepEqual(await statuses(t), { retry: 3 });
    assert.equal(count(p.stdout(), /released at shutdown/), 3);
    assert.deepEqual(await rec.done_(), []);
  },
);

procTest(
  "a dispatcher killed with SIGKILL: its commands die, and after the lease each task runs once more, exactly once",
  true,
  async () => {
    await using t = await testSchema();
    await using rec = await records();
    const ids = await enqueue(t, 8);
    // The first execution would take a minute; the second finishes at once.
    const cmd = `cat >/dev/null; ${rec.start}; [ "$SEEDTASK_ATTEMPT" = 1 ] && sleep 60; ` +
      `${rec.done}; echo '{"done": true}'`;
    const victim = spawnCli([
      ...t.args,
      "dispatch",
      "--name",
      "victim",
      "--concurrency",
      "8",
      "--lease",
      "2s",
      "--kill-grace",
      "1s",
      "--exec",
      cmd,
    ]);
    let started: Array<{ id: string; pid: number; pgid: number }> = [];
    await eventually(async () => (started = await rec.started()).length === 8, 20_000, "8 started");
    victim.child.kill("SIGKILL");
    await victim.exit();
    await noSurvivors(ids, groupsOf(started), "the killed dispatcher's commands to die");
    assert.deepEqual(await statuses(t), { running: 8 });

    const rescuer = spawnCli([
      ...t.args,
      "dispatch",
      "--name",
      "rescuer",
      "--lease",
      "2s",
      "--poll",
      "200ms",
      "--exec",
      cmd,
    ]);
    try {
      await eventually(async () => (await statuses(t)).completed === 8, 30_000, "all completed");
    } finally {
      rescuer.child.kill("SIGTERM");
    }
    assert.equal(await rescuer.exit(), 0, rescuer.stderr());
    // Nothing of the first executions is alive, so nothing can still append: each task's side
    // effect is recorded exactly once.
    const all = await rec.started();
    assert.deepEqual(await survivors(ids, groupsOf(all)), []);
    assert.deepEqual((await rec.done_()).sort(), [...ids].sort());
    const rows = await t.sql`select attempts, locked_by from ${t.sql(t.table)}`;
    assert.ok(rows.every((r) => r.attempts === 2 && r.locked_by === "rescuer"));
  },
);

procTest(
  "a command that leaves a background process behind completes, and the leftover is stopped",
  false,
  async () => {
    await using t = await testSchema();
    await using rec = await records();
    const ids = await enqueue(t, 1);
    // The leftover keeps stdout open: without the group kill the execution would last a minute.
    const cmd = `cat >/dev/null; ${rec.start}; (sleep 60; ${rec.done}) & echo '{"quick": true}'`;
    const p = spawnCli([...t.args, "dispatch", "--once", "--exec", cmd]);
    assert.equal(await p.exit(), 0, p.stderr());
    const rows = await t.sql`select status::text, result from ${t.sql(t.table)}`;
    assert.deepEqual(rows.map((r) => ({ ...r })), [{
      status: "completed",
      result: { quick: true },
    }]);
    const started = await rec.started();
    assert.deepEqual(await survivors(ids, groupsOf(started)), []);
    assert.deepEqual(await rec.done_(), []);
  },
);

procTest(
  "an executor command's environment holds no DSN, password or token, only what --exec-env passes",
  false,
  async () => {
    await using t = await testSchema();
    await using rec = await records();
    const password = "s3cret-pw-4711";
    const token = "tok-9f8e7d";
    const url = new URL(TEST_DSN);
    url.password = password; // the test server trusts local connections: any password works
    const dsn = url.toString();
    const env = {
      PG_DSN: dsn,
      SEEDCORE_PG_DSN: dsn,
      SEEDTASK_TOKEN: token,
      API_KEY: "key-for-the-worker",
      LANG: "C.UTF-8",
      TZ: "UTC",
    };
    const cmd = `env > '${rec.dir}/env-'"$SEEDTASK_TASK_ID"; echo '{}'`;
    const base = ["--table", t.table, "dispatch", "--once", "--exec", cmd];
    const [first] = await enqueue(t, 1);

    // Nothing passed: the DSN comes from PG_DSN, and none of it reaches the command.
    let r = await runCli(base, { env });
    assert.equal(r.code, 0, r.stderr);
    const bare = await Deno.readTextFile(`${rec.dir}/env-${first}`);
    for (const secret of [password, token, "PG_DSN", "SEEDTASK_TOKEN", "API_KEY", "NO_COLOR"]) {
      assert.ok(!bare.includes(secret), `${secret} in the environment:\n${bare}`);
    }
    const vars = Object.fromEntries(
      bare.trim().split("\n").map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]),
    );
    assert.equal(vars.SEEDTASK_TASK_ID, first);
    assert.equal(vars.SEEDTASK_TASK_TYPE, "job");
    assert.equal(vars.SEEDTASK_ATTEMPT, "1");
    assert.equal(vars.PATH, Deno.env.get("PATH"));
    assert.equal(vars.LANG, "C.UTF-8");
    assert.equal(vars.TZ, "UTC");
    assert.ok(vars.HOME);

    // --exec-env NAME passes the dispatcher's value, NAME=value a literal one.
    const [second] = await enqueue(t, 1);
    r = await runCli([...base, "--exec-env", "API_KEY", "--exec-env", "MODE=batch"], { env });
    assert.equal(r.code, 0, r.stderr);
    const passed = await Deno.readTextFile(`${rec.dir}/env-${second}`);
    assert.match(passed, /^API_KEY=key-for-the-worker$/m);
    assert.match(passed, /^MODE=batch$/m);
    for (const secret of [password, token, "PG_DSN", "SEEDTASK_TOKEN"]) {
      assert.ok(!passed.includes(secret), `${secret} in the environment:\n${passed}`);
    }
  },
);

Deno.test("dispatch rejects a bad --exec-env or --kill-grace with exit 2 and runs nothing", async () => {
  await using t = await testSchema();
  await enqueue(t, 1);
  for (
    const [args, message] of [
      [["--exec-env", "1BAD"], /invalid --exec-env "1BAD": expected NAME or NAME=value/],
      [["--exec-env", "NOT_SET_ANYWHERE_42"], /--exec-env "NOT_SET_ANYWHERE_42": .*not set/],
      [
        ["--exec-env", "SEEDTASK_TASK_ID=x"],
        /--exec-env "SEEDTASK_TASK_ID=x": .*set by the dispatcher/,
      ],
      [["--kill-grace", "soon"], /invalid kill-grace "soon"/],
    ] as const
  ) {
    const r = await runMain([...t.args, "dispatch", "--once", "--exec", "true", ...args]);
    assert.equal(r.code, 2, `${args}: ${r.stderr}`);
    assert.match(r.stderr, message);
    assert.equal(r.stdout, "");
  }
  assert.deepEqual(await statuses(t), { queued: 1 });
});

Deno.test("executorEnv() keeps the safe base and what is named, and nothing else", () => {
  const source = {
    PATH: "/usr/bin:/bin",
    HOME: "/home/w",
    LANG: "de_DE.UTF-8",
    LC_TIME: "C",
    TZ: "Europe/Berlin",
    TMPDIR: "/scratch",
    PG_DSN: "postgres://u:pw@db/x",
    SEEDCORE_PG_DSN: "postgres://u:pw@db/x",
    SEEDTASK_TOKEN: "t",
    API_KEY: "k",
    SystemRoot: "C:\\Windows",
  };
  assert.deepEqual(executorEnv(source, [], "linux"), {
    PATH: "/usr/bin:/bin",
    HOME: "/home/w",
    LANG: "de_DE.UTF-8",
    LC_TIME: "C",
    TZ: "Europe/Berlin",
    TMPDIR: "/scratch",
  });
  assert.deepEqual(executorEnv(source, ["API_KEY", "MODE=a=b", "EMPTY="], "linux"), {
    PATH: "/usr/bin:/bin",
    HOME: "/home/w",
    LANG: "de_DE.UTF-8",
    LC_TIME: "C",
    TZ: "Europe/Berlin",
    TMPDIR: "/scratch",
    API_KEY: "k",
    MODE: "a=b",
    EMPTY: "",
  });
  // Windows names are case-insensitive, and cmd needs SystemRoot to start programs.
  const win = executorEnv(
    { Path: "C:\\bin", SystemRoot: "C:\\Windows", PG_DSN: "x" },
    [],
    "windows",
  );
  assert.deepEqual(win, { Path: "C:\\bin", SystemRoot: "C:\\Windows" });
  assert.throws(() => executorEnv(source, ["A-B"]), /Invalid --exec-env "A-B"/);
  assert.throws(() => executorEnv(source, ["=x"]), /Invalid --exec-env "=x"/);
  assert.throws(() => executorEnv(source, ["MISSING"]), /MISSING is not set/);
  assert.throws(() => executorEnv(source, ["SEEDTASK_ATTEMPT=9"]), /set by the dispatcher/);
});
