import type { Command } from "commander";
import { formatWorkers } from "../lib/format/insight.ts";
import { WorkersSchema } from "../lib/input/insight.ts";
import { listWorkers } from "../lib/queries/workers.ts";
import { type Context, json, withDb } from "./context.ts";
import { parseFlags } from "./options.ts";

export function registerWorkers(program: Command, ctx: Context): void {
  program
    .command("workers")
    .description(
      "Who is working: registered seedtask dispatchers (live or silent) and other owners of " +
        "running tasks, with the tasks each holds",
    )
    .option("--all", "also list workers silent for more than a day")
    .option("--json", "print the list as one JSON document")
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const options = parseFlags(WorkersSchema, opts);
      await withDb(ctx, cmd, async (db) => {
        const list = await listWorkers(db, options);
        if (opts.json) await json(ctx, list);
        else await ctx.out(formatWorkers(list));
      });
    });
}
