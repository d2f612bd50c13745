import type { Command } from "commander";
import { migrate, migrationScript } from "../lib/table/migrate.ts";
import { type Context, json, withDb } from "./context.ts";

export function registerMigrate(program: Command, ctx: Context): void {
  program
    .command("migrate")
    .description(
      "Create the task table contract (enum, table, indexes, updated_at trigger, lease columns), " +
        "or add only what an existing table lacks",
    )
    .option("--dry-run", "print the SQL it would run and change nothing")
    .option("--json", "print what was (or would be) done as JSON")
    .action(async (opts: { dryRun?: boolean; json?: boolean }, cmd: Command) => {
      await withDb(ctx, cmd, async (db) => {
        const result = await migrate(db, { dryRun: opts.dryRun });
        for (const note of result.notes) await ctx.err(`note: ${note}\n`);
        if (opts.json) {
          await json(ctx, {
            dry_run: result.dryRun,
            table: db.table,
            steps: result.steps.map((s) => ({ description: s.description, sql: s.sql })),
            notes: result.notes,
          });
        } else if (result.dryRun) {
          await ctx.out(migrationScript(result));
        } else if (result.steps.length === 0) {
          await ctx.out(`${db.table} on ${db.target} is up to date: nothing to do\n`);
        } else {
          for (const s of result.steps) await ctx.out(`applied: ${s.description}\n`);
          await ctx.out(`${db.table} on ${db.target} is up to date\n`);
        }
      }, { createEmbedded: true });
    });
}
