/**
 * SeedCore suite: every read command on a task table that never ran `seedtask migrate` — the
 * schema and the only indexes SeedCore's own migrations create ((status), (created_at), the
 * partial claim index, the primary key) — at 1M rows (quick) or 10M rows (full).
 *
 * Each command runs as the operator runs it: `deno run -A main.ts … <command>` with the
 * default statement timeout (30 s). The target is that every one finishes under it. Wall time
 * is spawn to exit (Deno start-up included), best and worst of the runs shown.
 */
import { exec, int, mdTable, ms, rowsLabel, say, seedtaskArgs } from "./common.ts";
import type { BenchContext } from "./context.ts";
import { prepareSeedCoreTable, uniquePrefixId } from "./data.ts";
import type { SuiteReport, Target } from "./results_md.ts";

/** seedtask's default statement timeout, which every read command must finish under. */
const DEFAULT_TIMEOUT_MS = 30_000;
/** A command slower than this gets two runs instead of three. */
const SLOW_MS = 5_000;

interface Command {
  name: string;
  args: string[];
  /** Exit codes that mean "answered" (doctor exits 1 when it finds the missing indexes). */
  ok: number[];
  /** Not held to the timeout (`stats --exact` counts every row by design). */
  reference?: boolean;
}

function commands(prefix: string, cursor: string): Command[] {
  const c = (name: string, args: string[], ok = [0]): Command => ({ name, args, ok });
  return [
    c("stats --json", ["stats", "--json"]),
    c("stats", ["stats"]),
    { ...c("stats --exact --json", ["stats", "--exact", "--json"]), reference: true },
    c("check --json", ["check", "--json"]),
    c("doctor --json", ["doctor", "--json"], [0, 1]),
    c(`show ${prefix}`, ["show", prefix, "--json"]),
    c("list", ["list", "--json"]),
    c("list (page 2, --after)", ["list", "--json", "--after", cursor]),
    c("list --sort created", ["list", "--json", "--sort", "created"]),
    c("list --status queued", ["list", "--json", "--status", "queued"]),
    c("list --status completed", ["list", "--json", "--status", "completed"]),
    c("list --status running", ["list", "--json", "--status", "running"]),
    c("list --status failed,retry", ["list", "--json", "--status", "failed,retry"]),
    c("list --status completed,failed,cancelled", [
      "list",
      "--json",
      "--status",
      "completed,failed,cancelled",
    ]),
    c("list --type graph_embed", ["list", "--json", "--type", "graph_embed"]),
    c("list --domain user_42", ["list", "--json", "--domain", "user_42"]),
    c('list --search "upstream error 42"', ["list", "--json", "--search", "upstream error 42"]),
    c('list --search "task #4775012" (no match)', ["list", "--json", "--search", "task #4775012"]),
    c("list --status failed --type graph_embed --sort created", [
      "list",
      "--json",
      "--status",
      "failed",
      "--type",
      "graph_embed",
      "--sort",
      "created",
    ]),
    c("list --domain user_49 --search error --status failed,retry", [
      "list",
      "--json",
      "--domain",
      "user_49",
      "--search",
      "error",
      "--status",
      "failed,retry",
    ]),
  ];
}

interface Run {
  cmd: Command;
  times: number[];
  /** First failure's stderr line, if any run failed. */
  failure: string | null;
}

export async function seedcoreSuite(ctx: BenchContext): Promise<SuiteReport> {
  const rows = ctx.profile.seedcoreRows;
  const filled = await prepareSeedCoreTable(ctx.sql, ctx.dsn, rows);
  if (!filled.reused) ctx.schemas.add(filled.schema);
  ctx.noteFill(filled);
  const table = filled.table;
  const id = await uniquePrefixId(ctx.sql, table);
  const first = await exec(Deno.execPath(), seedtaskArgs(ctx.dsn, table, "list", "--json"));
  const cursor = first.code === 0 ? JSON.parse(first.stdout).next_cursor as string : "";
  const reps = Math.max(1, Math.min(3, ctx.profile.processReps));
  const env = { NO_COLOR: "1" };
  say(`\nread commands on a SeedCore-schema table @ ${rowsLabel(rows)} rows (${table})`);

  const runs: Run[] = [];
  for (const cmd of commands(id.slice(0, 8), cursor)) {
    const run: Run = { cmd, times: [], failure: null };
    for (let i = 0; i < reps; i++) {
      const r = await exec(Deno.execPath(), seedtaskArgs(ctx.dsn, table, ...cmd.args), {
        env,
        stdout: "null",
      });
      run.times.push(r.ms);
      if (!cmd.ok.includes(r.code) && run.failure === null) {
        run.failure = `exit ${r.code}: ${r.stderr.trim().split("\n")[0]!.slice(0, 200)}`;
      }
      // Slow commands (seconds each at 10M rows) get two runs, to keep the suite's time.
      if (i === 1 && Math.max(...run.times) > SLOW_MS) break;
    }
    runs.push(run);
    say(
      `  ${cmd.name}: ${run.times.map(ms).join(", ")}${
        run.failure ? ` — FAILED (${run.failure})` : ""
      }`,
    );
  }

  const held = runs.filter((r) => !r.cmd.reference);
  const worst = held.reduce((a, b) => (Math.max(...b.times) > Math.max(...a.times) ? b : a));
  const failed = held.filter((r) => r.failure !== null);
  const slow = held.filter((r) => Math.max(...r.times) >= DEFAULT_TIMEOUT_MS);
  const targets: Target[] = [{
    name: `every read command finishes under the ${
      DEFAULT_TIMEOUT_MS / 1000
    } s default statement timeout on a never-migrated SeedCore table at ${
      rowsLabel(rows)
    } rows (slowest of ${reps} runs of each command — 2 for a command over ${
      SLOW_MS / 1000
    } s — as a process, spawn to exit)`,
    met: failed.length === 0 && slow.length === 0,
    detail: failed.length > 0
      ? `${failed.map((r) => `${r.cmd.name} (${r.failure})`).join("; ")}`
      : `slowest ${worst.cmd.name} at ${ms(Math.max(...worst.times))} (${
        (Math.max(...worst.times) / DEFAULT_TIMEOUT_MS * 100).toFixed(0)
      }% of the timeout)`,
  }];

  const table_ = mdTable(
    ["command", "best", "worst", "runs", "result"],
    runs.map((r) => [
      r.cmd.name,
      ms(Math.min(...r.times)),
      ms(Math.max(...r.times)),
      String(r.times.length),
      r.failure ?? (r.cmd.reference ? "ok (reference: --exact reads every row)" : "ok"),
    ]),
  );
  const body = [
    `Table: SeedCore's schema (migrations 001 + 006) with only SeedCore's indexes — primary ` +
    "key, `(status)`, `(created_at)`, `(status, run_after, created_at) where status in " +
    "('queued','failed','retry')` — none of seedtask's recommended ones; " +
    `${int(rows)} rows of the same mix as the queries suite, VACUUM ANALYZEd. Each command ` +
    "runs as a process (`deno run -A main.ts --dsn … --table … <command>`, output discarded) " +
    "with the default 30 s statement timeout; wall time from spawn to exit.",
    "",
    `### ${int(rows)} rows`,
    "",
    table_,
    "",
  ].join("\n");
  return {
    suite: "seedcore",
    title: "Read commands on a never-migrated SeedCore table",
    body,
    targets,
  };
}
