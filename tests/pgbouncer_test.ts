/**
 * seedtask through a real PgBouncer in transaction pooling mode (issue 10, item 4): every test
 * starts its own PgBouncer on a free loopback port, in front of the test server, with its own
 * ini and userlist in a temporary directory, and stops it at the end.
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import { resolveConfig } from "../lib/config.ts";
import { connect, guard } from "../lib/db.ts";
import { DatabaseError } from "../lib/errors.ts";
import { migrate } from "../lib/table/migrate.ts";
import {
  EMBEDDED,
  eventually,
  serverTest,
  spawnCli,
  TEST_DSN,
  type TestSchema,
  testSchema,
} from "./helpers.ts";
import { runMain } from "./run_main.ts";

/** The pgbouncer binary: $PGBOUNCER, then PATH, then Debian's /usr/sbin/pgbouncer. */
function findPgBouncer(): string | undefined {
  const candidates = [
    Deno.env.get("PGBOUNCER"),
    ...(Deno.env.get("PATH") ?? "").split(":").map((d) => `${d}/pgbouncer`),
    "/usr/sbin/pgbouncer",
  ];
  for (const c of candidates) {
    if (!c) continue;
    try {
      if (Deno.statSync(c).isFile) return c;
    } catch { /* not there */ }
  }
  return undefined;
}

const PGBOUNCER = findPgBouncer();
if (!PGBOUNCER && Deno.env.get("CI") === "true") {
  throw new Error("pgbouncer is not installed and CI=true: .ci/run installs it with apt-get");
}
const SKIP = EMBEDDED
  ? "needs a real PostgreSQL behind PgBouncer"
  : !PGBOUNCER
  ? "pgbouncer is not installed (apt-get install pgbouncer)"
  : undefined;

/** A test that needs PgBouncer; skipped, with the reason printed, when there is none. */
function bouncerTest(name: string, fn: () => Promise<void>): void {
  if (SKIP) {
    // deno-lint-ignore no-console -- the suite must say what it skipped
    console.error(`skipped: "${name}" — ${SKIP}`);
  }
  Deno.test({ name, ignore: SKIP !== undefined, fn });
}

/** Server connections PgBouncer keeps per user and database: small, so reuse is certain. */
const POOL_SIZE = 5;

interface PgBouncer extends AsyncDisposable {
  /** postgres:// URL of database `test` through this PgBouncer. */
  dsn: string;
  port: number;
  /** Client ports of PgBouncer's server connections, as PostgreSQL's pg_stat_activity sees them. */
  serverPorts(): Promise<number[]>;
  /** PgBouncer's own log (its stderr). */
  log(): string;
}

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/**
 * Starts a stock PgBouncer (pool_mode=transaction, no ignore_startup_parameters) in front of
 * the test server. As root it drops to `nobody`, since PgBouncer refuses to run as root.
 */
