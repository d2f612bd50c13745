/**
 * Dispatch suite: how fast the queue drains, and how fast a new task starts.
 *
 * - Library level (the fair comparison): `createDispatcher` with a no-op handler draining
 *   `profile.dispatchTasks` queued tasks with `once`, at the defaults (concurrency 16, batch 8)
 *   and at a few tuned settings, each in its own process (bench/noop_dispatcher.ts).
 * - CLI: `seedtask dispatch --once --exec 'cat >/dev/null'` — one process per task, so this
 *   measures process spawning more than the queue; `profile.execTasks` tasks.
 * - Baseline: graphile-worker (Node) draining the same number of no-op jobs on the same server
 *   (bench/graphile_noop.mjs), at concurrency 16 and 64 with its defaults (no batching), and
 *   once with its batching options for reference.
 * - Claim-to-start latency of `seedtask dispatch --listen`: a task enqueued with NOTIFY, timed
 *   from the enqueue's commit to the dispatcher's "processing" log line.
 *
 * Every run starts from a fresh table (or graphile_worker schema), so the dead tuples reported
 * afterwards (pg_stat_user_tables, read once the workers' backends have exited and flushed
 * their counters) are that run's.
 */
import postgres from "postgres";
import { enqueueTask } from "../lib/ops/enqueue_task.ts";
import {
  background,
  BENCH_DIR,
  exec,
  int,
  mdTable,
  ms,
  ratio,
  say,
  seedtaskArgs,
  sleep,
  summarize,
  type Summary,
} from "./common.ts";
import type { BenchContext } from "./context.ts";
import { createEmptyTable, databaseName, dropSchema, openDb, withDatabase } from "./data.ts";
import { ensureExternals, EXTERNAL_VERSIONS, type Externals } from "./externals.ts";
import type { SuiteReport, Target } from "./results_md.ts";

const SCHEMA = "bench_dispatch";
const GRAPHILE_SCHEMA = "graphile_worker";
/** The tuned flags of the CLI run (a process per task: more concurrency hides spawn time). */
const CLI_TUNED = { concurrency: 64, batch: 32 };

/** Table statistics after a run. */
interface Garbage {
  dead: number;
  updates: number;
  hotUpdates: number;
  deletes: number;
  sizeMiB: number;
}

interface DrainResult {
  name: string;
  system: "seedtask" | "graphile-worker";
  settings: string;
  tasks: number;
  seconds: number;
  rate: number;
  /** Whole process, spawn to exit (start-up included). */
  wallSeconds: number;
  garbage: Garbage;
  note?: string;
}

/** Waits until nothing but the harness is connected to the bench database. */
async function quiet(monitor: postgres.Sql, database: string): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    const [row] = await monitor<{ n: number }[]>`
      select count(*)::int as n from pg_stat_activity
      where datname = ${database} and pid <> pg_backend_pid()
        and application_name not in ('bench', 'bench-monitor')`;
    if (row!.n === 0) break;
    await sleep(50);
  }
  await sleep(200);
}

async function garbage(sql: postgres.Sql, schema: string, table?: string): Promise<Garbage> {
  const [row] = await sql<
    {
      dead: string;
      upd: string;
      hot: string;
      del: string;
      size: string;
    }[]
  >`
    select coalesce(sum(n_dead_tup), 0)::text as dead, coalesce(sum(n_tup_upd), 0)::text as upd,
           coalesce(sum(n_tup_hot_upd), 0)::text as hot, coalesce(sum(n_tup_del), 0)::text as del,
           coalesce(sum(pg_total_relation_size(relid)), 0)::text as size
    from pg_stat_user_tables
    where schemaname = ${schema} and (${table ?? null}::text is null or relname = ${
    table ?? null
  })`;
  return {
    dead: Number(row!.dead),
    updates: Number(row!.upd),
    hotUpdates: Number(row!.hot),
    deletes: Number(row!.del),
    sizeMiB: Number(row!.size) / 1024 / 1024,
  };
}

