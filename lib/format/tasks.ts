import { formatDuration } from "../duration.ts";
import type { ListTotal } from "../queries/list_total.ts";
import { displayWidth, oneLine, renderTable } from "./table.ts";
import { formatAge, formatUtc, formatUtcRelative } from "./time.ts";
import { CONTRACT_COLUMNS, type Task, type TaskStatus } from "../table/contract.ts";
import { shortId } from "../queries/task_id.ts";

/** How a human-facing formatter decorates its output. */
export interface DisplayOptions {
  /** Status emoji (only on a TTY, never with NO_COLOR / --no-color). */
  emoji?: boolean;
  /** Reference instant for relative times. Default: now. */
  now?: Date;
}

/** The emoji the seed's helper shows next to each status (TTY only). */
export const STATUS_EMOJI: Record<TaskStatus, string> = {
  created: "🆕",
  queued: "⏳",
  running: "🏃",
  completed: "✅",
  failed: "❌",
  cancelled: "🚫",
  retry: "🔄",
};

/** The status cell: `✅ completed` with emoji, `completed` without. */
export function formatStatus(status: string, emoji = false): string {
  const e = STATUS_EMOJI[status as TaskStatus];
  return emoji && e ? `${e} ${status}` : status;
}

/** How `seedtask list` lays out its table. */
export interface TaskTableOptions extends DisplayOptions {
  /** Full ids instead of the 8-character short ones. */
  fullId?: boolean;
  /** The sort the page came in: its time column is shown. */
  sort?: "updated" | "created";
  /**
   * Fit this many terminal columns: description and domain are narrowed, then dropped, before
   * anything else. Undefined (a pipe, a file): every column at full width.
   */
  width?: number;
  /** Every column at full width, whatever `width` says (`--wide`). */
  wide?: boolean;
  /** How many tasks match (the footer says "50 of 348"). */
  total?: ListTotal;
  /** The cursor of the next page, if there is one. */
  nextCursor?: string | null;
}

/** A column of the task table, and how far it may be narrowed. */
interface Column {
  key: "id" | "status" | "type" | "domain" | "attempts" | "time" | "description" | "error";
  head: string;
  cells: string[];
  width: number;
  align?: "right";
}

/** Statuses whose error says why the task is not done (shown in the Error column). */
const ERROR_STATUSES: readonly string[] = ["failed", "retry"];

/** A number as people read it: `348`, `12,400`, `9.8M`. */
export function formatCount(n: number, approximate = false): string {
  if (!approximate) return n.toLocaleString("en-US");
  // Two significant digits: more would claim a precision the planner does not have.
  const rounded = Number(n.toPrecision(2));
  if (rounded >= 1_000_000) return `~${Number((rounded / 1e6).toPrecision(2))}M`;
  return `~${rounded.toLocaleString("en-US")}`;
}

/** "50 of 348 tasks", "50 of ~9.8M tasks (estimated: …)", "3 tasks". */
export function formatTotalLine(shown: number, total: ListTotal | undefined): string {
  const plural = (n: number) => `task${n === 1 ? "" : "s"}`;
  if (!total) return `Found ${shown} ${plural(shown)}`;
  if (total.exact && total.total === shown) return `Found ${shown} ${plural(shown)}`;
  const of = `${formatCount(total.total, !total.exact)} ${plural(total.total)}`;
  const why = total.exact
    ? ""
    : ` (estimated: ${total.note ?? "the planner's estimate"}; --exact counts them)`;
  return `Showing ${shown} of ${of}${why}`;
}

/**
 * The `seedtask list` table — short id, status, type, domain, attempts, age, description and,
 * for failed and retry tasks, the first line of the error — with a footer saying how many
 * match. Fitted to `options.width` when given.
 */
