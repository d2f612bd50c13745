/**
 * Queries suite: the read path at 1M (and 10M in the full run) rows.
 *
 * - In-process latency (p50/p95 over repeated sequential runs) of the lib functions the CLI
 *   and the server call: getTaskStatistics, listTasks with each filter, getTask by 8-char
 *   prefix, on a warm pool.
 * - Whole-process wall time of `deno run -A main.ts <command> --json`.
 * - Baselines: the cheapest query that answers "how many tasks per status"
 *   (`select status, count(*) from t group by status`) — timed with pgbench (prepared, one
 *   client: a round trip per query, like the lib), with EXPLAIN ANALYZE (in-database only) and
 *   as a `psql -c` process — and the exact SQL seedtask sends for each list/show, captured from
 *   the driver and replayed the same two ways.
 */
import postgres from "postgres";
import type { Db } from "../lib/db.ts";
import { getTask } from "../lib/queries/get_task.ts";
import { type ListFilter, listTasks } from "../lib/queries/list_tasks.ts";
import { getTaskStatistics } from "../lib/queries/task_stats.ts";
import {
  exec,
  int,
  mdTable,
  ms,
  ratio,
  repeat,
  rowsLabel,
  say,
  seedtaskArgs,
  summarize,
  type Summary,
} from "./common.ts";
import type { BenchContext } from "./context.ts";
import { openDb, uniquePrefixId } from "./data.ts";
import type { SuiteReport, Target } from "./results_md.ts";

const LIST_TARGET_MS = 5;
/** stats (default path, planner estimates for the large statuses) against the floor. */
const STATS_FLOOR_RATIO = 1.5;
/** stats --exact (every row counted) against the same floor, at 10M rows (issue 11). */
const EXACT_FLOOR_RATIO = 4;

interface Operation {
  name: string;
  /** Arguments of the CLI command (`--json` is added). */
  cli: string[];
  run(db: Db): Promise<unknown>;
  /**
   * A list or show operation (the 5 ms target); stats (default path) and stats --exact are
   * judged against the status-count floor.
   */
  kind: "stats" | "stats-exact" | "list" | "show";
}

function operations(prefix: string): Operation[] {
  const list = (name: string, filter: ListFilter, cli: string[]): Operation => ({
    name,
    cli: ["list", ...cli],
    kind: "list",
    run: async (db) => {
      const page = await listTasks(db, filter);
      if (page.items.length === 0) throw new Error(`${name} returned no tasks`);
      return page;
    },
  });
  return [
    {
      name: "stats --json",
      cli: ["stats"],
      kind: "stats",
      run: (db) => getTaskStatistics(db),
    },
    {
      name: "stats --exact --json",
      cli: ["stats", "--exact"],
      kind: "stats-exact",
      run: async (db) => {
        const s = await getTaskStatistics(db, { exact: true });
        if (!s.exact) throw new Error("stats --exact returned estimates");
        return s;
      },
    },
    list("list (no filter)", {}, []),
    list("list --status queued", { statuses: ["queued"] }, ["--status", "queued"]),
    list("list --type graph_embed", { type: "graph_embed" }, ["--type", "graph_embed"]),
    list("list --domain user_42", { domain: "user_42" }, ["--domain", "user_42"]),
    list('list --search "upstream error 42"', { search: "upstream error 42" }, [
      "--search",
      "upstream error 42",
    ]),
    list("list --sort created", { sort: "created" }, ["--sort", "created"]),
    list("list --status failed,retry", { statuses: ["failed", "retry"] }, [
      "--status",
      "failed,retry",
    ]),
    {
      name: `show ${prefix} (8-char prefix)`,
      cli: ["show", prefix],
      kind: "show",
      run: (db) => getTask(db, prefix),
    },
  ];
}

/** An SQL literal for a driver parameter (replayed through psql/pgbench as plain text). */
function literal(value: unknown): string {
  if (value === null || value === undefined) return "null";
  if (typeof value === "number" || typeof value === "bigint") return String(value);
  if (typeof value === "boolean") return value ? "true" : "false";
  const text = value instanceof Date
    ? value.toISOString()
    : typeof value === "string"
    ? value
    : JSON.stringify(value);
  return `'${text.replaceAll("'", "''")}'`;
}