/** A fresh dispatch table holding `n` queued no-op tasks, analyzed. */
async function seedTasks(ctx: BenchContext, n: number): Promise<string> {
  const table = await createEmptyTable(ctx.sql, ctx.dsn, SCHEMA);
  ctx.schemas.add(SCHEMA);
  await ctx.sql`
    insert into ${ctx.sql(SCHEMA)}.tasks (type, status, params, description)
    select 'noop', 'queued', '{}'::jsonb, 'no-op task ' || i from generate_series(1, ${n}) as i`;
  await ctx.sql.unsafe(`vacuum analyze "${SCHEMA}".tasks`);
  return table;
}

async function remaining(ctx: BenchContext): Promise<number> {
  const [row] = await ctx.sql<{ n: number }[]>`
    select count(*)::int as n from ${ctx.sql(SCHEMA)}.tasks where status <> 'completed'`;
  return row!.n;
}

async function libraryRun(
  ctx: BenchContext,
  monitor: postgres.Sql,
  concurrency: number,
  batch: number,
  label: string,
): Promise<DrainResult> {
  const n = ctx.profile.dispatchTasks;
  const table = await seedTasks(ctx, n);
  const r = await exec(Deno.execPath(), [
    "run",
    "-A",
    `${BENCH_DIR}/noop_dispatcher.ts`,
    "--dsn",
    ctx.dsn,
    "--table",
    table,
    "--concurrency",
    String(concurrency),
    "--batch",
    String(batch),
  ]);
  if (r.code !== 0) throw new Error(`noop_dispatcher failed: ${r.stderr.slice(-2000)}`);
  const out = JSON.parse(r.stdout.trim().split("\n").at(-1)!) as {
    seconds: number;
    completed: number;
  };
  await quiet(monitor, databaseName(ctx.dsn));
  const left = await remaining(ctx);
  const result: DrainResult = {
    name: `library, ${label}`,
    system: "seedtask",
    settings: `concurrency ${concurrency}, batch ${batch}`,
    tasks: out.completed,
    seconds: out.seconds,
    rate: out.completed / out.seconds,
    wallSeconds: r.ms / 1000,
    garbage: await garbage(ctx.sql, SCHEMA, "tasks"),
    note: left > 0 ? `${left} tasks not completed` : undefined,
  };
  say(`  seedtask ${result.name} (${result.settings}): ${int(result.rate)} tasks/s`);
  return result;
}

async function cliRun(
  ctx: BenchContext,
  monitor: postgres.Sql,
  flags: { concurrency: number; batch: number } | null,
): Promise<DrainResult> {
  const n = ctx.profile.execTasks;
  const table = await seedTasks(ctx, n);
  const args = [
    ...seedtaskArgs(ctx.dsn, table, "dispatch"),
    "--once",
    "--exec",
    "cat >/dev/null",
    "--log-format",
    "json",
  ];
  if (flags) args.push("--concurrency", String(flags.concurrency), "--batch", String(flags.batch));
  const t0 = performance.now();
  const child = background(Deno.execPath(), args, { keepOutput: false, env: { NO_COLOR: "1" } });
  let started = NaN;
  let stopped = NaN;
  let completed = 0;
  child.onLine((line) => {
    if (line.includes('"event":"completed"')) completed++;
    else if (line.includes('"event":"started"')) started = performance.now();
    else if (line.includes('"event":"stopped"')) stopped = performance.now();
  });
  const status = await child.child.status;
  const wall = (performance.now() - t0) / 1000;
  await sleep(50);
  if (!status.success) throw new Error(`seedtask dispatch failed: ${child.stderr().slice(-2000)}`);
  const seconds = (stopped - started) / 1000;
  await quiet(monitor, databaseName(ctx.dsn));
  const left = await remaining(ctx);
  const result: DrainResult = {
    name: `CLI --exec 'cat >/dev/null', ${flags ? "tuned" : "defaults"}`,
    system: "seedtask",
    settings: flags
      ? `--concurrency ${flags.concurrency} --batch ${flags.batch}`
      : "concurrency 16, batch 8",
    tasks: completed,
    seconds,
    rate: completed / seconds,
    wallSeconds: wall,
    garbage: await garbage(ctx.sql, SCHEMA, "tasks"),
    note: left > 0 ? `${left} tasks not completed` : undefined,
  };
  say(`  seedtask ${result.name}: ${int(result.rate)} tasks/s (${int(completed)} tasks)`);
  return result;
}

