import type { Command } from "commander";
import { formatTaskDetails } from "../lib/format/tasks.ts";
import { getTask } from "../lib/queries/get_task.ts";
import { type Context, json, useEmoji, withDb } from "./context.ts";

export function registerShow(program: Command, ctx: Context): void {
  program
    .command("show")
    .description("Show every column of one task (full id or a unique prefix)")
    .argument("<id>", "task id or unique prefix, e.g. 1a2b3c4d")
    .option("--json", "print the task row as JSON")
    .action(async (id: string, opts: { json?: boolean }, cmd: Command) => {
      await withDb(ctx, cmd, async (db) => {
        const task = await getTask(db, id);
        if (opts.json) await json(ctx, task);
        else await ctx.out(formatTaskDetails(task, { emoji: useEmoji(ctx, cmd) }));
      });
    });
}
