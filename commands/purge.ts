import type { Command } from "commander";
import { InvalidInputError } from "../lib/errors.ts";
import { formatPreview } from "../lib/format/changes.ts";
import { DEFAULT_PURGE_BATCH, previewPurge, purgeTasks } from "../lib/ops/purge_tasks.ts";
import { parseStatuses, TERMINAL_STATUSES } from "../lib/table/contract.ts";
import { type Context, json, useEmoji, withDb } from "./context.ts";
import { collect, parseDurationFlag, parseIntFlag } from "./options.ts";

interface PurgeFlags {
  olderThan: string;
  status?: string[];
  batch: string;
  dryRun?: boolean;
  yes?: boolean;
  json?: boolean;
}

export function registerPurge(program: Command, ctx: Context): void {
  program
    .command("purge")
    .description("Delete old completed, cancelled or failed tasks in small batches")
    .requiredOption("--older-than <duration>", "only tasks not updated for this long, e.g. 30d")
    .option(
      "--status <statuses>",
      `terminal statuses to delete, comma-separated (default: ${TERMINAL_STATUSES.join(",")})`,
      collect,
    )
    .option("--batch <n>", "rows per DELETE statement", String(DEFAULT_PURGE_BATCH))
    .option("--dry-run", "count and show what would be deleted (the default without --yes)")
    .option("--yes", "delete")
    .option("--json", "print the result as JSON")
    .action(async (opts: PurgeFlags, cmd: Command) => {
      if (opts.dryRun && opts.yes) throw new InvalidInputError("--dry-run conflicts with --yes");
      const options = {
        olderThanMs: parseDurationFlag(opts.olderThan, "older-than", "age"),
        statuses: opts.status ? parseStatuses(opts.status) : undefined,
        batchSize: parseIntFlag(opts.batch, "batch", 1, 100_000),
      };
      await withDb(ctx, cmd, async (db) => {
        if (!opts.yes) {
          const preview = await previewPurge(db, options);
          if (opts.json) await json(ctx, { dry_run: true, ...preview });
          else {
            await ctx.out(
              formatPreview(preview, "delete", "Add --yes to delete.", {
                emoji: useEmoji(ctx, cmd),
              }),
            );
          }
          return;
        }
        const progress = Deno.stderr.isTerminal() && !opts.json;
        const result = await purgeTasks(db, {
          ...options,
          onProgress: progress
            ? (deleted, expected) => void ctx.err(`\rpurged ${deleted}/${expected}`)
            : undefined,
        });
        if (progress && result.deleted > 0) await ctx.err("\n");
        if (opts.json) await json(ctx, { dry_run: false, ...result });
        else {await ctx.out(
            `Deleted ${result.deleted} task${
              result.deleted === 1 ? "" : "s"
            } in ${result.batches} batch${result.batches === 1 ? "" : "es"}\n`,
          );}
      });
    });
}
