import type { Command } from "commander";
import { formatWorkers } from "../lib/format/insight.ts";
import { WorkersSchema } from "../lib/input/insight.ts";
import { listWorkers } from "../lib/queries/workers.ts";
import { type Context, reportAction } from "./context.ts";

export function registerWorkers(program: Command, ctx: Context): void {
  program
    .command("workers")
    .description(
      "Who is working: registered seedtask dispatchers (live or silent) and other owners of " +
        "running tasks, with the tasks each holds",
    )
    .option("--all", "also list workers silent for more than a day")
    .option("--json", "print the list as one JSON document")
    .action(reportAction(ctx, WorkersSchema, listWorkers, (list) => formatWorkers(list)));
}