export function formatTaskTable(tasks: readonly Task[], options: TaskTableOptions = {}): string {
  if (tasks.length === 0) return "No tasks found matching the criteria.\n";
  const now = options.now ?? new Date();
  const created = options.sort === "created";
  const full = options.wide || options.width === undefined;
  const errors = tasks.map((t) =>
    ERROR_STATUSES.includes(t.status) && t.error ? oneLine(t.error.split("\n")[0]!) : ""
  );
  const column = (key: Column["key"], head: string, cells: string[], align?: "right"): Column => ({
    key,
    head,
    cells,
    width: Math.max(displayWidth(head), ...cells.map(displayWidth)),
    align,
  });
  let columns: Column[] = [
    column("id", "ID", tasks.map((t) => options.fullId ? t.id : shortId(t.id))),
    column("status", "Status", tasks.map((t) => formatStatus(t.status, options.emoji))),
    column("type", "Type", tasks.map((t) => oneLine(t.type))),
    column("domain", "Domain", tasks.map((t) => t.domain ? oneLine(t.domain) : "-")),
    column("attempts", full ? "Attempts" : "Att", tasks.map((t) => String(t.attempts)), "right"),
    column(
      "time",
      `${created ? "Created" : "Updated"}${full ? " (UTC)" : ""}`,
      tasks.map((t) => {
        const time = created ? t.created_at : t.updated_at;
        const age = formatAge(time, now);
        return full ? `${formatUtc(time).slice(0, -4)} (${age})` : age;
      }),
    ),
    column("description", "Description", tasks.map((t) => oneLine(t.description ?? "-"))),
  ];
  if (errors.some((e) => e !== "")) columns.push(column("error", "Error", errors));
  const natural = columns.map((c) => c.width).join();
  if (!full) columns = fit(columns, options.width!);
  const cut = columns.map((c) => c.width).join() !== natural;
  const lines = renderTable(columns[0]!.cells.map((_, i) => columns.map((c) => c.cells[i]!)), {
    head: columns.map((c) => c.head),
    align: columns.map((c) => c.align ?? "left"),
    widths: columns.map((c) => c.width),
  });
  let text = `${lines.join("\n")}\n\n${formatTotalLine(tasks.length, options.total)}\n`;
  if (cut) text += `(cut to fit ${options.width} columns; --wide shows every column in full)\n`;
  if (options.nextCursor) text += `More: add --after ${options.nextCursor}\n`;
  return text;
}

/**
 * Narrows, then drops, columns until the table fits `width`: description and domain first,
 * the error only as far as it stays readable, identity and status never.
 */
function fit(columns: Column[], width: number): Column[] {
  let cols = [...columns];
  const total = () => cols.reduce((sum, c) => sum + c.width, 0) + 2 * (cols.length - 1);
  const narrow = (key: Column["key"], min: number) => {
    const c = cols.find((x) => x.key === key);
    const excess = total() - width;
    if (c && excess > 0 && c.width > min) c.width -= Math.min(excess, c.width - min);
  };
  const drop = (key: Column["key"]) => {
    if (total() > width) cols = cols.filter((c) => c.key !== key);
  };
  cols = cols.map((c) => ({ ...c }));
  narrow("description", 32);
  narrow("error", 60);
  narrow("description", 16);
  narrow("domain", 10);
  narrow("error", 40);
  drop("description");
  drop("domain");
  narrow("type", 16);
  narrow("error", 24);
  narrow("type", 12);
  narrow("error", 10);
  return cols;
}

function pretty(value: unknown): string {
  return JSON.stringify(value, null, 2) ?? "null";
}

function indent(text: string, by = "   "): string {
  return text.split("\n").map((l) => by + l).join("\n");
}

