import type { Command } from "commander";
import { formatLeases } from "../lib/format/insight.ts";
import { LeasesObject, LeasesSchema } from "../lib/input/insight.ts";
import { getLeases } from "../lib/queries/leases.ts";
import { type Context, reportAction } from "./context.ts";
import { fieldHelp } from "./options.ts";

export function registerLeases(program: Command, ctx: Context): void {
  const help = (key: string, text: string) => fieldHelp(LeasesObject, key, text);
  program
    .command("leases")
    .description(
      "What is stuck: running tasks whose lease expired or whose heartbeat is old, by owner, " +
        "with when each owner was last heard from and what requeue-stale would do now",
    )
    .option(
      "--stale-after <duration>",
      help("stale_after", "list running tasks without a heartbeat for this long"),
    )
    .option(
      "--older-than <duration>",
      help("older_than", "requeue-stale's threshold for tasks without a lease"),
    )
    .option(
      "--max-attempts <n>",
      help("max_attempts", "requeue-stale's --max-attempts"),
    )
    .option("--limit <n>", help("limit", "tasks listed"))
    .option("--full-id", "full task ids")
    .option("--json", "print the report as one JSON document")
    .action(reportAction(
      ctx,
      LeasesSchema,
      getLeases,
      (report, opts) => formatLeases(report, { fullId: opts.fullId }),
    ));
}