async function graphileRun(
  ctx: BenchContext,
  ext: Externals,
  monitor: postgres.Sql,
  concurrency: number,
  batching: boolean,
): Promise<DrainResult> {
  const n = ctx.profile.dispatchTasks;
  await dropSchema(ctx.sql, GRAPHILE_SCHEMA);
  ctx.schemas.add(GRAPHILE_SCHEMA);
  const args = [
    `${BENCH_DIR}/graphile_noop.mjs`,
    "--modules",
    ext.nodeModules,
    "--dsn",
    ctx.dsn,
    "--jobs",
    String(n),
    "--concurrency",
    String(concurrency),
  ];
  if (batching) args.push("--local-queue", String(concurrency), "--complete-batch-delay", "0");
  const r = await exec("node", args, { env: { NO_LOG_SUCCESS: "1" } });
  if (r.code !== 0) throw new Error(`graphile-worker run failed: ${r.stderr.slice(-2000)}`);
  const out = JSON.parse(r.stdout.trim().split("\n").at(-1)!) as {
    seconds: number;
    jobs: number;
    remaining: number;
    errors: number;
  };
  await quiet(monitor, databaseName(ctx.dsn));
  const done = out.jobs - out.remaining;
  const result: DrainResult = {
    name: batching ? "batched (reference)" : "defaults, no batching",
    system: "graphile-worker",
    settings: `concurrency ${concurrency}${
      batching ? `, localQueue.size ${concurrency}, completeJobBatchDelay 0` : ""
    }`,
    tasks: done,
    seconds: out.seconds,
    rate: done / out.seconds,
    wallSeconds: r.ms / 1000,
    garbage: await garbage(ctx.sql, GRAPHILE_SCHEMA),
    note: out.remaining > 0 || out.errors > 0
      ? `${out.remaining} jobs left, ${out.errors} errors`
      : undefined,
  };
  say(`  graphile-worker ${result.name} (${result.settings}): ${int(result.rate)} jobs/s`);
  return result;
}

/** Enqueue (NOTIFY) to "processing" log line of `dispatch --listen`, `samples` times. */
async function listenLatency(
  ctx: BenchContext,
): Promise<{ fromCommit: Summary; fromCall: Summary }> {
  const table = await createEmptyTable(ctx.sql, ctx.dsn, SCHEMA);
  const child = background(Deno.execPath(), [
    ...seedtaskArgs(ctx.dsn, table, "dispatch"),
    "--listen",
    "--poll",
    "60s",
    "--exec",
    "cat >/dev/null",
    "--log-format",
    "json",
  ], { keepOutput: false, env: { NO_COLOR: "1" } });
  // The "processing" line may arrive before enqueueTask() returns: keep either side's news.
  const startedAt = new Map<string, number>();
  const waiting = new Map<string, (at: number) => void>();
  let isStarted = false;
  child.onLine((line) => {
    if (line.includes('"event":"processing"')) {
      const at = performance.now();
      const id = (JSON.parse(line) as { task_id: string }).task_id;
      const resolve = waiting.get(id);
      if (resolve) resolve(at);
      else startedAt.set(id, at);
    } else if (line.includes('"event":"started"')) isStarted = true;
  });
  const started = (id: string): Promise<number> => {
    const at = startedAt.get(id);
    if (at !== undefined) return Promise.resolve(at);
    return new Promise<number>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`task ${id} did not start within 10 s`)),
        10_000,
      );
      waiting.set(id, (t) => {
        clearTimeout(timer);
        resolve(t);
      });
    });
  };
  const db = openDb(ctx.dsn, table, 2);
  const fromCommit: number[] = [];
  const fromCall: number[] = [];
  try {
    const deadline = Date.now() + 60_000;
    while (!isStarted) {
      if (Date.now() > deadline || child.exited()) {
        throw new Error(`dispatch --listen did not start: ${child.stderr().slice(-2000)}`);
      }
      await sleep(20);
    }
    await sleep(500); // LISTEN is issued right after the "started" line
    const total = ctx.profile.listenSamples + 3; // the first three warm up
    for (let i = 0; i < total; i++) {
      const t0 = performance.now();
      const task = await enqueueTask(db, { type: "noop", description: `latency probe ${i}` });
      const t1 = performance.now();
      const t2 = await started(task.id);
      if (i >= 3) {
        fromCommit.push(t2 - t1);
        fromCall.push(t2 - t0);
      }
      await sleep(20);
    }
  } finally {
    await db.close();
    await child.stop();
  }
  return { fromCommit: summarize(fromCommit), fromCall: summarize(fromCall) };
}