/** `$1`… replaced by literals; whitespace collapsed to one line (pgbench reads lines). */
export function inlineQuery(query: string, params: readonly unknown[]): string {
  return query
    .replace(/\$(\d+)/g, (_, n) => literal(params[Number(n) - 1]))
    .replace(/\s+/g, " ")
    .trim();
}

/**
 * Runs `op` once on a Db whose driver reports every statement, and returns the last one
 * that reads the task table: the SQL seedtask sends, with its parameters inlined.
 */
async function captureSql(ctx: BenchContext, table: string, op: Operation): Promise<string> {
  const captured: { query: string; params: unknown[] }[] = [];
  const base = openDb(ctx.dsn, table, 1);
  const sql = postgres(ctx.dsn, {
    max: 1,
    onnotice: () => {},
    connection: { application_name: "seedtask", TimeZone: "UTC" },
    debug: (_conn, query, params) => captured.push({ query, params: params as unknown[] }),
  });
  const db: Db = { ...base, sql, cache: new Map() };
  try {
    await op.run(db);
  } finally {
    await sql.end();
    await base.close();
  }
  const [schema, name] = table.split(".") as [string, string];
  const hit = captured.filter((c) => c.query.includes(`"${schema}"."${name}"`)).at(-1);
  if (!hit) throw new Error(`no statement captured for ${op.name}`);
  return inlineQuery(hit.query, hit.params);
}

/**
 * pgbench reads `:name` as a variable, even inside string literals (the list query's
 * `'…HH24:MI:SS…'` format). Splits such colons out of the literal (`'HH24' || ':' || 'MI'`),
 * which PostgreSQL folds back into the same constant.
 */
export function pgbenchSafe(sqlText: string): string {
  let out = "";
  let inLiteral = false;
  for (let i = 0; i < sqlText.length; i++) {
    const c = sqlText[i]!;
    if (c === "'") inLiteral = !inLiteral;
    if (inLiteral && c === ":" && /[A-Za-z_]/.test(sqlText[i + 1] ?? "")) {
      out += "' || ':' || '";
      continue;
    }
    out += c;
  }
  return out;
}

/**
 * pgbench, one client, prepared, for `seconds`: per-transaction latencies from its log
 * (client round trip included, as for the lib calls).
 */
async function pgbench(ctx: BenchContext, sqlText: string, seconds: number): Promise<Summary> {
  const dir = await Deno.makeTempDir({ dir: ctx.tmp, prefix: "pgbench_" });
  await Deno.writeTextFile(`${dir}/q.sql`, pgbenchSafe(sqlText) + ";\n");
  const r = await exec("pgbench", [
    "-n",
    "-M",
    "prepared",
    "-c",
    "1",
    "-T",
    String(seconds),
    "-f",
    `${dir}/q.sql`,
    "-l",
    `--log-prefix=${dir}/log`,
    ctx.dsn,
  ], { cwd: dir });
  if (r.code !== 0) throw new Error(`pgbench failed: ${r.stderr.trim().slice(-1000)}`);
  const samples: number[] = [];
  for await (const entry of Deno.readDir(dir)) {
    if (!entry.name.startsWith("log")) continue;
    const text = await Deno.readTextFile(`${dir}/${entry.name}`);
    for (const line of text.split("\n")) {
      const f = line.trim().split(/\s+/);
      if (f.length >= 3) samples.push(Number(f[2]) / 1000);
    }
  }
  await Deno.remove(dir, { recursive: true });
  if (samples.length === 0) throw new Error("pgbench wrote no transaction log");
  return summarize(samples);
}

/**
 * `psql -c SQL` as a process, `reps` times (fewer, but at least 3, when they take longer than
 * `budgetMs`): wall time (connect, run, exit).
 */
async function psqlProcess(
  dsn: string,
  sqlText: string,
  reps: number,
  budgetMs: number,
): Promise<Summary> {
  const args = ["-X", "-q", "-A", "-t", "-o", "/dev/null", "-d", dsn, "-c", sqlText];
  await exec("psql", args); // warm-up
  const samples: number[] = [];
  const deadline = performance.now() + budgetMs;
  for (let i = 0; i < reps && (i < 3 || performance.now() < deadline); i++) {
    const r = await exec("psql", args);
    if (r.code !== 0) throw new Error(`psql failed: ${r.stderr.trim()}`);
    samples.push(r.ms);
  }
  return summarize(samples);
}

