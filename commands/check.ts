import { type Command, CommanderError } from "commander";
import { CHECK_EXIT, checkHealth } from "../lib/queries/check_health.ts";
import { formatCheckLine, formatCheckUnknown } from "../lib/format/check.ts";
import {
  type CheckOptions,
  CheckOptionsObject,
  CheckOptionsSchema,
} from "../lib/input/check_thresholds.ts";
import { type Context, ExitError, json, withDb } from "./context.ts";
import { fieldHelp, parseFlags } from "./options.ts";

export function registerCheck(program: Command, ctx: Context): void {
  const check = program
    .command("check")
    .description(
      "Monitoring-plugin check of queue health: one line with perfdata, exit 0 OK, 1 WARNING, " +
        "2 CRITICAL, 3 UNKNOWN",
    )
    .option("--max-lag <warn:crit>", "age of the oldest claimable task, e.g. 5m:15m")
    .option("--max-stuck <warn:crit>", "running tasks with an expired lease, e.g. 1:5")
    .option(
      "--max-failure-rate <warn:crit>",
      "failed/(completed+failed) in the last hour, e.g. 5%:20%",
    )
    .option("--max-queued <warn:crit>", "tasks in status queued, e.g. 1000:10000")
    .option(
      "--long-running <duration>",
      fieldHelp(
        CheckOptionsObject,
        "long_running",
        "a running task without a lease is stuck after this",
      ),
    )
    .option("--json", "print the result as JSON");

  const unknown = async (message: string, asJson: boolean) => {
    if (asJson) await json(ctx, { state: "UNKNOWN", exit_code: 3, message });
    else await ctx.out(formatCheckUnknown(message));
    throw new ExitError(CHECK_EXIT.UNKNOWN);
  };

  // A usage error of a monitoring check is UNKNOWN (3), not the CLI's usual 2.
  check.exitOverride((err: CommanderError) => {
    if (err.exitCode === 0) throw err;
    const message = err.message.replace(/^error: /, "");
    throw new ExitError(CHECK_EXIT.UNKNOWN, formatCheckUnknown(message));
  });

  check.action(async (opts: { json?: boolean }, cmd: Command) => {
    let options: CheckOptions;
    try {
      options = parseFlags(CheckOptionsSchema, opts);
    } catch (err) {
      return await unknown((err as Error).message, !!opts.json);
    }
    try {
      await withDb(ctx, cmd, async (db) => {
        const result = await checkHealth(db, options.thresholds, {
          longRunningMs: options.longRunningMs,
        });
        if (opts.json) await json(ctx, result);
        else await ctx.out(formatCheckLine(result));
        if (result.exit_code !== 0) throw new ExitError(result.exit_code);
      });
    } catch (err) {
      if (err instanceof ExitError) throw err;
      const e = err as Error & { hint?: string };
      return await unknown(e.hint ? `${e.message} (${e.hint})` : e.message, !!opts.json);
    }
  });
}
