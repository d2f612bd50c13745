import type { Command } from "commander";
import { formatPreview, formatTransitionReport } from "../lib/format/changes.ts";
import { TransitionSchema } from "../lib/input/transition.ts";
import { TRANSITIONS } from "../lib/ops/task_transitions.ts";
import type { Task } from "../lib/table/contract.ts";
import { type Context, ExitError, json, useEmoji, withDb } from "./context.ts";
import { collect, parseFlags } from "./options.ts";

interface TransitionFlags {
  yes?: boolean;
  json?: boolean;
  [field: string]: unknown;
}

interface Spec {
  name: "cancel" | "retry" | "release";
  past: string;
  /** The word for one changed task, when it depends on the task. */
  pastOf?: (task: Task) => string;
  /** More help after the options. */
  help?: string;
  description: string;
}

function register(program: Command, ctx: Context, spec: Spec, force: boolean): void {
  const cmd = program
    .command(spec.name)
    .description(spec.description)
    .argument("[ids...]", "task ids or unique prefixes")
    .option("--status <statuses>", "filter: these statuses, comma-separated", collect)
    .option("--type <type>", "filter: this task type")
    .option("--domain <domain>", "filter: this domain")
    .option("--older-than <duration>", "filter: not updated for this long, e.g. 1h")
    .option("--group <id>", "filter: this failure group (its id, from seedtask failures)")
    .option("--yes", "apply a filter (without it a filter is a dry run)")
    .option("--json", "print the result as JSON");
  if (force) cmd.option("--force", "also cancel running tasks (their result will be refused)");
  if (spec.help) cmd.addHelpText("after", spec.help);
  cmd.action(async (ids: string[], opts: TransitionFlags, c: Command) => {
    const { ids: given, filter, force } = parseFlags(TransitionSchema, { ...opts, ids });
    const options = { force };
    const forms = TRANSITIONS[spec.name];
    await withDb(ctx, c, async (db) => {
      if (given) {
        // A filter beside ids guards them (only the given tasks it matches change).
        const report = await forms.byIds(db, given, { ...options, where: filter });
        if (opts.json) await json(ctx, report);
        else await ctx.out(formatTransitionReport(report, spec.pastOf ?? spec.past));
        for (const r of report.refused) {
          // The way to force is the CLI's flag here (the HTTP API names its body field).
          const hint = force === false && spec.name === "cancel" && r.status === "running"
            ? " (pass --force to cancel a running task)"
            : "";
          await ctx.err(`error: ${r.message}${hint}\n`);
        }
        if (report.refused.length > 0) throw new ExitError(1);
        return;
      }
      if (!opts.yes) {
        const preview = await forms.preview(db, filter!, options);
        if (opts.json) await json(ctx, { dry_run: true, ...preview });
        else {
          await ctx.out(formatPreview(preview, spec.name, "Add --yes to apply.", {
            emoji: useEmoji(ctx, c),
          }));
        }
        return;
      }
      const changed = await forms.where(db, filter!, options);
      if (opts.json) await json(ctx, { dry_run: false, changed, refused: [] });
      else {
        await ctx.out(formatTransitionReport({ changed, refused: [] }, spec.pastOf ?? spec.past));
        await ctx.out(
          `${spec.past[0]!.toUpperCase()}${spec.past.slice(1)} ${changed.length} task${
            changed.length === 1 ? "" : "s"
          }\n`,
        );
      }
    });
  });
}

export function registerCancel(program: Command, ctx: Context): void {
  register(program, ctx, {
    name: "cancel",
    past: "cancelled",
    description: "Cancel created, queued or retry tasks (running ones with --force)",
  }, true);
}

export function registerRetry(program: Command, ctx: Context): void {
  register(program, ctx, {
    name: "retry",
    past: "requeued",
    pastOf: (task) => task.status === "retry" ? "due now" : "requeued",
    description: "Put failed or cancelled tasks back in the queue (attempts reset, run_after " +
      "cleared); run retry tasks waiting on their backoff now",
    help: `
Failed and cancelled tasks start afresh: queued, attempts 0, error and result cleared.
A task in "retry" (waiting on its backoff) runs now: its run_after becomes now, its attempts
and error are kept. A filter picks failed and cancelled tasks unless --status says otherwise:
  seedtask retry --status retry --type graph_embed --yes    # every backoff of a type, now
`,
  }, false);
}

export function registerRelease(program: Command, ctx: Context): void {
  register(program, ctx, {
    name: "release",
    past: "released",
    description: "Move staged (created) tasks to queued, so dispatchers claim them",
    help: `
Tasks enqueued with --created (or status "created") wait until released. A run_after they
have still holds. Dispatchers listening for new tasks are woken.
  seedtask release 1a2b3c4d
  seedtask release --type graph_embed            # dry run: what would be released
  seedtask release --type graph_embed --yes
`,
  }, false);
}
