/**
 * Start-up and memory suite.
 *
 * - Wall time of `seedtask --version` and `seedtask stats --json` on an empty table against
 *   `psql -c 'select 1'` (and `deno eval 0`, the runtime's own floor), with hyperfine when it is
 *   installed (`apt-get install hyperfine`), else by spawning each command repeatedly.
 * - `list --format ndjson --limit 0` over the filled tables: peak RSS (`/usr/bin/time -v`, else
 *   VmHWM polled from /proc) for the whole table and for a twelfth of it (one task type).
 *   Streaming holds memory bounded when twelve times the rows barely moves the peak; the
 *   slice is large enough for the runtime's heap to reach its working size, which a handful
 *   of rows would not.
 */
import {
  exec,
  int,
  MAIN,
  mdTable,
  ms,
  processMemory,
  ratio,
  rowsLabel,
  say,
  seedtaskArgs,
  sleep,
  summarize,
  track,
  which,
} from "./common.ts";
import type { BenchContext } from "./context.ts";
import { createEmptyTable } from "./data.ts";
import type { SuiteReport, Target } from "./results_md.ts";

const EMPTY_SCHEMA = "bench_empty";
/** How much more the whole-table stream may peak than the slice and still be "bounded". */
const BOUNDED_SLACK_MIB = 64;

interface Timing {
  name: string;
  p50: number;
  mean: number;
  min: number;
  stddev: number;
  runs: number;
}

async function withHyperfine(
  ctx: BenchContext,
  commands: { name: string; argv: string[] }[],
  runs: number,
): Promise<Timing[]> {
  const file = `${ctx.tmp}/hyperfine.json`;
  // -N: no intermediate shell; the argv are joined with quoting hyperfine splits back.
  const quote = (a: string) => /^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replaceAll("'", `'\\''`)}'`;
  const r = await exec("hyperfine", [
    "-N",
    "--warmup",
    "3",
    "--runs",
    String(runs),
    "--export-json",
    file,
    ...commands.flatMap((c) => ["-n", c.name, c.argv.map(quote).join(" ")]),
  ]);
  if (r.code !== 0) throw new Error(`hyperfine failed: ${r.stderr.slice(-2000)}`);
  const json = JSON.parse(await Deno.readTextFile(file)) as {
    results: { command: string; mean: number; median: number; min: number; stddev: number }[];
  };
  return json.results.map((x) => ({
    name: x.command,
    p50: x.median * 1000,
    mean: x.mean * 1000,
    min: x.min * 1000,
    stddev: x.stddev * 1000,
    runs,
  }));
}

async function withSpawn(
  commands: { name: string; argv: string[] }[],
  runs: number,
): Promise<Timing[]> {
  const out: Timing[] = [];
  for (const c of commands) {
    const [cmd, ...args] = c.argv as [string, ...string[]];
    for (let i = 0; i < 3; i++) await exec(cmd, args, { stdout: "null" });
    const samples: number[] = [];
    for (let i = 0; i < runs; i++) {
      const r = await exec(cmd, args, { stdout: "null" });
      if (r.code !== 0) throw new Error(`${c.name} failed: ${r.stderr.slice(-1000)}`);
      samples.push(r.ms);
    }
    const s = summarize(samples);
    const sd = Math.sqrt(samples.reduce((a, x) => a + (x - s.mean) ** 2, 0) / samples.length);
    out.push({ name: c.name, p50: s.p50, mean: s.mean, min: s.min, stddev: sd, runs });
  }
  return out;
}

interface StreamResult {
  name: string;
  rows: number;
  seconds: number;
  peakMiB: number;
}

