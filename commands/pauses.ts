import type { Command } from "commander";
import { formatPauses, pauseScope } from "../lib/format/pauses.ts";
import { formatRelative } from "../lib/format/time.ts";
import { PauseSchema, ResumeSchema } from "../lib/input/queue_pause.ts";
import { listPauses, pauseQueue, resumeQueue } from "../lib/ops/queue_pauses.ts";
import { type Context, json, withDb } from "./context.ts";
import { parseFlags } from "./options.ts";
import { hostName } from "../lib/host.ts";

interface Flags {
  json?: boolean;
  [field: string]: unknown;
}

/** Who pauses, when `--by` is not given: `user@host`. */
function whoAmI(ctx: Context): string {
  const user = ctx.env.USER ?? ctx.env.LOGNAME ?? ctx.env.USERNAME ?? "unknown";
  return `${user}@${hostName() ?? "localhost"}`;
}

const undo = (p: { type: string; domain: string | null }) =>
  `seedtask resume --type ${p.type}${p.domain === null ? "" : ` --domain ${p.domain}`}`;

export function registerPause(program: Command, ctx: Context): void {
  program
    .command("pause")
    .description("Pause a task type (or one domain of it): no seedtask dispatcher claims its tasks")
    .requiredOption("--type <type>", "the task type")
    .option("--domain <domain>", "only this domain (default: every domain)")
    .option("--reason <text>", "why, shown by `seedtask paused`, stats and check")
    .option("--by <who>", "who pauses (default: user@host)")
    .option("--json", "print the pause as JSON")
    .addHelpText(
      "after",
      `
Enqueueing goes on; running tasks finish. Every seedtask dispatcher stops claiming the type's
tasks at its next claim (within one poll interval). stats, check and GET /stats list paused
types, and leave their waiting tasks out of the queue's lag and counts, so a queue that grows
on purpose raises no alarm. Undo with seedtask resume.
  seedtask pause --type graph_embed --reason "embedding API down"
  seedtask paused
  seedtask resume --type graph_embed
`,
    )
    .action(async (opts: Flags, cmd: Command) => {
      const { by, ...request } = parseFlags(PauseSchema, opts);
      await withDb(ctx, cmd, async (db) => {
        const result = await pauseQueue(db, { ...request, by: by ?? whoAmI(ctx) });
        if (opts.json) return await json(ctx, result);
        const p = result.pause;
        await ctx.out(
          result.created
            ? `Paused ${pauseScope(p)}: dispatchers claim none of its tasks until ${undo(p)}\n`
            : `${pauseScope(p)} was already paused (${
              formatRelative(p.paused_at, new Date())
            }); reason and who updated\n`,
        );
      });
    });
}

export function registerResume(program: Command, ctx: Context): void {
  program
    .command("resume")
    .description("Resume a paused task type (every pause of it), or one domain of it")
    .requiredOption("--type <type>", "the task type")
    .option("--domain <domain>", "only this domain's pause")
    .option("--json", "print the removed pauses as JSON")
    .action(async (opts: Flags, cmd: Command) => {
      const target = parseFlags(ResumeSchema, opts);
      await withDb(ctx, cmd, async (db) => {
        const resumed = await resumeQueue(db, target);
        if (opts.json) return await json(ctx, { resumed });
        if (resumed.length > 0) {
          const lines = resumed.map((p) =>
            `Resumed ${pauseScope(p)} (paused by ${p.paused_by} ${
              formatRelative(p.paused_at, new Date())
            })\n`
          );
          return await ctx.out(lines.join(""));
        }
        const whole = target.domain !== undefined &&
          (await listPauses(db)).some((p) => p.type === target.type && p.domain === null);
        await ctx.out(
          whole
            ? `Nothing resumed: ${target.type} is paused in every domain; resume it with ` +
              `seedtask resume --type ${target.type}\n`
            : `Nothing to resume: type "${target.type}"${
              target.domain === undefined ? "" : ` in domain "${target.domain}"`
            } is not paused\n`,
        );
      });
    });
}

export function registerPaused(program: Command, ctx: Context): void {
  program
    .command("paused")
    .description("List paused task types: who paused them, when, why, and how many tasks wait")
    .option("--json", "print the pauses as JSON")
    .action(async (opts: Flags, cmd: Command) => {
      await withDb(ctx, cmd, async (db) => {
        const paused = await listPauses(db, { waiting: true });
        if (opts.json) return await json(ctx, { paused });
        await ctx.out(
          paused.length === 0
            ? "No paused types.\n"
            : formatPauses(paused, new Date()).join("\n") + "\n",
        );
      });
    });
}
