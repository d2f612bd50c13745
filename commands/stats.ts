import type { Command } from "commander";
import { formatStatistics } from "../lib/format/stats.ts";
import { StatsOptionsObject, StatsOptionsSchema } from "../lib/input/stats_options.ts";
import { getTaskStatistics } from "../lib/queries/task_stats.ts";
import { type Context, reportAction, useEmoji } from "./context.ts";
import { fieldHelp } from "./options.ts";

export function registerStats(program: Command, ctx: Context): void {
  const help = (key: string, text: string) => fieldHelp(StatsOptionsObject, key, text);
  program
    .command("stats")
    .description("Task counts and queue health (--json keeps the seed helper's keys)")
    .option("--json", "print the statistics as one JSON document")
    .option("--top <n>", help("top", "how many types, domains and tasks to list"))
    .option("--days <n>", help("days", "days of recent activity"))
    .option(
      "--long-running <duration>",
      help("long_running", "running longer than this is long running"),
    )
    .option(
      "--high-attempts <n>",
      help("high_attempts", "attempts at or above this are listed"),
    )
    .option(
      "--exact",
      "count every row even on a large table, instead of planner estimates for large counts",
    )
    .action(reportAction(
      ctx,
      StatsOptionsSchema,
      getTaskStatistics,
      (stats, _opts, cmd) => formatStatistics(stats, { emoji: useEmoji(ctx, cmd) }),
    ));
}