/** Runs a command, counting stdout lines without keeping them, and its peak RSS. */
async function peakRss(ctx: BenchContext, name: string, argv: string[]): Promise<StreamResult> {
  const gnuTime = await Deno.stat("/usr/bin/time").then(() => true, () => false);
  const report = `${ctx.tmp}/time_${crypto.randomUUID()}.txt`;
  const full = gnuTime ? ["/usr/bin/time", "-v", "-o", report, ...argv] : argv;
  const t0 = performance.now();
  const child = track(
    new Deno.Command(full[0]!, {
      args: full.slice(1),
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).spawn(),
  );
  let polled = 0;
  let polling = !gnuTime;
  const poller = (async () => {
    while (polling) {
      const m = processMemory(child.pid);
      if (m) polled = Math.max(polled, m.hwmMiB);
      await sleep(20);
    }
  })();
  let lines = 0;
  const stderr = new Response(child.stderr).text();
  for await (const chunk of child.stdout) {
    for (let i = 0; i < chunk.length; i++) if (chunk[i] === 10) lines++;
  }
  const status = await child.status;
  const seconds = (performance.now() - t0) / 1000;
  polling = false;
  await poller;
  if (!status.success) throw new Error(`${name} failed: ${(await stderr).slice(-1000)}`);
  let peakMiB = polled;
  if (gnuTime) {
    const text = await Deno.readTextFile(report);
    peakMiB = Number(/Maximum resident set size \(kbytes\): (\d+)/.exec(text)?.[1]) / 1024;
  }
  say(
    `  ${name}: ${int(lines)} lines in ${seconds.toFixed(1)} s, peak RSS ${peakMiB.toFixed(0)} MiB`,
  );
  return { name, rows: lines, seconds, peakMiB };
}

export async function startupSuite(ctx: BenchContext): Promise<SuiteReport> {
  const p = ctx.profile;
  const empty = await createEmptyTable(ctx.sql, ctx.dsn, EMPTY_SCHEMA);
  ctx.schemas.add(EMPTY_SCHEMA);
  const deno = Deno.execPath();
  const commands = [
    { name: "seedtask --version", argv: [deno, "run", "-A", MAIN, "--version"] },
    {
      name: "seedtask stats --json (empty table)",
      argv: [deno, ...seedtaskArgs(ctx.dsn, empty, "stats", "--json")],
    },
    { name: "psql -c 'select 1'", argv: ["psql", "-X", "-d", ctx.dsn, "-c", "select 1"] },
    { name: "deno eval 0 (the runtime alone)", argv: [deno, "eval", "0"] },
  ];
  const hyperfine = await which("hyperfine");
  say(`start-up: ${p.startupRuns} runs each, ${hyperfine ? "with hyperfine" : "spawned in turn"}`);
  const timings = hyperfine
    ? await withHyperfine(ctx, commands, p.startupRuns)
    : await withSpawn(commands, p.startupRuns);
  for (const t of timings) say(`  ${t.name}: median ${ms(t.p50)}, mean ${ms(t.mean)}`);

  const streams: StreamResult[] = [];
  const baseline = await peakRss(ctx, "seedtask --version", [deno, "run", "-A", MAIN, "--version"]);
  for (const rows of p.sizes) {
    const { table } = await ctx.filled(rows);
    const list = [deno, ...seedtaskArgs(ctx.dsn, table, "list")];
    streams.push(
      await peakRss(
        ctx,
        `list --format ndjson --limit 0 --type graph_embed (${rowsLabel(rows)} table)`,
        [...list, "--format", "ndjson", "--limit", "0", "--type", "graph_embed"],
      ),
    );
    streams.push(
      await peakRss(ctx, `list --format ndjson --limit 0 (${rowsLabel(rows)} table)`, [
        ...list,
        "--format",
        "ndjson",
        "--limit",
        "0",
      ]),
    );
  }

  const psql = timings.find((t) => t.name.startsWith("psql"))!;
  const targets: Target[] = [];
  for (let i = 0; i < streams.length; i += 2) {
    const small = streams[i]!;
    const all = streams[i + 1]!;
    targets.push({
      name: `${all.name}: streams in bounded memory (peak RSS of the process exporting every ` +
        `row within ${BOUNDED_SLACK_MIB} MiB of the same export of one task type, a twelfth ` +
        `of the rows)`,
      met: all.peakMiB <= small.peakMiB + BOUNDED_SLACK_MIB,
      detail:
        `${all.peakMiB.toFixed(0)} MiB for ${int(all.rows)} rows vs ${
          small.peakMiB.toFixed(0)
        } MiB for ${int(small.rows)} rows (${ratio(all.peakMiB / small.peakMiB)}); ` +
        `\`--version\` alone peaks at ${baseline.peakMiB.toFixed(0)} MiB`,
    });
  }

  const body = [
    `Start-up (${
      hyperfine
        ? "hyperfine -N, 3 warm-up runs"
        : "each command spawned in turn after 3 warm-up runs; " +
          "install hyperfine for its statistics"
    }, ${p.startupRuns} runs each):`,
    "",
    mdTable(
      ["command", "median", "mean", "min", "stddev", "vs psql (median)"],
      timings.map((t) => [
        t.name,
        ms(t.p50),
        ms(t.mean),
        ms(t.min),
        ms(t.stddev),
        ratio(t.p50 / psql.p50),
      ]),
    ),
    "",
    `Streaming \`list --format ndjson --limit 0\` (stdout read and counted by the harness, ` +
    `peak RSS from ${
      streams.length > 0 && (await Deno.stat("/usr/bin/time").then(() => true, () => false))
        ? "`/usr/bin/time -v`"
        : "VmHWM polled every 20 ms"
    }):`,
    "",
    mdTable(
      ["command", "rows", "seconds", "rows/s", "peak RSS"],
      [baseline, ...streams].map((s) => [
        s.name,
        s === baseline ? "—" : int(s.rows),
        s.seconds.toFixed(1),
        s.name.includes("--version") ? "—" : int(s.rows / s.seconds),
        `${s.peakMiB.toFixed(0)} MiB`,
      ]),
    ),
  ].join("\n");
  return { suite: "startup", title: "Start-up and memory", body, targets };
}