async function startPgBouncer(): Promise<PgBouncer> {
  const upstream = new URL(TEST_DSN);
  const user = decodeURIComponent(upstream.username) || "postgres";
  const password = decodeURIComponent(upstream.password);
  const database = upstream.pathname.slice(1) || user;
  const dir = await Deno.makeTempDir({ prefix: "seedtask-pgbouncer-" });
  await Deno.chmod(dir, 0o755);
  const quote = (s: string) => `'${s.replaceAll("'", "''")}'`;
  await Deno.writeTextFile(`${dir}/userlist.txt`, `"${user}" ""\n`);
  for (let attempt = 0;; attempt++) {
    const port = freePort();
    await Deno.writeTextFile(
      `${dir}/pgbouncer.ini`,
      [
        "[databases]",
        `${database} = host=${upstream.hostname || "127.0.0.1"} port=${
          upstream.port || 5432
        } dbname=${database} user=${user}${password ? ` password=${quote(password)}` : ""}`,
        "[pgbouncer]",
        "listen_addr = 127.0.0.1",
        `listen_port = ${port}`,
        "unix_socket_dir =",
        "auth_type = trust",
        `auth_file = ${dir}/userlist.txt`,
        "pool_mode = transaction",
        `default_pool_size = ${POOL_SIZE}`,
        "max_client_conn = 500",
        `admin_users = ${user}`,
        "",
      ].join("\n"),
    );
    for (const f of ["pgbouncer.ini", "userlist.txt"]) await Deno.chmod(`${dir}/${f}`, 0o644);
    const root = Deno.uid() === 0;
    const child = new Deno.Command(PGBOUNCER!, {
      args: [...(root ? ["-u", "nobody"] : []), `${dir}/pgbouncer.ini`],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    let log = "";
    const pump = (async () => {
      const dec = new TextDecoder();
      for await (const chunk of child.stderr) log += dec.decode(chunk, { stream: true });
    })();
    let exited = false;
    const status = child.status.then((s) => (exited = true, s));
    const dsn = `postgres://${encodeURIComponent(user)}@127.0.0.1:${port}/${database}`;
    const admin = () =>
      postgres(`postgres://${encodeURIComponent(user)}@127.0.0.1:${port}/pgbouncer`, {
        max: 1,
        fetch_types: false,
        prepare: false,
        onnotice: () => {},
      });
    const stop = async () => {
      if (!exited) child.kill("SIGTERM");
      await status;
      await pump;
    };
    // Ready when the admin console answers (it needs no server connection).
    let ready = false;
    while (!exited && !ready) {
      const sql = admin();
      try {
        await sql.unsafe("show version").simple();
        ready = true;
      } catch {
        await new Promise((r) => setTimeout(r, 50));
      } finally {
        await sql.end({ timeout: 1 }).catch(() => {});
      }
    }
    if (!ready) {
      await stop();
      // Another process took the port between freePort() and PgBouncer's bind: try another.
      if (attempt < 5 && /Address already in use/.test(log)) continue;
      await Deno.remove(dir, { recursive: true });
      throw new Error(`pgbouncer did not start:\n${log}`);
    }
    return {
      dsn,
      port,
      log: () => log,
      async serverPorts() {
        const sql = admin();
        try {
          const rows = await sql.unsafe("show servers").simple();
          return rows.map((r) => Number(r.local_port));
        } finally {
          await sql.end({ timeout: 1 });
        }
      },
      async [Symbol.asyncDispose]() {
        await stop();
        await Deno.remove(dir, { recursive: true });
      },
    };
  }
}

/** CLI arguments for `t`'s table through `bouncer`, in pooler mode. */
function through(bouncer: PgBouncer, t: TestSchema, mode = "--pooler"): string[] {
  return ["--dsn", bouncer.dsn, "--table", t.table, mode];
}

function ok(r: { code: number; stdout: string; stderr: string }, what: string): void {
  assert.equal(r.code, 0, `${what} exited ${r.code}: ${r.stderr}`);
}

/**
 * The statement_timeout of every server connection PgBouncer holds: POOL_SIZE transactions
 * held open at once must each sit on a server connection of their own.
 */
async function serverTimeouts(bouncer: PgBouncer): Promise<string[]> {
  const sql = postgres(bouncer.dsn, { max: POOL_SIZE, prepare: false, onnotice: () => {} });
  try {
    const seen: string[] = [];
    let arrived = 0;
    let release!: () => void;
    const all = new Promise<void>((r) => (release = r));
    await Promise.all(Array.from({ length: POOL_SIZE }, () =>
      sql.begin(async (tx) => {
        const [row] = await tx`select current_setting('statement_timeout') as t`;
        seen.push(row!.t as string);
        if (++arrived === POOL_SIZE) release();
        await all;
      })));
    return seen;
  } finally {
    await sql.end({ timeout: 1 });
  }
}

bouncerTest("without --pooler, stock PgBouncer's refusal is explained with the fix", async () => {
  await using bouncer = await startPgBouncer();
  await using t = await testSchema();
  const r = await runMain(["--dsn", bouncer.dsn, "--table", t.table, "list"]);
  assert.equal(r.code, 1);
  assert.equal(r.stdout, "");
  assert.match(
    r.stderr,
    /^error: .*unsupported startup parameter: statement_timeout.* — .*--pooler/,
  );
  assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
});

bouncerTest(
  "list, show, stats, check, enqueue and dispatch work through stock PgBouncer with --pooler",
  async () => {
    await using bouncer = await startPgBouncer();
    await using t = await testSchema();
    const args = through(bouncer, t);
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await runMain([...args, "enqueue", "--type", "ping", "--domain", `d${i}`]);
      ok(r, "enqueue");
      ids.push(r.stdout.trim());
    }
    const list = await runMain([...args, "list", "--json"]);
    ok(list, "list");
    assert.deepEqual(
      JSON.parse(list.stdout).items.map((x: { id: string }) => x.id).sort(),
      [...ids].sort(),
    );
    // --limit 0 streams through a server-side cursor inside one transaction
    const stream = await runMain([...args, "list", "--limit", "0", "--format", "ndjson"]);
    ok(stream, "list --limit 0");
    assert.equal(stream.stdout.trim().split("\n").length, 3);
    const show = await runMain([...args, "show", ids[0]!.slice(0, 8)]);
    ok(show, "show");
    assert.match(show.stdout, new RegExp(ids[0]!));
    const stats = await runMain([...args, "stats", "--json"]);
    ok(stats, "stats");
    assert.equal(JSON.parse(stats.stdout).status_counts.queued, 3);
    const check = await runMain([...args, "check", "--max-queued", "10:20"]);
    ok(check, "check");
    assert.match(check.stdout, /^SEEDTASK OK/);
    const dispatch = await runMain([...args, "dispatch", "--once", "--exec", "cat >/dev/null"]);
    ok(dispatch, "dispatch --once");
    assert.equal((dispatch.stdout.match(/completed successfully/g) ?? []).length, 3);
    const [{ n }] = await t.sql`select count(*)::int as n from ${t.sql(t.table)}
      where status = 'completed' and attempts = 1` as unknown as [{ n: number }];
    assert.equal(n, 3);
    // The README's flag for PgBouncer works as well.
    const legacy = await runMain([...through(bouncer, t, "--no-prepare"), "stats", "--json"]);
    ok(legacy, "stats --no-prepare");
    assert.equal(JSON.parse(legacy.stdout).status_counts.completed, 3);
    // Nothing seedtask did stayed behind on PgBouncer's server connections.
    assert.deepEqual(await serverTimeouts(bouncer), Array(POOL_SIZE).fill("0"));
  },
);

bouncerTest(
  "a statement slower than --statement-timeout is cancelled through PgBouncer",
  async () => {
    await using bouncer = await startPgBouncer();
    await using t = await testSchema();
    // Library: a pg_sleep inside a lib operation is cut off by the timeout.
    const db = connect(
      resolveConfig(
        { dsn: bouncer.dsn, table: t.table, statementTimeout: "300ms", pooler: true },
        {},
      ),
    );
    try {
      await assert.rejects(
        guard(db, () => db.sql`select pg_sleep(20)`),
        (err: unknown) => err instanceof DatabaseError && err.sqlState === "57014",
      );
      // The pool still works afterwards, and the timeout travels with every transaction.
      const [row] = await guard(db, () => db.sql`select current_setting('statement_timeout') as t`);
      assert.equal(row!.t, "300ms");
    } finally {
      await db.close();
    }
    // CLI: a query on a table another session holds locked is cancelled with the timeout error.
    const holder = postgres(TEST_DSN, { max: 1, onnotice: () => {} });
    let unlock!: () => void;
    const unlocked = new Promise<void>((r) => (unlock = r));
    let locked!: () => void;
    const isLocked = new Promise<void>((r) => (locked = r));
    const holding = holder.begin(async (tx) => {
      await tx`lock table ${tx(t.table)} in access exclusive mode`;
      locked();
      await unlocked;
    });
    // Without a working timeout the command would wait for the lock forever; end the lock after
    // a minute so that such a failure is reported instead of hanging the suite.
    const watchdog = setTimeout(unlock, 60_000);
    try {
      await isLocked;
      const r = await runMain([...through(bouncer, t), "--statement-timeout", "1s", "list"]);
      assert.equal(r.code, 1, r.stdout);
      assert.match(
        r.stderr,
        /^error: query cancelled after the statement timeout \(1s\) — raise it with --statement-timeout/,
      );
    } finally {
      clearTimeout(watchdog);
      unlock();
      await holding;
      await holder.end();
    }
    assert.deepEqual(await serverTimeouts(bouncer), Array(POOL_SIZE).fill("0"));
  },
);

bouncerTest(
  "a connection that dies mid-transaction through PgBouncer fails that operation only",
  async () => {
    await using bouncer = await startPgBouncer();
    await using t = await testSchema();
    // One connection: if the pool lost it, or the driver wrote to it after it closed, the
    // operations after the failure would hang or the process would crash.
    await using db = connect(
      resolveConfig({ dsn: bouncer.dsn, table: t.table, pooler: true, maxConnections: 1 }, {}),
    );
    const marker = `seedtask_${crypto.randomUUID().replaceAll("-", "")}`;
    const sleeping = guard(db, () => db.sql.unsafe(`select pg_sleep(30) as ${marker}`));
    sleeping.catch(() => {});
    await eventually(async () => {
      const rows = await t.sql`select pg_terminate_backend(pid) from pg_stat_activity
        where query like ${`%${marker}%`} and pid <> pg_backend_pid()`;
      return rows.length === 1;
    });
    await assert.rejects(sleeping, /lost|crashed|terminating/);
    for (let i = 0; i < 3; i++) {
      const [row] = await guard(
        db,
        () => db.sql`select count(*)::int as n from ${db.sql(db.table)}`,
      );
      assert.equal(row!.n, 0);
    }
  },
);

/** A SeedCore table from before seedtask: rows, no lease columns, none of seedtask's indexes. */
async function seedcoreTable(t: TestSchema): Promise<void> {
  await t.sql.unsafe(`
    set search_path = "${t.schema}";
    create type taskstatus as enum ('created','queued','running','completed','failed','cancelled','retry');
    create table tasks (
      id uuid primary key default gen_random_uuid(),
      status taskstatus not null default 'created',
      attempts integer not null default 0,
      locked_by text, locked_at timestamptz, run_after timestamptz,
      type text not null, description text, domain text,
      drift_score double precision not null default 0.0,
      params jsonb not null default '{}'::jsonb, result jsonb, error text,
      created_at timestamptz not null default now(),
      updated_at timestamptz not null default now()
    );
    insert into tasks (status, type, domain)
    select (array['queued','completed','failed'])[1 + i % 3]::taskstatus, 'graph_embed', 'd' || i % 4
    from generate_series(1, 2000) i;
    reset search_path;`);
}

/** Runs `migrate --json` with `args`; returns the steps it applied. */
async function migrateSteps(args: string[]): Promise<Array<{ sql: string }>> {
  const r = await runMain([...args, "migrate", "--json"]);
  ok(r, "migrate");
  return JSON.parse(r.stdout).steps;
}

/**
 * Two concurrent migrations of a table with rows: they serialise, one does the work (with
 * CREATE INDEX CONCURRENTLY), the other then finds nothing to do.
 */
async function raceMigrations(t: TestSchema, args: string[]): Promise<void> {
  await seedcoreTable(t);
  const [a, b] = await Promise.all([migrateSteps(args), migrateSteps(args)]);
  const counts = [a.length, b.length].sort((x, y) => x - y);
  assert.equal(counts[0], 0, JSON.stringify([a, b]));
  assert.ok(counts[1]! > 5);
  assert.ok(
    [...a, ...b].some((s) => /create index concurrently/.test(s.sql)),
    "the concurrent index builds were exercised",
  );
  const invalid = await t.sql`select c.relname from pg_index i join pg_class c
    on c.oid = i.indexrelid where i.indrelid = ${t.table}::regclass and not i.indisvalid`;
  assert.deepEqual([...invalid], []);
}

bouncerTest(
  "two migrate runs at once through PgBouncer both finish, a third too, and no lock is left",
  async () => {
    await using bouncer = await startPgBouncer();
    await using t = await testSchema({ migrated: false });
    await raceMigrations(t, through(bouncer, t));
    // No advisory lock is held by any of PgBouncer's server connections.
    const ports = await bouncer.serverPorts();
    assert.ok(ports.length > 0, "PgBouncer holds server connections");
    const leftovers = await t.sql`select l.pid, l.objid, a.state from pg_locks l
      join pg_stat_activity a on a.pid = l.pid
      where l.locktype = 'advisory' and a.client_port = any(${ports}::int[])`;
    assert.deepEqual([...leftovers], []);
    assert.deepEqual(await migrateSteps(through(bouncer, t)), []);
  },
);

serverTest(
  "two migrate runs at once on a direct connection both finish: no deadlock with CREATE INDEX CONCURRENTLY",
  "needs several real connections",
  async () => {
    await using t = await testSchema({ migrated: false });
    await raceMigrations(t, t.args);
  },
);

/** A line of `out` per match of `pattern`. */
function lines(out: string, pattern: RegExp): string[] {
  return out.split("\n").filter((l) => pattern.test(l));
}

const LISTEN_WARNING =
  /LISTEN .*does not work through .*: polling every (\S+) instead — .*--listen-dsn/;

bouncerTest(
  "dispatch --listen through PgBouncer warns once, polls, and still processes tasks",
  async () => {
    await using bouncer = await startPgBouncer();
    await using t = await testSchema();
    const p = spawnCli([
      ...through(bouncer, t),
      "dispatch",
      "--name",
      "pooled",
      "--listen",
      "--poll",
      "300ms",
      "--exec",
      "cat >/dev/null",
    ]);
    try {
      await p.waitFor(LISTEN_WARNING);
      for (let i = 0; i < 3; i++) {
        ok(await runMain([...through(bouncer, t), "enqueue", "--type", "ping"]), "enqueue");
      }
      await p.waitFor(/(completed successfully[^]*){3}/);
    } finally {
      p.child.kill("SIGTERM");
    }
    assert.equal(await p.exit(), 0, p.stderr());
    const warnings = lines(p.stdout(), LISTEN_WARNING);
    assert.equal(warnings.length, 1, p.stdout());
    assert.equal(LISTEN_WARNING.exec(warnings[0]!)![1], "0.3s");
  },
);

bouncerTest(
  "dispatch --listen-dsn to the server itself wakes at once on a NOTIFY sent through PgBouncer",
  async () => {
    await using bouncer = await startPgBouncer();
    await using t = await testSchema();
    const p = spawnCli([
      ...through(bouncer, t),
      "dispatch",
      "--name",
      "woken",
      "--listen-dsn",
      TEST_DSN,
      // only a NOTIFY can wake it in this test's lifetime
      "--poll",
      "1h",
      "--exec",
      "cat >/dev/null",
    ]);
    try {
      await p.waitFor(/Listening for NOTIFY tasks_new on /);
      const r = await runMain([...through(bouncer, t), "enqueue", "--type", "ping"]);
      ok(r, "enqueue");
      await p.waitFor(new RegExp(`Task ${r.stdout.trim().slice(0, 8)} completed successfully`));
    } finally {
      p.child.kill("SIGTERM");
    }
    assert.equal(await p.exit(), 0, p.stderr());
    assert.deepEqual(lines(p.stdout(), LISTEN_WARNING), []);
  },
);

bouncerTest(
  "dispatch --listen-dsn pointing at PgBouncer is caught by the NOTIFY self-test",
  async () => {
    await using bouncer = await startPgBouncer();
    await using t = await testSchema();
    const p = spawnCli([
      ...through(bouncer, t),
      "dispatch",
      "--name",
      "misled",
      "--listen-dsn",
      bouncer.dsn,
      "--poll",
      "200ms",
      "--exec",
      "cat >/dev/null",
    ]);
    try {
      await p.waitFor(LISTEN_WARNING);
      ok(await runMain([...through(bouncer, t), "enqueue", "--type", "ping"]), "enqueue");
      await p.waitFor(/completed successfully/);
    } finally {
      p.child.kill("SIGTERM");
    }
    assert.equal(await p.exit(), 0, p.stderr());
    assert.equal(lines(p.stdout(), LISTEN_WARNING).length, 1, p.stdout());
    assert.doesNotMatch(p.stdout(), /Listening for NOTIFY/);
  },
);

bouncerTest("three dispatchers through PgBouncer complete each task exactly once", async () => {
  await using bouncer = await startPgBouncer();
  await using t = await testSchema();
  await t.sql`insert into ${t.sql(t.table)} (type, status, params)
    select 'job', 'queued', jsonb_build_object('n', i) from generate_series(1, 600) i`;
  const log = await Deno.makeTempFile({ prefix: "seedtask-pgbouncer-exec-" });
  try {
    const procs = Array.from({ length: 3 }, (_, i) =>
      spawnCli([
        ...through(bouncer, t),
        "dispatch",
        "--once",
        "--name",
        `pooled-${i}`,
        "--concurrency",
        "8",
        "--exec-env",
        "EXEC_LOG",
        "--exec",
        `cat >/dev/null; echo "$SEEDTASK_TASK_ID" >> "$EXEC_LOG"`,
      ], { env: { EXEC_LOG: log } }));
    const codes = await Promise.all(procs.map((p) => p.exit()));
    assert.deepEqual(codes, [0, 0, 0], procs.map((p) => p.stderr()).join("\n"));
    const runs = (await Deno.readTextFile(log)).trim().split("\n");
    assert.equal(runs.length, 600, "600 executions");
    assert.equal(new Set(runs).size, 600, "each task executed once");
    const rows = await t.sql`select status::text, attempts, count(*)::int as n
      from ${t.sql(t.table)} group by 1, 2`;
    assert.deepEqual([...rows], [{ status: "completed", attempts: 1, n: 600 }]);
    const owners = await t.sql`select count(distinct locked_by)::int as n from ${t.sql(t.table)}`;
    assert.ok(owners[0]!.n >= 2, "the work was shared");
  } finally {
    await Deno.remove(log);
  }
});

Deno.test("--pooler, --no-prepare and SEEDTASK_POOLER select pooler mode", () => {
  const on = (flags: Parameters<typeof resolveConfig>[0], env = {}) => {
    const c = resolveConfig(flags, env);
    return { pooler: c.pooler, prepare: c.prepare };
  };
  assert.deepEqual(on({}), { pooler: false, prepare: true });
  assert.deepEqual(on({ pooler: true }), { pooler: true, prepare: false });
  assert.deepEqual(on({ prepare: false }), { pooler: true, prepare: false });
  assert.deepEqual(on({}, { SEEDTASK_POOLER: "1" }), { pooler: true, prepare: false });
  assert.deepEqual(on({}, { SEEDTASK_POOLER: "true" }), { pooler: true, prepare: false });
  assert.deepEqual(on({}, { SEEDTASK_POOLER: "0" }), { pooler: false, prepare: true });
  assert.deepEqual(on({ pooler: true }, { SEEDTASK_POOLER: "0" }), {
    pooler: true,
    prepare: false,
  });
  assert.throws(
    () => resolveConfig({}, { SEEDTASK_POOLER: "maybe" }),
    /Invalid SEEDTASK_POOLER "maybe": expected 1 or 0/,
  );
});

Deno.test("migrate() works on a pool of one connection (the lock has a connection of its own)", async () => {
  await using t = await testSchema({ migrated: false });
  await using db = connect(resolveConfig({ dsn: TEST_DSN, table: t.table, maxConnections: 1 }, {}));
  const result = await migrate(db);
  assert.ok(result.steps.length > 5);
  assert.deepEqual((await migrate(db)).steps, []);
});