/** Every column of one task: identity, timing, lock and lease, params, result, error, extras. */
export function formatTaskDetails(task: Task, options: DisplayOptions = {}): string {
  const now = options.now ?? new Date();
  const e = (emoji: string) => options.emoji ? `${emoji} ` : "";
  const out: string[] = [];
  const rule = "=".repeat(80);
  out.push(rule, `${e("📋")}TASK ${task.id}`, rule);
  const field = (label: string, value: string) => out.push(`   ${label.padEnd(17)} ${value}`);
  field("Status", formatStatus(task.status, options.emoji));
  field("Type", task.type);
  field("Description", task.description ?? "-");
  field("Domain", task.domain ?? "-");
  field("Drift score", String(task.drift_score));
  field("Attempts", String(task.attempts));

  out.push("", `${e("⏰")}TIMING`);
  field("Created", formatUtcRelative(task.created_at, now));
  field("Updated", formatUtcRelative(task.updated_at, now));
  if (task.locked_at) {
    const wait = task.locked_at.getTime() - task.created_at.getTime();
    field("Queue wait", formatDuration(Math.max(0, wait)));
    if (task.status === "running") {
      field("Running for", formatDuration(now.getTime() - task.locked_at.getTime()));
    } else if (task.status === "completed" || task.status === "failed") {
      field(
        "Run duration",
        formatDuration(Math.max(0, task.updated_at.getTime() - task.locked_at.getTime())),
      );
    }
  } else if (task.status === "queued" || task.status === "created") {
    field("Waiting for", formatDuration(now.getTime() - task.created_at.getTime()));
  }
  field("Run after", task.run_after ? formatUtcRelative(task.run_after, now) : "-");

  if (task.status === "running") {
    out.push("", `${e("🔒")}LOCK AND LEASE`);
    field("Locked by", task.locked_by ?? "-");
    field("Locked at", formatUtcRelative(task.locked_at, now));
    if ("owner_id" in task || "lease_expires_at" in task) {
      field("Lease owner", task.owner_id ?? "-");
      const lease = task.lease_expires_at;
      field(
        "Lease expires",
        lease
          ? `${formatUtc(lease)} (${
            lease.getTime() < now.getTime()
              ? `expired ${formatDuration(now.getTime() - lease.getTime())} ago`
              : `in ${formatDuration(lease.getTime() - now.getTime())}`
          })`
          : "-",
      );
      field("Last heartbeat", formatUtcRelative(task.last_heartbeat, now));
    } else {
      field("Lease", "no lease columns (run `seedtask migrate`)");
    }
  } else if (task.locked_by || task.locked_at) {
    // Not running: the lock columns are what is left of its last run (seedtask keeps who ran
    // it), not a lock anyone holds now.
    out.push("", `${e("🔒")}LAST RUN`);
    field("Ran on", task.locked_by ?? "-");
    field("Claimed at", formatUtcRelative(task.locked_at, now));
    if (task.last_heartbeat) field("Last heartbeat", formatUtcRelative(task.last_heartbeat, now));
  }

  out.push("", `${e("⚙️")}PARAMS`, indent(pretty(task.params)));
  out.push("", `${e("📦")}RESULT`, indent(pretty(task.result)));
  out.push("", `${e("❌")}ERROR`, indent(task.error ?? "-"));

  const extras = Object.keys(task).filter((k) =>
    !(CONTRACT_COLUMNS as readonly string[]).includes(k)
  );
  if (extras.length > 0) {
    out.push("", `${e("➕")}OTHER COLUMNS`);
    for (const k of extras) {
      const v = task[k];
      const text = v instanceof Date
        ? formatUtcRelative(v, now)
        : v !== null && typeof v === "object"
        ? pretty(v).split("\n").join("\n" + " ".repeat(21))
        : String(v ?? "-");
      field(k, text);
    }
  }
  out.push(rule);
  return out.join("\n") + "\n";
}

function csvCell(value: unknown): string {
  if (value === null || value === undefined) return "";
  const text = value instanceof Date
    ? value.toISOString()
    : typeof value === "object"
    ? JSON.stringify(value)
    : String(value);
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

/**
 * The CSV header line (RFC 4180): the table's columns, in its order — the keys of every
 * ndjson line, so both exports carry the same columns.
 */
export function csvHeader(columns: readonly string[]): string {
  return columns.map(csvCell).join(",") + "\n";
}

/** CSV lines of tasks, one cell per column of `columns`; params and result as JSON text. */
export function formatCsvRows(tasks: readonly Task[], columns: readonly string[]): string {
  return tasks.map((t) => columns.map((c) => csvCell(t[c])).join(",") + "\n").join("");
}

/** One JSON document per line. */
export function formatNdjson(tasks: readonly unknown[]): string {
  return tasks.map((t) => JSON.stringify(t) + "\n").join("");
}
