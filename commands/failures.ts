import type { Command } from "commander";
import { formatFailureGroups } from "../lib/format/insight.ts";
import { FailureGroupsObject, FailureGroupsSchema } from "../lib/input/insight.ts";
import { getFailureGroups } from "../lib/queries/failure_groups.ts";
import { type Context, reportAction } from "./context.ts";
import { collect, fieldHelp } from "./options.ts";

export function registerFailures(program: Command, ctx: Context): void {
  const help = (key: string, text: string) => fieldHelp(FailureGroupsObject, key, text);
  program
    .command("failures")
    .description(
      "Why tasks fail: failures grouped by task type and error fingerprint (the error's " +
        "first line with ids, numbers, times, addresses, paths and quoted values as " +
        "placeholders), largest group first",
    )
    .option("--since <duration>", help("since", "failures updated within this long"))
    .option("--status <statuses>", help("status", "statuses, comma-separated"), collect)
    .option("--type <type>", "only this task type")
    .option("--domain <domain>", "only this domain")
    .option("--top <n>", help("top", "how many groups"))
    .option(
      "--sample <n>",
      help("sample", "group at most the newest N failures; the total stays exact"),
    )
    .option("--exact", "group every failure of the window, however many")
    .option("--full-id", "full task ids")
    .option("--json", "print the groups as one JSON document")
    .action(reportAction(
      ctx,
      FailureGroupsSchema,
      getFailureGroups,
      (groups, opts) => formatFailureGroups(groups, { fullId: opts.fullId }),
    ));
}
