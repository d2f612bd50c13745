import Table from "cli-table3";
import { formatDuration } from "../duration.ts";
import { formatRelative, formatUtc, formatUtcRelative } from "./time.ts";
import { CONTRACT_COLUMNS, LEASE_COLUMNS, type Task, type TaskStatus } from "../table/contract.ts";
import { shortId } from "../queries/task_id.ts";

/** How a human-facing formatter decorates its output. */
export interface DisplayOptions {
  /** Status emoji (only on a TTY, never with NO_COLOR / --no-color). */
  emoji?: boolean;
  /** Reference instant for relative times. Default: now. */
  now?: Date;
}

function truncate(text: string | null | undefined, max: number): string {
  if (!text) return "-";
  const flat = text.replace(/\s+/g, " ");
  return flat.length <= max ? flat : `${flat.slice(0, max - 1)}…`;
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

/** Borderless table chars: plain text that stays readable when piped or logged. */
const PLAIN_CHARS = {
  top: "",
  "top-mid": "",
  "top-left": "",
  "top-right": "",
  bottom: "",
  "bottom-mid": "",
  "bottom-left": "",
  "bottom-right": "",
  left: "",
  "left-mid": "",
  mid: "",
  "mid-mid": "",
  right: "",
  "right-mid": "",
  middle: "  ",
};

/**
 * The `seedtask list` table: short id, status, type, description, domain, attempts,
 * updated, followed by "Found N tasks".
 */
export function formatTaskTable(
  tasks: readonly Task[],
  options: DisplayOptions & { fullId?: boolean; sort?: "updated" | "created" } = {},
): string {
  if (tasks.length === 0) return "No tasks found matching the criteria.\n";
  const now = options.now ?? new Date();
  const timeColumn = options.sort === "created" ? "Created" : "Updated";
  const table = new Table({
    head: ["ID", "Status", "Type", "Description", "Domain", "Attempts", timeColumn],
    chars: PLAIN_CHARS,
    style: { head: [], border: [], "padding-left": 0, "padding-right": 0 },
  });
  for (const t of tasks) {
    const time = options.sort === "created" ? t.created_at : t.updated_at;
    table.push([
      options.fullId ? t.id : shortId(t.id),
      formatStatus(t.status, options.emoji),
      truncate(t.type, 24),
      truncate(t.description, 40),
      truncate(t.domain, 16),
      String(t.attempts),
      `${formatUtc(time)} (${formatRelative(time, now)})`,
    ]);
  }
  const lines = table.toString().split("\n").map((l) => l.trimEnd()).filter((l) => l !== "");
  return `${lines.join("\n")}\n\nFound ${tasks.length} task${tasks.length === 1 ? "" : "s"}\n`;
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

/** The contract's columns without the lease ones (those are dispatcher internals). */
const CSV_COLUMNS = CONTRACT_COLUMNS.filter((c) => !LEASE_COLUMNS.includes(c));

function csvCell(value: unknown): string {
  if (value === null || value === undefined) return "";
  const text = value instanceof Date
    ? value.toISOString()
    : typeof value === "object"
    ? JSON.stringify(value)
    : String(value);
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

/** The CSV header line (RFC 4180). */
export function csvHeader(): string {
  return CSV_COLUMNS.join(",") + "\n";
}

/** CSV lines of tasks; params and result as JSON text. */
export function formatCsvRows(tasks: readonly Task[]): string {
  return tasks.map((t) => CSV_COLUMNS.map((c) => csvCell(t[c])).join(",") + "\n").join("");
}

/** One JSON document per line. */
export function formatNdjson(tasks: readonly unknown[]): string {
  return tasks.map((t) => JSON.stringify(t) + "\n").join("");
}