export async function dispatchSuite(ctx: BenchContext): Promise<SuiteReport> {
  const ext = await ensureExternals();
  const p = ctx.profile;
  say(
    `dispatch: ${int(p.dispatchTasks)} no-op tasks per library/graphile-worker run, ${
      int(p.execTasks)
    } per --exec run`,
  );
  const database = databaseName(ctx.dsn);
  const monitor = postgres(
    withDatabase(ctx.dsn, database === "postgres" ? "template1" : "postgres"),
    {
      max: 1,
      onnotice: () => {},
      connection: { application_name: "bench-monitor" },
    },
  );
  const runs: DrainResult[] = [];
  let latency: { fromCommit: Summary; fromCall: Summary };
  try {
    // seedtask and graphile-worker alternate, so a slower spell of the host lands on both:
    // library defaults, graphile-worker at 16, the first tuned setting, graphile-worker at 64,
    // the other tuned settings, then graphile-worker's batched mode (reference).
    runs.push(await libraryRun(ctx, monitor, 16, 8, "defaults"));
    runs.push(await graphileRun(ctx, ext, monitor, 16, false));
    const [firstTuned, ...otherTuned] = p.tuned;
    if (firstTuned) {
      runs.push(await libraryRun(ctx, monitor, firstTuned[0], firstTuned[1], "tuned"));
    }
    runs.push(await graphileRun(ctx, ext, monitor, 64, false));
    for (const [c, b] of otherTuned) runs.push(await libraryRun(ctx, monitor, c, b, "tuned"));
    runs.push(await graphileRun(ctx, ext, monitor, 64, true));
    runs.push(await cliRun(ctx, monitor, null));
    runs.push(await cliRun(ctx, monitor, CLI_TUNED));
    latency = await listenLatency(ctx);
    say(
      `  --listen enqueue-to-start: p50 ${ms(latency.fromCommit.p50)}, p95 ${
        ms(latency.fromCommit.p95)
      } (from commit)`,
    );
  } finally {
    await monitor.end();
  }

  const lib = runs.filter((r) => r.system === "seedtask" && r.name.startsWith("library"));
  const libDefault = lib[0]!;
  const libBest = lib.slice(1).reduce((a, b) => (b.rate > a.rate ? b : a));
  const gw = runs.filter((r) => r.system === "graphile-worker");
  const gwDefault = gw[0]!;
  const gwBestPlain = gw.filter((r) => !r.name.startsWith("batched"))
    .reduce((a, b) => (b.rate > a.rate ? b : a));
  const gwBatched = gw.find((r) => r.name.startsWith("batched"))!;
  const targets: Target[] = [
    {
      name: "seedtask (library createDispatcher, defaults: concurrency 16, batch 8) >= " +
        "graphile-worker without batching at concurrency 16: no-op tasks/s draining " +
        `${int(p.dispatchTasks)} queued tasks, the two runs back to back`,
      met: libDefault.rate >= gwDefault.rate,
      detail: `${ratio(libDefault.rate / gwDefault.rate)} (${int(libDefault.rate)} vs ${
        int(gwDefault.rate)
      } tasks/s)`,
    },
    {
      name: "seedtask (library createDispatcher, best tuned setting) >= graphile-worker's best " +
        `without batching (concurrency 16 or 64): no-op tasks/s draining ${
          int(p.dispatchTasks)
        } queued tasks, runs alternating`,
      met: libBest.rate >= gwBestPlain.rate,
      detail:
        `${ratio(libBest.rate / gwBestPlain.rate)} (${
          int(libBest.rate)
        } tasks/s at ${libBest.settings} vs ${
          int(gwBestPlain.rate)
        } at ${gwBestPlain.settings}); with its batching ` +
        `graphile-worker reaches ${int(gwBatched.rate)} (${ratio(libBest.rate / gwBatched.rate)})`,
    },
  ];

  const fewer = p.dispatchTasks < 100_000
    ? ` (fewer than the 100,000 of earlier runs, to keep this ${ctx.mode} run's time on a shared host)`
    : "";
  const body = [
    `Runs in the order of the table: seedtask and graphile-worker alternate, so host drift ` +
    `moves both. Each run drains a fresh queue of no-op tasks: ${
      int(p.dispatchTasks)
    } for the library and graphile-worker runs${fewer}, ${
      int(p.execTasks)
    } for the CLI --exec runs (a process per task, several times slower than in-process ` +
    `handlers, so fewer tasks keep the run short). tasks/s = tasks / time from the ` +
    `dispatcher's start to its return (library: run() with \`once\`; CLI: its "started" to ` +
    `"stopped" log lines; graphile-worker: run() to runner.stop() after the last job:complete ` +
    `event). Wall = the whole process, spawn to exit (for graphile-worker this includes its ` +
    `migrations and the job insert). graphile-worker ${EXTERNAL_VERSIONS["graphile-worker"]} ` +
    `(Node ${ctx.machine.node.replace("Node ", "")}; 0.18 needs Node >= 22.18) deletes ` +
    `finished jobs; seedtask keeps them as completed rows. Dead tuples: n_dead_tup of the ` +
    `queue tables right after the run (autovacuum: see the PostgreSQL settings above).`,
    "",
    mdTable(
      [
        "system",
        "run",
        "settings",
        "tasks",
        "tasks/s",
        "seconds",
        "wall",
        "dead tuples",
        "updates (HOT)",
        "deletes",
        "table size",
      ],
      runs.map((r) => [
        r.system,
        r.name + (r.note ? ` — ${r.note}` : ""),
        r.settings,
        int(r.tasks),
        int(r.rate),
        r.seconds.toFixed(2),
        `${r.wallSeconds.toFixed(1)} s`,
        int(r.garbage.dead),
        `${int(r.garbage.updates)} (${int(r.garbage.hotUpdates)})`,
        int(r.garbage.deletes),
        `${r.garbage.sizeMiB.toFixed(1)} MiB`,
      ]),
    ),
    "",
    `Claim-to-start latency, \`seedtask dispatch --listen --poll 60s\` (so only NOTIFY wakes ` +
    `it), ${latency.fromCommit.n} tasks enqueued one at a time with enqueueTask (INSERT + ` +
    `pg_notify): from the enqueue's commit to the "processing" log line p50 ${
      ms(latency.fromCommit.p50)
    }, p95 ${ms(latency.fromCommit.p95)}, max ${ms(latency.fromCommit.max)}; from the start ` +
    `of the enqueue call p50 ${ms(latency.fromCall.p50)}, p95 ${ms(latency.fromCall.p95)}.`,
  ].join("\n");
  return { suite: "dispatch", title: "Dispatch", body, targets };
}
