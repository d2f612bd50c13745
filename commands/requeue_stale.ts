import type { Command } from "commander";
import { DEFAULT_MAX_ATTEMPTS } from "../lib/dispatch/backoff.ts";
import { DEFAULT_STALE_MS, requeueStale } from "../lib/ops/requeue_stale.ts";
import { shortId } from "../lib/queries/task_id.ts";
import { type Context, json, withDb } from "./context.ts";
import { parseDurationFlag, parseIntFlag } from "./options.ts";

export function registerRequeueStale(program: Command, ctx: Context): void {
  program
    .command("requeue-stale")
    .description(
      "Return running tasks whose lease expired (or, without a lease, locked longer than " +
        "--older-than) to retry, or to failed once they used --max-attempts",
    )
    .option(
      "--older-than <duration>",
      "stale threshold for tasks without a lease",
      `${DEFAULT_STALE_MS / 60_000}m`,
    )
    .option(
      "--max-attempts <n>",
      "tasks with this many attempts go to failed",
      String(DEFAULT_MAX_ATTEMPTS),
    )
    .option("--dry-run", "list what would change, change nothing")
    .option("--json", "print the result as JSON")
    .action(
      async (
        opts: { olderThan: string; maxAttempts: string; dryRun?: boolean; json?: boolean },
        cmd: Command,
      ) => {
        const olderThanMs = parseDurationFlag(opts.olderThan, "older-than", "age");
        const maxAttempts = parseIntFlag(opts.maxAttempts, "max-attempts", 1, 1_000_000);
        await withDb(ctx, cmd, async (db) => {
          const rows = await requeueStale(db, { olderThanMs, maxAttempts, dryRun: opts.dryRun });
          if (opts.json) {
            await json(ctx, { dry_run: !!opts.dryRun, tasks: rows });
            return;
          }
          const verb = opts.dryRun ? "would move" : "moved";
          for (const r of rows) {
            await ctx.out(
              `${verb} ${
                shortId(r.task.id)
              } to ${r.outcome} (attempts ${r.task.attempts}, locked by ${
                r.previous_owner ?? "-"
              })\n`,
            );
          }
          const retry = rows.filter((r) => r.outcome === "retry").length;
          await ctx.out(
            rows.length === 0
              ? "No stale running tasks.\n"
              : `${opts.dryRun ? "Would requeue" : "Requeued"} ${retry}, ${
                opts.dryRun ? "would fail" : "failed"
              } ${rows.length - retry}${opts.dryRun ? ". Nothing changed." : ""}\n`,
          );
        });
      },
    );
}