/**
 * `deno run -A main.ts --dsn … --table … <args> --json`, `reps` times (fewer, but at least 3,
 * when they take longer than the in-process budget): wall time.
 */
async function cliProcess(
  ctx: BenchContext,
  table: string,
  args: string[],
  reps: number,
): Promise<Summary> {
  const deadline = performance.now() + ctx.profile.inProcessBudgetMs / 2;
  const full = seedtaskArgs(ctx.dsn, table, ...args, "--json");
  const env = { NO_COLOR: "1" };
  const first = await exec(Deno.execPath(), full, { env, stdout: "null" }); // warm-up (module cache)
  if (first.code !== 0) {
    throw new Error(`seedtask ${args.join(" ")} failed: ${first.stderr.trim().slice(-1000)}`);
  }
  const samples: number[] = [];
  for (let i = 0; i < reps && (i < 3 || performance.now() < deadline); i++) {
    const r = await exec(Deno.execPath(), full, { env, stdout: "null" });
    if (r.code !== 0) throw new Error(`seedtask ${args.join(" ")} failed: ${r.stderr.trim()}`);
    samples.push(r.ms);
  }
  return summarize(samples);
}

/**
 * EXPLAIN ANALYZE's execution time (in-database, no client), median of `reps` (fewer, but at
 * least 3, when they take longer than `budgetMs`).
 */
async function explainAnalyze(
  sql: postgres.Sql,
  sqlText: string,
  reps: number,
  budgetMs: number,
): Promise<number> {
  const times: number[] = [];
  const deadline = performance.now() + budgetMs;
  for (let i = 0; i < reps && (i < 3 || performance.now() < deadline); i++) {
    const [row] = await sql.unsafe(`explain (analyze, format json) ${sqlText}`);
    const plan = (row as Record<string, unknown>)["QUERY PLAN"] as { "Execution Time": number }[];
    times.push(plan[0]!["Execution Time"]);
  }
  return summarize(times).p50;
}

interface SizeResult {
  rows: number;
  ops: {
    op: Operation;
    inProcess: Summary;
    process: Summary;
    pgbench: Summary | null;
    psql: Summary | null;
  }[];
  floor: { pgbench: Summary; psql: Summary; explainMs: number; sql: string };
  prefix: string;
  /** The fields the default stats path estimated at this size (empty: all counted). */
  estimated: string[];
}

async function measureSize(ctx: BenchContext, rows: number): Promise<SizeResult> {
  const p = ctx.profile;
  const filled = await ctx.filled(rows);
  const table = filled.table;
  const id = await uniquePrefixId(ctx.sql, table);
  const prefix = id.slice(0, 8);
  const ops = operations(prefix);
  const pgbenchSeconds = p.pgbenchSeconds;
  say(`\nqueries @ ${rowsLabel(rows)} rows (${table}, show prefix ${prefix})`);

  const db = openDb(ctx.dsn, table);
  const inProcess = new Map<string, Summary>();
  let estimated: string[] = [];
  try {
    estimated = (await getTaskStatistics(db)).estimates?.fields ?? [];
    for (const op of ops) {
      const samples = await repeat(() => op.run(db), {
        reps: p.inProcessReps,
        budgetMs: p.inProcessBudgetMs,
        minReps: 3,
        warmup: 2,
      });
      const s = summarize(samples);
      inProcess.set(op.name, s);
      say(`  in-process ${op.name}: p50 ${ms(s.p50)}, p95 ${ms(s.p95)} (${s.n} runs)`);
    }
  } finally {
    await db.close();
  }

  const floorSql = `select status, count(*) from ${
    table.split(".").map((x) => `"${x}"`).join(".")
  } group by status`;
  const floor = {
    sql: floorSql,
    pgbench: await pgbench(ctx, floorSql, pgbenchSeconds),
    psql: await psqlProcess(ctx.dsn, floorSql, p.processReps, p.inProcessBudgetMs / 2),
    explainMs: await explainAnalyze(ctx.sql, floorSql, 5, p.inProcessBudgetMs / 2),
  };
  say(
    `  floor (status counts): pgbench p50 ${ms(floor.pgbench.p50)}, EXPLAIN ANALYZE ${
      ms(floor.explainMs)
    }, psql process p50 ${ms(floor.psql.p50)}`,
  );

  const results: SizeResult["ops"] = [];
  for (const op of ops) {
    const process = await cliProcess(ctx, table, op.cli, p.processReps);
    let pgb: Summary | null = null;
    let psql: Summary | null = null;
    if (op.kind === "list" || op.kind === "show") {
      const text = await captureSql(ctx, table, op);
      pgb = await pgbench(ctx, text, pgbenchSeconds);
      psql = await psqlProcess(ctx.dsn, text, p.processReps, p.inProcessBudgetMs / 2);
    }
    say(
      `  ${op.name}: CLI process p50 ${ms(process.p50)}${
        pgb ? `, same SQL pgbench p50 ${ms(pgb.p50)}, psql process p50 ${ms(psql!.p50)}` : ""
      }`,
    );
    results.push({ op, inProcess: inProcess.get(op.name)!, process, pgbench: pgb, psql });
  }
  return { rows, ops: results, floor, prefix, estimated };
}

