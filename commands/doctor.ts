import type { Command } from "commander";
import { DEFAULT_MAX_ATTEMPTS } from "../lib/dispatch/backoff.ts";
import { runDoctor } from "../lib/table/doctor.ts";
import { formatDoctor } from "../lib/format/doctor.ts";
import { type Context, ExitError, json, useEmoji, withDb } from "./context.ts";
import { parseIntFlag } from "./options.ts";

export function registerDoctor(program: Command, ctx: Context): void {
  program
    .command("doctor")
    .description(
      "Check the connection, the table's columns, enum and indexes, and data invariants; " +
        "exit 1 when anything is wrong",
    )
    .option(
      "--max-attempts <n>",
      "the dispatchers' maximum attempts",
      String(DEFAULT_MAX_ATTEMPTS),
    )
    .option("--json", "print the report as JSON")
    .action(async (opts: { maxAttempts: string; json?: boolean }, cmd: Command) => {
      const maxAttempts = parseIntFlag(opts.maxAttempts, "max-attempts", 1, 1_000_000);
      await withDb(ctx, cmd, async (db) => {
        const report = await runDoctor(db, { maxAttempts });
        if (opts.json) await json(ctx, report);
        else await ctx.out(formatDoctor(report, { emoji: useEmoji(ctx, cmd) }));
        if (!report.ok) throw new ExitError(1);
      });
    });
}
