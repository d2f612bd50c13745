import type { Command } from "commander";
import { formatFailureGroups } from "../lib/format/insight.ts";
import { FailureGroupsSchema, FAILURES_DEFAULTS } from "../lib/input/insight.ts";
import { getFailureGroups } from "../lib/queries/failure_groups.ts";
import { type Context, json, withDb } from "./context.ts";
import { collect, parseFlags } from "./options.ts";

export function registerFailures(program: Command, ctx: Context): void {
  const d = FAILURES_DEFAULTS;
  program
    .command("failures")
    .description(
      "Why tasks fail: failures grouped by task type and error fingerprint (the error's " +
        "first line with ids, numbers, times, addresses, paths and quoted values as " +
        "placeholders), largest group first",
    )
    .option("--since <duration>", `failures updated within this long (default: ${d.since})`)
    .option("--status <statuses>", `statuses, comma-separated (default: ${d.status})`, collect)
    .option("--type <type>", "only this task type")
    .option("--domain <domain>", "only this domain")
    .option("--top <n>", `how many groups (default: ${d.top})`)
    .option(
      "--sample <n>",
      `group at most the newest N failures; the total stays exact (default: ${d.sample})`,
    )
    .option("--exact", "group every failure of the window, however many")
    .option("--full-id", "full task ids")
    .option("--json", "print the groups as one JSON document")
    .action(async (opts: { json?: boolean; fullId?: boolean }, cmd: Command) => {
      const options = parseFlags(FailureGroupsSchema, opts);
      await withDb(ctx, cmd, async (db) => {
        const groups = await getFailureGroups(db, options);
        if (opts.json) await json(ctx, groups);
        else await ctx.out(formatFailureGroups(groups, { fullId: opts.fullId }));
      });
    });
}
