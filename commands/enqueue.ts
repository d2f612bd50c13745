import type { Command } from "commander";
import { enqueueTask } from "../lib/ops/enqueue_task.ts";
import { InvalidInputError } from "../lib/errors.ts";
import { NewTaskObject, NewTaskSchema } from "../lib/input/new_task.ts";
import { type Context, json, withDb } from "./context.ts";
import { fieldHelp, parseFlags } from "./options.ts";

interface EnqueueFlags {
  params?: string;
  created?: boolean;
  json?: boolean;
  [field: string]: unknown;
}

/** `--params`: a JSON object (or any JSON value), given as JSON text. */
export function parseParams(value: string): unknown {
  try {
    return JSON.parse(value);
  } catch (err) {
    throw new InvalidInputError(`Invalid --params: not JSON (${(err as Error).message})`);
  }
}

export function registerEnqueue(program: Command, ctx: Context): void {
  program
    .command("enqueue")
    .description("Insert a queued task (or a staged one with --created) and notify dispatchers")
    .requiredOption("--type <type>", "task type, e.g. graph_embed")
    .option("--params <json>", fieldHelp(NewTaskObject, "params", "parameters as JSON"))
    .option("--description <text>", "human-readable description")
    .option("--domain <domain>", "domain, e.g. user_123")
    .option("--drift-score <n>", fieldHelp(NewTaskObject, "drift_score", "drift score"))
    .option("--run-after <when>", "not before: a duration from now (5m) or an ISO-8601 time")
    .option("--created", "insert as created (staged, not claimable) instead of queued")
    .option("--json", "print the inserted row as JSON")
    .action(async (opts: EnqueueFlags, cmd: Command) => {
      const task = parseFlags(NewTaskSchema, {
        ...opts,
        params: opts.params === undefined ? undefined : parseParams(opts.params),
        status: opts.created ? "created" : undefined,
      });
      await withDb(ctx, cmd, async (db) => {
        const row = await enqueueTask(db, task);
        if (opts.json) await json(ctx, row);
        else await ctx.out(`${row.id}\n`);
      }, { createEmbedded: true });
    });
}
