/**
 * seedtask's benchmark harness.
 *
 * ```sh
 * deno task bench                      # --quick: 1M rows, < 10 minutes
 * deno task bench:full                 # --full: 10M rows, 50,000 dispatch tasks
 * deno run -A bench/run.ts --quick --suite queries --suite serve
 * deno run -A bench/run.ts --rows 20000 --tasks 2000 --seconds 2   # a smoke run ("custom")
 * ```
 *
 * Options: `--suite NAME` (repeatable or comma-separated; default all, see {@link SUITES}),
 * `--keep` (keep the filled tables and reuse them next time; a table reused from an earlier
 * --keep run is never dropped), `--rows N[,N]`,
 * `--tasks N`, `--exec-tasks N`, `--seconds S` (override the profile; the results are then
 * recorded under mode "custom", in bench/.cache/RESULTS-custom.md), `--results PATH` (default
 * bench/RESULTS.md for a run of every suite, bench/.cache/RESULTS-partial.md for some),
 * `--no-write`.
 *
 * One run of a mode writes that mode's whole block of RESULTS.md (bench/results_md.ts), after
 * every suite, so the block never mixes sections of different runs.
 * `SEEDTASK_BENCH_DSN` selects the server (default
 * postgres://postgres@127.0.0.1:5432/seedtask_bench; the database is created if missing).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { BENCH_DIR, describeMachine, killChildren, machineLine, mdTable, say } from "./common.ts";
import { type BenchContext, type Profile, PROFILES } from "./context.ts";
import {
  DEFAULT_BENCH_DSN,
  dropSchema,
  ensureDatabase,
  type FilledTable,
  prepareFilledTable,
} from "./data.ts";
import { dispatchSuite } from "./dispatch_suite.ts";
import { cacheDir } from "./externals.ts";
import { queriesSuite } from "./queries_suite.ts";
import {
  type RunRecord,
  type SuiteOutcome,
  type SuiteReport,
  targetLine,
  verdict,
  writeRun,
} from "./results_md.ts";
import { seedcoreSuite } from "./seedcore_suite.ts";
import { serveSuite } from "./serve_suite.ts";
import { startupSuite } from "./startup_suite.ts";
import { listTotalSuite } from "./list_total_suite.ts";
import { bulkEnqueueSuite } from "./bulk_enqueue_suite.ts";
import { topSuite } from "./top_suite.ts";
import { failuresSuite } from "./failures_suite.ts";
import { consoleSuite } from "./console_suite.ts";

/**
 * Every suite, in run order: the stats floor first, the feature suites on the filled tables
 * (the shortest first),
 * then the comparisons with PostgREST and graphile-worker, bulk enqueue, the SeedCore-schema
 * table and start-up. `top`'s writer adds rows to the shared filled table and deletes them again
 * (then vacuums).
 */
const SUITES: Record<string, (ctx: BenchContext) => Promise<SuiteReport>> = {
  queries: queriesSuite,
  failures: failuresSuite,
  top: topSuite,
  console: consoleSuite,
  list_total: listTotalSuite,
  serve: serveSuite,
  dispatch: dispatchSuite,
  bulk_enqueue: bulkEnqueueSuite,
  seedcore: seedcoreSuite,
  startup: startupSuite,
};

const USAGE = `usage: deno run -A bench/run.ts [--quick | --full] [--suite NAME]... [--keep]
                 [--rows N[,N]] [--tasks N] [--exec-tasks N] [--seconds S]
                 [--results PATH] [--no-write]
suites: ${Object.keys(SUITES).join(", ")} (default: all, in that order)`;

/** The host's 1-minute load average, as /proc/loadavg says it ("?" elsewhere). */
function loadAverage(): string {
  try {
    return Deno.readTextFileSync("/proc/loadavg").split(" ")[0]!;
  } catch {
    return "?";
  }
}

function positiveInt(value: string, flag: string): number {
  const n = Number(value.replaceAll("_", ""));
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`Invalid ${flag} "${value}"`);
  return n;
}

