import type { Command } from "commander";
import { formatStatistics } from "../lib/format/stats.ts";
import { getTaskStatistics } from "../lib/queries/task_stats.ts";
import { type Context, json, useEmoji, withDb } from "./context.ts";
import { parseDurationFlag, parseIntFlag } from "./options.ts";

interface StatsFlags {
  json?: boolean;
  top: string;
  days: string;
  longRunning: string;
  highAttempts: string;
  exact?: boolean;
}

export function registerStats(program: Command, ctx: Context): void {
  program
    .command("stats")
    .description("Task counts and queue health (--json keeps the seed helper's keys)")
    .option("--json", "print the statistics as one JSON document")
    .option("--top <n>", "how many types, domains and tasks to list", "10")
    .option("--days <n>", "days of recent activity", "7")
    .option("--long-running <duration>", "running longer than this is long running", "10m")
    .option("--high-attempts <n>", "attempts at or above this are listed", "3")
    .option(
      "--exact",
      "count every row even on a large table (default: planner estimates for large counts)",
    )
    .action(async (opts: StatsFlags, cmd: Command) => {
      const options = {
        top: parseIntFlag(opts.top, "top", 1, 1000),
        days: parseIntFlag(opts.days, "days", 1, 3650),
        longRunningMs: parseDurationFlag(opts.longRunning, "long-running", "age"),
        highAttempts: parseIntFlag(opts.highAttempts, "high-attempts", 1, 1_000_000),
        exact: !!opts.exact,
      };
      await withDb(ctx, cmd, async (db) => {
        const stats = await getTaskStatistics(db, options);
        if (opts.json) await json(ctx, stats);
        else await ctx.out(formatStatistics(stats, { emoji: useEmoji(ctx, cmd) }));
      });
    });
}
