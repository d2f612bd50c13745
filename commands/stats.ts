import type { Command } from "commander";
import { formatStatistics } from "../lib/format/stats.ts";
import { STATS_DEFAULTS, StatsOptionsSchema } from "../lib/input/stats_options.ts";
import { getTaskStatistics } from "../lib/queries/task_stats.ts";
import { type Context, json, useEmoji, withDb } from "./context.ts";
import { parseFlags } from "./options.ts";

export function registerStats(program: Command, ctx: Context): void {
  const d = STATS_DEFAULTS;
  program
    .command("stats")
    .description("Task counts and queue health (--json keeps the seed helper's keys)")
    .option("--json", "print the statistics as one JSON document")
    .option("--top <n>", `how many types, domains and tasks to list (default: ${d.top})`)
    .option("--days <n>", `days of recent activity (default: ${d.days})`)
    .option(
      "--long-running <duration>",
      `running longer than this is long running (default: "${d.long_running}")`,
    )
    .option(
      "--high-attempts <n>",
      `attempts at or above this are listed (default: ${d.high_attempts})`,
    )
    .option(
      "--exact",
      "count every row even on a large table (default: planner estimates for large counts)",
    )
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const options = parseFlags(StatsOptionsSchema, opts);
      await withDb(ctx, cmd, async (db) => {
        const stats = await getTaskStatistics(db, options);
        if (opts.json) await json(ctx, stats);
        else await ctx.out(formatStatistics(stats, { emoji: useEmoji(ctx, cmd) }));
      });
    });
}
