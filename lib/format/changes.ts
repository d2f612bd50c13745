import { formatTaskTable } from "./tasks.ts";
import type { FilterPreview, TransitionReport } from "../ops/task_transitions.ts";
import { shortId } from "../queries/task_id.ts";
import type { Task } from "../table/contract.ts";

/**
 * Per-task lines of a transition: `cancelled 1a2b3c4d  graph_embed`. `pastTense` may depend on
 * the task (`retry` requeues a failed task, but runs a backed-off one now).
 */
export function formatTransitionReport(
  report: TransitionReport,
  pastTense: string | ((task: Task) => string),
): string {
  const said = typeof pastTense === "string" ? () => pastTense : pastTense;
  return report.changed.map((t) => `${said(t)} ${shortId(t.id)}  ${t.type}\n`).join("");
}

/** The dry run of a filter: how many would change, and a sample table. */
export function formatPreview(
  preview: FilterPreview,
  verb: string,
  confirmHint: string,
  options: { emoji?: boolean } = {},
): string {
  if (preview.count === 0) return `No tasks to ${verb}.\n`;
  const shown = preview.sample.length < preview.count
    ? ` (showing the ${preview.sample.length} most recently updated)`
    : "";
  return `Would ${verb} ${preview.count} task${preview.count === 1 ? "" : "s"}${shown}:\n\n` +
    formatTaskTable(preview.sample, { emoji: options.emoji }).replace(
      /\n\nFound \d+ tasks?\n$/,
      "\n",
    ) +
    `\nNothing changed. ${confirmHint}\n`;
}
