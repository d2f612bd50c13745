/**
 * Bulk enqueue suite (issue 12 item 3).
 *
 * `seedtask enqueue --file tasks.ndjson` of 100,000 tasks (a spawned process, start-up
 * included) into a freshly migrated, empty table with every recommended index, against the
 * floor: `psql -c '\copy'` of the same rows (as CSV) into another such table. Also
 * `--dry-run` (the client's share: reading, JSON and the schema, no database writes) and a
 * larger batch. Each run gets its own new table; the commands take turns, so a change in the
 * machine's load hits them alike. Target: under 5 s. Both sides maintain the same indexes,
 * which is most of the work; seedtask does it on two backends (two batches at once), \copy on
 * one.
 */
import { exec, int, mdTable, ms, ratio, say, seedtaskArgs, summarize } from "./common.ts";
import type { BenchContext } from "./context.ts";
import { createEmptyTable } from "./data.ts";
import type { SuiteReport } from "./results_md.ts";

/** Tasks per run in the quick and full modes (the number). */
const TASKS = 100_000;
const TARGET_MS = 5_000;
const SCHEMA = "bench_bulk";

/** Task `i` as a line of the file: the fields of POST /tasks, with varied values. */
function task(i: number): Record<string, unknown> {
  return {
    type: ["graph_embed", "graph_rag_query", "nim_task_embed", "ocr_page"][i % 4],
    params: { entity_id: i, source: "bench", tags: ["a", `t${i % 10}`], depth: i % 3 },
    description: `Embed entity ${i} for the nightly refresh`,
    domain: `user_${i % 997}`,
    drift_score: (i % 100) / 100,
    ...(i % 10 === 0 ? { status: "created" } : {}),
  };
}

const csvField = (v: unknown) =>
  v === null || v === undefined ? "" : `"${String(v).replaceAll('"', '""')}"`;

/** The ndjson file and the same rows as CSV for `\copy`. */
async function writeInputs(dir: string, n: number): Promise<{ ndjson: string; csv: string }> {
  const ndjson = `${dir}/bulk_tasks.ndjson`;
  const csv = `${dir}/bulk_tasks.csv`;
  const lines: string[] = [];
  const rows: string[] = [];
  for (let i = 0; i < n; i++) {
    const t = task(i);
    lines.push(JSON.stringify(t));
    rows.push(
      [
        t.type,
        JSON.stringify(t.params),
        t.description,
        t.domain,
        t.drift_score,
        t.status ?? "queued",
      ].map(csvField).join(","),
    );
  }
  await Deno.writeTextFile(ndjson, lines.join("\n") + "\n");
  await Deno.writeTextFile(csv, rows.join("\n") + "\n");
  return { ndjson, csv };
}

interface Variant {
  name: string;
  /** The command, given a fresh table. */
  argv: (table: string) => [string, ...string[]];
  /** It writes the rows (checked after each run). */
  writes: boolean;
}

export async function bulkEnqueueSuite(ctx: BenchContext): Promise<SuiteReport> {
  const n = ctx.mode === "custom" ? Math.min(ctx.profile.dispatchTasks, TASKS) : TASKS;
  const reps = Math.max(3, Math.min(ctx.profile.processReps, 5));
  const { ndjson, csv } = await writeInputs(ctx.tmp, n);
  const deno = Deno.execPath();
  const seedtask = (table: string, ...args: string[]) =>
    [deno, ...seedtaskArgs(ctx.dsn, table, "enqueue", "--file", ndjson, ...args)] as [
      string,
      ...string[],
    ];
  const variants: Variant[] = [
    {
      name: "psql \\copy (the floor)",
      argv: (table) => [
        "psql",
        "-X",
        "-q",
        "-v",
        "ON_ERROR_STOP=1",
        "-d",
        ctx.dsn,
        "-c",
        `\\copy ${table} (type, params, description, domain, drift_score, status) ` +
        `from '${csv}' with (format csv)`,
      ],
      writes: true,
    },
    { name: "seedtask enqueue --file", argv: (table) => seedtask(table), writes: true },
    {
      name: "seedtask enqueue --file --batch-size 5000",
      argv: (table) => seedtask(table, "--batch-size", "5000"),
      writes: true,
    },
    {
      name: "seedtask enqueue --file --dry-run (no writes)",
      argv: (table) => seedtask(table, "--dry-run"),
      writes: false,
    },
  ];
  say(`bulk enqueue: ${int(n)} tasks, ${reps} runs of each, a fresh table per run`);
  ctx.schemas.add(SCHEMA);
  const samples = new Map<string, number[]>(variants.map((v) => [v.name, []]));
  for (let rep = 0; rep < reps; rep++) {
    for (const v of variants) {
      const table = await createEmptyTable(ctx.sql, ctx.dsn, SCHEMA);
      const [cmd, ...args] = v.argv(table);
      const r = await exec(cmd, args, { stdout: "null" });
      if (r.code !== 0) throw new Error(`${v.name} failed: ${r.stderr.slice(-1000)}`);
      const [row] = await ctx.sql.unsafe(`select count(*)::int as count from ${table}`);
      const count = (row as unknown as { count: number }).count;
      if (count !== (v.writes ? n : 0)) {
        throw new Error(`${v.name}: ${count} rows after the run, expected ${v.writes ? n : 0}`);
      }
      samples.get(v.name)!.push(r.ms);
      say(`  ${v.name}: ${ms(r.ms)}`);
    }
  }
  const stats = variants.map((v) => ({ v, s: summarize(samples.get(v.name)!) }));
  const floor = stats[0]!.s.p50;
  const main = stats[1]!.s.p50;
  const body = [
    `${int(n)} tasks from a file into an empty, migrated table (every recommended index, ` +
    `including the trigram index on description and error); each command a spawned process, ` +
    `start-up included, ${reps} runs each, a fresh table per run, the commands taking turns. ` +
    `Most of the work is the server's index maintenance: \\copy does it on one backend, ` +
    `seedtask on two (two batches written at once, committed in input order).`,
    "",
    mdTable(
      ["command", "median", "min", "max", "tasks/s (median)", "vs psql \\copy"],
      stats.map(({ v, s }) => [
        v.name,
        ms(s.p50),
        ms(s.min),
        ms(s.max),
        int(n / (s.p50 / 1000)),
        ratio(s.p50 / floor),
      ]),
    ),
  ].join("\n");
  return {
    suite: "bulk_enqueue",
    title: "Bulk enqueue",
    body,
    targets: [{
      name: `\`seedtask enqueue --file\` of ${int(n)} tasks in under ${TARGET_MS / 1000} s ` +
        `(a spawned process, start-up included, spawn to exit; median of ${reps} runs, each ` +
        `into a fresh migrated table with every recommended index)`,
      met: n === TASKS ? main < TARGET_MS : null,
      detail: `${ms(main)} median (${ratio(main / TARGET_MS)} of the limit); psql \\copy of ` +
        `the same rows ${ms(floor)} (seedtask ${ratio(main / floor)} of it)`,
    }],
  };
}
