import type { Command } from "commander";
import { enqueueTask } from "../lib/ops/enqueue_task.ts";
import { InvalidInputError } from "../lib/errors.ts";
import { parseRunAfter } from "../lib/input/task_input.ts";
import { type Context, json, withDb } from "./context.ts";

interface EnqueueFlags {
  type: string;
  params?: string;
  description?: string;
  domain?: string;
  driftScore?: string;
  runAfter?: string;
  created?: boolean;
  json?: boolean;
}

/** `--params`: a JSON object (or any JSON value). */
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
    .option("--params <json>", "parameters as JSON", "{}")
    .option("--description <text>", "human-readable description")
    .option("--domain <domain>", "domain, e.g. user_123")
    .option("--drift-score <n>", "drift score", "0")
    .option("--run-after <when>", "not before: a duration from now (5m) or an ISO-8601 time")
    .option("--created", "insert as created (staged, not claimable) instead of queued")
    .option("--json", "print the inserted row as JSON")
    .action(async (opts: EnqueueFlags, cmd: Command) => {
      const params = parseParams(opts.params ?? "{}");
      const driftScore = Number(opts.driftScore ?? "0");
      if (
        opts.driftScore !== undefined &&
        (opts.driftScore.trim() === "" || !Number.isFinite(driftScore))
      ) {
        throw new InvalidInputError(
          `Invalid --drift-score "${opts.driftScore}": expected a number`,
        );
      }
      const runAfter = opts.runAfter !== undefined
        ? parseRunAfter(opts.runAfter, "--run-after")
        : undefined;
      await withDb(ctx, cmd, async (db) => {
        const task = await enqueueTask(db, {
          type: opts.type,
          params,
          description: opts.description,
          domain: opts.domain,
          driftScore,
          runAfter,
          status: opts.created ? "created" : "queued",
        });
        if (opts.json) await json(ctx, task);
        else await ctx.out(`${task.id}\n`);
      }, { createEmbedded: true });
    });
}