async function main(): Promise<number> {
  const started = performance.now();
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      quick: { type: "boolean" },
      full: { type: "boolean" },
      suite: { type: "string", multiple: true },
      keep: { type: "boolean" },
      rows: { type: "string" },
      tasks: { type: "string" },
      "exec-tasks": { type: "string" },
      seconds: { type: "string" },
      results: { type: "string" },
      "no-write": { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    say(USAGE);
    return 0;
  }
  if (values.quick && values.full) throw new TypeError("Give --quick or --full, not both");
  let mode = values.full ? "full" : "quick";
  const profile: Profile = structuredClone(PROFILES[mode as "quick" | "full"]);
  if (values.rows) {
    profile.sizes = values.rows.split(",").map((s) => positiveInt(s.trim(), "--rows"));
    profile.serveRows = Math.max(...profile.sizes);
    profile.seedcoreRows = Math.max(...profile.sizes);
    mode = "custom";
  }
  if (values.tasks) {
    profile.dispatchTasks = positiveInt(values.tasks, "--tasks");
    profile.execTasks = Math.min(profile.execTasks, profile.dispatchTasks);
    mode = "custom";
  }
  if (values["exec-tasks"]) {
    profile.execTasks = positiveInt(values["exec-tasks"], "--exec-tasks");
    mode = "custom";
  }
  if (values.seconds) {
    profile.serveSeconds = positiveInt(values.seconds, "--seconds");
    profile.inProcessBudgetMs = profile.serveSeconds * 1000;
    profile.pgbenchSeconds = profile.serveSeconds;
    mode = "custom";
  }
  const suites = (values.suite ?? Object.keys(SUITES)).flatMap((s) => s.split(","))
    .map((s) => s.trim()).filter((s) => s !== "");
  for (const s of suites) {
    if (!SUITES[s]) throw new TypeError(`Unknown suite "${s}"\n${USAGE}`);
  }
  // Custom sizes are for trying the harness out, and a run of some suites would leave the
  // mode's block with sections of different runs: keep both out of the committed results.
  const partial = values.suite !== undefined &&
    Object.keys(SUITES).some((s) => !suites.includes(s));
  const resultsPath = values.results ??
    (mode === "custom"
      ? `${cacheDir()}/RESULTS-custom.md`
      : partial
      ? `${cacheDir()}/RESULTS-partial.md`
      : `${BENCH_DIR}/RESULTS.md`);
  const dsn = Deno.env.get("SEEDTASK_BENCH_DSN") ?? DEFAULT_BENCH_DSN;
  const command = mode === "custom"
    ? `deno run -A bench/run.ts ${Deno.args.join(" ")}`
    : `deno task ${mode === "full" ? "bench:full" : "bench"}${
      values.suite ? ` --suite ${suites.join(",")}` : ""
    }`;

  const sql = await ensureDatabase(dsn);
  const machine = await describeMachine(sql);
  const tmp = await Deno.makeTempDir({ prefix: "seedtask_bench_" });
  const tables = new Map<number, Promise<FilledTable>>();
  const record: RunRecord = {
    mode,
    only: partial ? suites : null,
    command,
    machine,
    started: new Date().toISOString().replace(/\.\d+Z$/, "Z"),
    seconds: null,
    suites: suites.map((suite): SuiteOutcome => ({ suite, state: "pending" })),
    notes: [],
  };
  let current = "";
  function noteFill(f: FilledTable): void {
    const what = `${f.table} (${f.rows.toLocaleString("en-US")} rows)`;
    const t = f.timings;
    record.notes.push(
      f.reused
        ? `Table ${what}: reused from an earlier --keep run${
          f.upgraded && f.upgraded.length > 0
            ? `, brought up to the current contract in this run: ${f.upgraded.join("; ")}`
            : ""
        }`
        : `Table ${what}: filled in this run, ${
          (t.insert + t.indexes + t.vacuum).toFixed(0)
        } s (insert ${t.insert.toFixed(0)} s, indexes ${t.indexes.toFixed(0)} s, VACUUM ANALYZE ${
          t.vacuum.toFixed(0)
        } s), counted in the ${current} suite's duration`,
    );
  }
  const ctx: BenchContext = {
    dsn,
    sql,
    mode,
    profile,
    machine,
    tmp,
    schemas: new Set(),
    noteFill,
    filled(rows) {
      let t = tables.get(rows);
      if (!t) {
        t = prepareFilledTable(sql, dsn, rows).then((f) => {
          // A table kept by an earlier --keep run is not this run's to drop.
          if (!f.reused) ctx.schemas.add(f.schema);
          noteFill(f);
          return f;
        });
        tables.set(rows, t);
      }
      return t;
    },
  };

  let interrupted = false;
  const cleanup = async () => {
    await killChildren();
    if (!values.keep) {
      for (const s of ctx.schemas) {
        await dropSchema(sql, s).catch((e) => say(`could not drop ${s}: ${e.message}`));
      }
    } else if (ctx.schemas.size > 0) {
      say(`kept schemas (--keep): ${[...ctx.schemas].join(", ")}`);
    }
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
    await sql.end({ timeout: 5 });
  };
  let cleaning: Promise<void> | null = null;
  const cleanupOnce = () => (cleaning ??= cleanup());
  const onSignal = () => {
    if (interrupted) return;
    interrupted = true;
    say(`\ninterrupted: stopping servers${values.keep ? "" : " and dropping the bench schemas"}`);
    // The block says where the run stopped: the suite in progress and those after it not run.
    record.stopped = new Date().toISOString().replace(/\.\d+Z$/, "Z");
    record.seconds = (performance.now() - started) / 1000;
    const written = values["no-write"] ? Promise.resolve() : writeRun(resultsPath, record);
    void written.catch(() => {}).then(cleanupOnce).finally(() => Deno.exit(130));
  };
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);

  say(`seedtask benchmarks (${mode}): ${suites.join(", ")}`);
  say(`machine: ${machineLine(machine)}`);
  say(`database: ${dsn.replace(/:[^:@/]*@/, ":***@")}`);
  const reports: SuiteReport[] = [];
  let failed = 0;
  try {
    for (const [i, name] of suites.entries()) {
      if (interrupted) break;
      const t0 = performance.now();
      const loadStart = loadAverage();
      current = name;
      say(`\n=== ${name} ===`);
      try {
        const report = await SUITES[name]!(ctx);
        reports.push(report);
        say(`\n${report.body.trim()}\n`);
        for (const t of report.targets) say(targetLine(t));
        record.suites[i] = {
          suite: name,
          state: "done",
          report,
          seconds: (performance.now() - t0) / 1000,
          load: `load ${loadStart} → ${loadAverage()}`,
        };
      } catch (err) {
        if (interrupted) break;
        failed++;
        say(`suite ${name} failed: ${(err as Error).stack ?? err}`);
        record.suites[i] = {
          suite: name,
          state: "failed",
          error: String((err as Error).stack ?? err),
          seconds: (performance.now() - t0) / 1000,
          load: `load ${loadStart} → ${loadAverage()}`,
        };
        await killChildren();
      }
      if (i === suites.length - 1) record.seconds = (performance.now() - started) / 1000;
      if (!values["no-write"]) {
        await writeRun(resultsPath, record);
        say(`(written to ${resultsPath})`);
      }
      say(`=== ${name}: ${((performance.now() - t0) / 1000).toFixed(0)} s ===`);
    }
  } finally {
    Deno.removeSignalListener("SIGINT", onSignal);
    Deno.removeSignalListener("SIGTERM", onSignal);
    await cleanupOnce();
    if (interrupted) Deno.exit(130);
  }
  const all = reports.flatMap((r) => r.targets.map((t) => [r.suite, t] as const));
  if (all.length > 0) {
    say("\nTargets:");
    say(mdTable(
      ["suite", "target", "verdict"],
      all.map(([s, t]) => [
        s,
        t.name,
        verdict(t),
      ]),
    ));
  }
  say(
    `\ndone in ${((performance.now() - started) / 1000 / 60).toFixed(1)} minutes${
      failed > 0 ? `; ${failed} suite(s) failed` : ""
    }`,
  );
  return failed > 0 ? 1 : 0;
}

if (import.meta.main) {
  try {
    Deno.exit(await main());
  } catch (err) {
    say(`error: ${(err as Error).message}`);
    Deno.exit(2);
  }
}