function sizeTable(r: SizeResult): string {
  const rows = r.ops.map((o) => [
    o.op.name,
    ms(o.inProcess.p50),
    ms(o.inProcess.p95),
    String(o.inProcess.n),
    ms(o.process.p50),
    o.pgbench ? ms(o.pgbench.p50) : "—",
    o.psql ? ms(o.psql.p50) : "—",
  ]);
  rows.push([
    "status counts floor (psql baseline)",
    "—",
    "—",
    "—",
    "—",
    ms(r.floor.pgbench.p50),
    ms(r.floor.psql.p50),
  ]);
  return mdTable([
    "operation",
    "in-process p50",
    "in-process p95",
    "runs",
    "CLI process p50",
    "same SQL, pgbench p50",
    "same SQL, psql process p50",
  ], rows);
}

/** `status_counts.completed` … → "completed, failed, cancelled". */
function estimatedStatuses(fields: string[]): string {
  const statuses = fields.filter((f) => f.startsWith("status_counts."))
    .map((f) => f.slice("status_counts.".length));
  return statuses.length > 0 ? statuses.join(", ") : "none";
}

export async function queriesSuite(ctx: BenchContext): Promise<SuiteReport> {
  const results: SizeResult[] = [];
  for (const rows of ctx.profile.sizes) results.push(await measureSize(ctx, rows));

  const targets: Target[] = [];
  const largest = results.reduce((a, b) => (b.rows > a.rows ? b : a));
  const fast = largest.ops.filter((o) => o.op.kind === "list" || o.op.kind === "show");
  const how = "lib call on a warm pool, in-process p50";
  if (largest.rows >= 10_000_000) {
    for (const o of fast) {
      targets.push({
        name: `${o.op.name} (${how}) < ${LIST_TARGET_MS} ms at ${rowsLabel(largest.rows)} rows`,
        met: o.inProcess.p50 < LIST_TARGET_MS,
        detail: `${ms(o.inProcess.p50)} (${ratio(o.inProcess.p50 / LIST_TARGET_MS)} of the limit)`,
      });
    }
  } else {
    const worst = fast.reduce((a, b) => (b.inProcess.p50 > a.inProcess.p50 ? b : a));
    targets.push({
      name: `list and show (${how}) < ${LIST_TARGET_MS} ms at 10M rows`,
      met: null,
      detail: `this run stops at ${
        rowsLabel(largest.rows)
      } rows (run \`deno task bench:full\`); at ${
        rowsLabel(largest.rows)
      } the slowest is ${worst.op.name} at ${ms(worst.inProcess.p50)} (${
        ratio(worst.inProcess.p50 / LIST_TARGET_MS)
      } of the limit)`,
    });
  }
  const floorHow = "`select status, count(*) … group by status` via pgbench, p50";
  for (const size of [1_000_000, 10_000_000]) {
    const r = results.find((x) => x.rows === size);
    const est = r ? estimatedStatuses(r.estimated) : "the large ones";
    const name = `stats --json, default path (planner estimates for the large statuses: ${est}; ` +
      `getTaskStatistics in-process p50) at most ${STATS_FLOOR_RATIO}x the exact status-count ` +
      `floor (${floorHow}) at ${rowsLabel(size)} rows`;
    if (!r) {
      targets.push({
        name,
        met: null,
        detail: `not run at ${rowsLabel(size)} rows in this mode (${
          size < 10_000_000 ? "the quick run's size" : "run `deno task bench:full`"
        })`,
      });
      continue;
    }
    const stats = r.ops.find((o) => o.op.kind === "stats")!;
    const q = stats.inProcess.p50 / r.floor.pgbench.p50;
    targets.push({
      name,
      met: q <= STATS_FLOOR_RATIO,
      detail: `${ratio(q)} (stats p50 ${ms(stats.inProcess.p50)} vs floor p50 ${
        ms(r.floor.pgbench.p50)
      }); estimated fields: ${r.estimated.join(", ") || "none"}`,
    });
  }
  {
    const r = results.find((x) => x.rows === 10_000_000);
    const name = `stats --exact --json (every row counted; getTaskStatistics({ exact: true }) ` +
      `in-process p50) at most ${EXACT_FLOOR_RATIO}x the same status-count floor at 10M rows`;
    if (!r) {
      const small = results.find((x) => x.rows === 1_000_000) ?? largest;
      const exact = small.ops.find((o) => o.op.kind === "stats-exact")!;
      targets.push({
        name,
        met: null,
        detail: `not run at 10M rows in this mode; at ${rowsLabel(small.rows)} rows ${
          ratio(exact.inProcess.p50 / small.floor.pgbench.p50)
        } (${ms(exact.inProcess.p50)} vs floor ${ms(small.floor.pgbench.p50)})`,
      });
    } else {
      const exact = r.ops.find((o) => o.op.kind === "stats-exact")!;
      const q = exact.inProcess.p50 / r.floor.pgbench.p50;
      targets.push({
        name,
        met: q <= EXACT_FLOOR_RATIO,
        detail: `${ratio(q)} (stats --exact p50 ${ms(exact.inProcess.p50)} vs floor p50 ${
          ms(r.floor.pgbench.p50)
        }, ${exact.inProcess.n} runs)`,
      });
    }
  }

  const statsLines = results.map((r) => {
    const stats = r.ops.find((o) => o.op.kind === "stats")!;
    const exact = r.ops.find((o) => o.op.kind === "stats-exact")!;
    return `- ${rowsLabel(r.rows)} rows: default stats ${ms(stats.inProcess.p50)} (${
      ratio(stats.inProcess.p50 / r.floor.pgbench.p50)
    } of the floor), estimated fields: ${r.estimated.join(", ") || "none (all counted)"}; ` +
      `stats --exact ${ms(exact.inProcess.p50)} (${
        ratio(exact.inProcess.p50 / r.floor.pgbench.p50)
      } of the floor); floor ${ms(r.floor.pgbench.p50)} (pgbench p50), ${
        ms(r.floor.explainMs)
      } in-database (EXPLAIN ANALYZE, median of up to 5).`;
  });

  const body = [
    "In-process: the lib function on a warm pool (4 connections), called sequentially; " +
    "p50/p95 over the runs shown. CLI process: `deno run -A main.ts … --json`, spawn to exit " +
    "(output discarded). Same SQL: the statement seedtask sends, captured from the driver " +
    "with its parameters inlined, run by `pgbench -M prepared -c 1` (per-transaction " +
    "latencies from its log) and by `psql -c` as a process. The floor is " +
    "`select status, count(*) from <table> group by status` (an exact count of every row).",
    "",
    "**What stats does at these sizes.** Above 200,000 rows the default `stats` does not " +
    "count the large statuses (those the planner puts above its threshold, at 10M rows every " +
    "status of this fill): it counts the small statuses exactly and takes the large " +
    "ones (and the type, domain and attempts distributions) from the planner's statistics " +
    "of the last ANALYZE, and says so in its output (`estimates` in --json, `~` in the " +
    "table); the fields it estimated in this run are listed below. Its floor ratio therefore " +
    "compares estimated work with an exact count. " +
    "`stats --exact` counts every row — the like-for-like comparison with the floor — and is " +
    `held to its own target (at most ${EXACT_FLOOR_RATIO}x the floor at 10M rows).`,
    "",
    ...statsLines,
    "",
    ...results.flatMap((r) => [
      `### ${int(r.rows)} rows`,
      "",
      sizeTable(r),
      "",
    ]),
  ].join("\n");
  return { suite: "queries", title: "Queries", body, targets };
}
