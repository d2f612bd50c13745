import type { Command } from "commander";
import { enqueueTask } from "../lib/ops/enqueue_task.ts";
import {
  DEFAULT_ENQUEUE_BATCH,
  enqueueTasks,
  MAX_ENQUEUE_BATCH,
  ndjsonTasks,
} from "../lib/ops/enqueue_tasks.ts";
import { InvalidInputError } from "../lib/errors.ts";
import { NewTaskObject, NewTaskSchema } from "../lib/input/new_task.ts";
import { type Context, json, withDb } from "./context.ts";
import { fieldHelp, parseFlags, parseIntFlag } from "./options.ts";

interface EnqueueFlags {
  params?: string;
  created?: boolean;
  json?: boolean;
  file?: string;
  dryRun?: boolean;
  batchSize?: string;
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

/** The flags that describe one task: with --file, every line describes its own. */
const TASK_FLAGS = [
  "type",
  "params",
  "description",
  "domain",
  "driftScore",
  "runAfter",
  "created",
] as const;

const flagName = (key: string) => `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;

async function openInput(ctx: Context, file: string): Promise<ReadableStream<Uint8Array>> {
  if (file === "-") return ctx.stdin ?? Deno.stdin.readable;
  try {
    return (await Deno.open(file)).readable;
  } catch (err) {
    const why = err instanceof Deno.errors.NotFound
      ? "no such file"
      : err instanceof Deno.errors.PermissionDenied
      ? "permission denied"
      : (err as Error).message;
    throw new InvalidInputError(`Cannot read --file "${file}": ${why}`);
  }
}

export function registerEnqueue(program: Command, ctx: Context): void {
  program
    .command("enqueue")
    .description(
      "Insert a queued task (or a staged one with --created) and notify dispatchers; " +
        "or many, one JSON object per line, with --file",
    )
    .option("--type <type>", "task type, e.g. graph_embed (required without --file)")
    .option("--params <json>", fieldHelp(NewTaskObject, "params", "parameters as JSON"))
    .option("--description <text>", "human-readable description")
    .option("--domain <domain>", "domain, e.g. user_123")
    .option("--drift-score <n>", fieldHelp(NewTaskObject, "drift_score", "drift score"))
    .option("--run-after <when>", "not before: a duration from now (5m) or an ISO-8601 time")
    .option("--created", "insert as created (staged, not claimable) instead of queued")
    .option(
      "--file <path>",
      "bulk: read tasks from an ndjson file (- for stdin), one JSON object per line with the " +
        "fields of POST /tasks (type, params, description, domain, drift_score, run_after, status)",
    )
    .option(
      "--batch-size <n>",
      `bulk: tasks per INSERT, 1-${MAX_ENQUEUE_BATCH} (default: ${DEFAULT_ENQUEUE_BATCH})`,
    )
    .option("--dry-run", "bulk: check every line, write nothing")
    .option("--json", "print the inserted row (bulk: the counts) as JSON")
    .addHelpText(
      "after",
      `
Bulk enqueue (--file): each batch is one INSERT, written whole or not at all, with one NOTIFY.
Two batches are written at once, each committed only after the one before it, so what is
written is always the file up to some line. A bad line (not JSON, or a bad field) stops the
run with its line number: nothing of its batch (or after it) is written, but earlier batches
stay written (the error says how many tasks, through which line), so a file of at most
--batch-size tasks is all or nothing. Blank lines are skipped.

Examples:
  seedtask enqueue --type graph_embed --params '{"id": 7}'
  seedtask enqueue --file tasks.ndjson --dry-run
  seedtask enqueue --file tasks.ndjson
  printf '{"type":"graph_embed","params":{"id":7}}\\n' | seedtask enqueue --file -
`,
    )
    .action(async (opts: EnqueueFlags, cmd: Command) => {
      if (opts.file !== undefined) {
        const given = TASK_FLAGS.find((k) => opts[k] !== undefined);
        if (given) {
          throw new InvalidInputError(
            `${flagName(given)} conflicts with --file: each line describes its own task`,
          );
        }
        const batchSize = opts.batchSize === undefined
          ? DEFAULT_ENQUEUE_BATCH
          : parseIntFlag(opts.batchSize, "--batch-size", 1, MAX_ENQUEUE_BATCH);
        const input = await openInput(ctx, opts.file);
        await withDb(ctx, cmd, async (db) => {
          const result = await enqueueTasks(db, ndjsonTasks(input), {
            batchSize,
            dryRun: opts.dryRun,
            // Two batches at once put index maintenance, the bulk of the work, on two server
            // cores (enqueueTasks keeps to one on the embedded PGlite).
            writers: 2,
          });
          if (opts.json) await json(ctx, result);
          else {
            const n = `${result.enqueued} task${result.enqueued === 1 ? "" : "s"}`;
            await ctx.out(
              result.dry_run
                ? `${n} valid (dry run: nothing written)\n`
                : `Enqueued ${n} in ${result.batches} batch${result.batches === 1 ? "" : "es"}\n`,
            );
          }
        }, { createEmbedded: true });
        return;
      }
      for (const bulk of ["dryRun", "batchSize"] as const) {
        if (opts[bulk] !== undefined) {
          throw new InvalidInputError(`${flagName(bulk)} needs --file`);
        }
      }
      if (opts.type === undefined) {
        throw new InvalidInputError("Missing --type (or --file for many tasks)");
      }
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
