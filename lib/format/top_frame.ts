/**
 * One frame of `seedtask top`, as text: a pure function of the data and the view (size,
 * colour, paused, help), so tests render frames without a terminal. Each returned line is at
 * most `width` columns wide (escape codes excluded) and there are at most `height` lines.
 */
import { formatDuration } from "../duration.ts";
import type { FailureGroups } from "../queries/failure_groups.ts";
import type { Overview } from "../queries/overview.ts";
import type { WorkerList } from "../queries/workers.ts";
import type { TaskStatus } from "../table/contract.ts";

/** A table of the frame below the counters: queue per type, stuck tasks, failures, workers. */
export interface Panel {
  /** Upper-case title, e.g. "QUEUE BY TYPE". */
  title: string;
  /** A short note after the title, e.g. "worst lag first". */
  note?: string;
  /** Column headers. */
  header: string[];
  /** Right-aligned columns (numbers), by index. */
  right?: number[];
  /** The column that gives up width first when the terminal is narrow (default 0). */
  flexible?: number;
  /** Rows of cells, most important first. */
  rows: string[][];
  /** Rows marked as alarming (shown in red when colour is on), by index. */
  alarm?: number[];
  /** Said when there are no rows. */
  empty: string;
}

/** How the frame is drawn. */
export interface TopView {
  width: number;
  height: number;
  color: boolean;
  paused: boolean;
  help: boolean;
  /** Refresh interval, ms. */
  intervalMs: number;
  /** What is being watched: `127.0.0.1:5432/db tasks` or `http://host:8080`. */
  source: string;
  /** The type filter; null for all. */
  type: string | null;
  /** The last refresh failed with this (the data shown is older). */
  error: string | null;
  /** The clock of this frame. */
  now: Date;
  /** Fill the screen: pad to `height` lines, footer last (default true; false for --once). */
  pad?: boolean;
}

/** The data of a frame. */
export interface TopData {
  /** The latest overview; null until the first one arrives. */
  overview: Overview | null;
  /** The one before it (for the change of each count). */
  previous: Overview | null;
  /** More panels (failure groups, leases, workers) when the source has them. */
  panels: Panel[];
}

const ORDER: TaskStatus[] = [
  "queued",
  "retry",
  "running",
  "created",
  "completed",
  "failed",
  "cancelled",
];

const SPARK = ["▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"];

type Style = "bold" | "dim" | "red" | "yellow" | "green" | "inverse";
const SGR: Record<Style, string> = {
  bold: "1",
  dim: "2",
  red: "31",
  yellow: "33",
  green: "32",
  inverse: "7",
};

/** A piece of a line with an optional style. */
type Seg = [text: string, style?: Style];

function chars(s: string): string[] {
  return [...s];
}

function width(s: string): number {
  return chars(s).length;
}

/** `s` cut to `n` columns, with an ellipsis when cut. */
function truncate(s: string, n: number): string {
  if (n <= 0) return "";
  const c = chars(s);
  return c.length <= n ? s : c.slice(0, Math.max(0, n - 1)).join("") + "…";
}

function draw(segs: Seg[], maxWidth: number, color: boolean): string {
  let out = "";
  let left = maxWidth;
  for (const [text, style] of segs) {
    if (left <= 0) break;
    const piece = width(text) > left ? truncate(text, left) : text;
    left -= width(piece);
    out += color && style ? `\x1b[${SGR[style]}m${piece}\x1b[0m` : piece;
  }
  return out;
}

/** 1,204 below 100,000; then 123k, 1.2M. */
function formatCount(n: number): string {
  if (n < 100_000) return n.toLocaleString("en-US");
  if (n < 1_000_000) return `${Math.round(n / 1000)}k`;
  return `${(n / 1_000_000).toFixed(n < 10_000_000 ? 1 : 0)}M`;
}

/** A sparkline of `values` (oldest first), one character each. */
function sparkline(values: number[]): string {
  const max = Math.max(0, ...values);
  return values.map((v) =>
    v <= 0 || max === 0 ? SPARK[0] : SPARK[Math.max(1, Math.round((v / max) * 7))]
  ).join("");
}

function rate(perMinute: number): string {
  const r = perMinute / 60;
  return r >= 100 ? `${Math.round(r)}/s` : r >= 10 ? `${r.toFixed(1)}/s` : `${r.toFixed(2)}/s`;
}

function clock(d: Date): string {
  return d.toISOString().slice(11, 19);
}

/** The queue panel of an overview. */
function queuePanel(o: Overview): Panel {
  const rows = o.queue.map((q) => [
    q.type,
    formatCount(q.ready),
    q.lag_seconds === null ? "-" : formatDuration(q.lag_seconds * 1000),
    formatCount(q.queued),
    formatCount(q.retry),
    formatCount(q.running),
  ]);
  return {
    title: "QUEUE BY TYPE",
    note: o.queue_sample === null
      ? "worst lag first; lag = age of the oldest claimable task"
      : `worst lag first; counts within the oldest ${formatCount(o.queue_sample)} claimable and ${
        formatCount(o.queue_sample)
      } running tasks`,
    header: ["TYPE", "READY", "LAG", "QUEUED", "RETRY", "RUNNING"],
    right: [1, 2, 3, 4, 5],
    rows,
    alarm: o.queue.flatMap((q, i) => ((q.lag_seconds ?? 0) >= 300 ? [i] : [])),
    empty: "nothing queued or running",
  };
}

/** The stuck-task panel of an overview. */
function stuckPanel(o: Overview, now: Date): Panel {
  const ago = (d: Date | null) => (d ? formatDuration(now.getTime() - d.getTime()) : "-");
  return {
    title: "STUCK",
    note:
      `${formatCount(o.stuck)}${
        o.stuck_exact === false ? "+" : ""
      } running, lease expired or locked too long` +
      (o.stuck > 0 ? " — seedtask requeue-stale" : ""),
    header: ["ID", "TYPE", "LOCKED BY", "CLAIMED", "LEASE EXPIRED", "ATTEMPTS"],
    right: [3, 4, 5],
    flexible: 2,
    rows: o.stuck_tasks.map((s) => [
      s.id.slice(0, 8),
      s.type,
      s.locked_by ?? "-",
      `${ago(s.locked_at)} ago`,
      s.lease_expires_at ? `${ago(s.lease_expires_at)} ago` : "-",
      String(s.attempts),
    ]),
    alarm: o.stuck_tasks.map((_, i) => i),
    empty: "none",
  };
}

/** The failure groups panel: the largest groups of the last hour, with their trend. */
export function failuresPanel(f: FailureGroups, now: Date): Panel {
  const window = formatDuration(f.window.until.getTime() - f.window.since.getTime())
    .replace(/ 0[ms]$/, "");
  const trend = (g: FailureGroups["groups"][number]) => {
    const arrow = g.trend.this_hour > g.trend.previous_hour
      ? "↑"
      : g.trend.this_hour < g.trend.previous_hour
      ? "↓"
      : "=";
    return `${formatCount(g.trend.this_hour)} ${arrow}`;
  };
  return {
    title: "FAILURE GROUPS",
    note: `${formatCount(f.total)} failed or retrying in ${window}` +
      (f.sampled ? ` (newest ${formatCount(f.analyzed)} grouped)` : "") +
      (f.groups.length > 0 ? " — seedtask retry --group GROUP" : ""),
    header: ["COUNT", "1H", "TYPE", "ERROR", "LAST SEEN", "GROUP"],
    right: [0, 1, 4],
    flexible: 3,
    rows: f.groups.map((g) => [
      formatCount(g.count),
      trend(g),
      g.type,
      g.fingerprint === "" ? "(no error text)" : g.fingerprint,
      formatDuration(Math.max(0, now.getTime() - g.last_seen.getTime())),
      g.id,
    ]),
    alarm: f.groups.flatMap((g, i) => (g.trend.this_hour > g.trend.previous_hour ? [i] : [])),
    empty: `no failures in ${window}`,
  };
}

/** The workers panel: silent workers holding tasks first. */
export function workersPanel(w: WorkerList): Panel {
  const list = [...w.workers].sort((a, b) =>
    Number(b.silent && b.running > 0) - Number(a.silent && a.running > 0)
  );
  const silent = list.filter((x) => x.silent).length;
  return {
    title: "WORKERS",
    note: `${list.length - silent} live, ${silent} silent` +
      (w.hidden > 0 ? `, ${w.hidden} gone for over a day not shown` : "") +
      (w.registry ? "" : " (no registry: run seedtask migrate)"),
    header: ["NAME", "HOST", "RUNNING", "EXPIRED", "LAST SEEN", "DONE", "FAILED", "STATE"],
    right: [2, 3, 4, 5, 6],
    rows: list.map((x) => [
      x.name,
      x.host ?? "-",
      formatCount(x.running),
      formatCount(x.expired_leases),
      x.last_seen_seconds === null ? "-" : formatDuration(x.last_seen_seconds * 1000),
      x.counts ? formatCount(x.counts.completed) : "-",
      x.counts ? formatCount(x.counts.failed) : "-",
      x.silent ? "SILENT" : x.registered ? "live" : "unregistered",
    ]),
    alarm: list.flatMap((x, i) => (x.silent ? [i] : [])),
    empty: "no dispatcher registered or holding tasks",
  };
}

/** A panel as lines: title, header and as many rows as `rowsAvailable` allows. */
function panelLines(p: Panel, rowsAvailable: number, w: number): Seg[][] {
  const title: Seg[] = [[p.title, "bold"]];
  if (p.note) title.push([`  ${p.note}`, "dim"]);
  if (p.rows.length === 0) return [title, [[`  ${p.empty}`, "dim"]]];
  // Rows that do not fit give their last line to a "… N more".
  const shown = p.rows.length <= rowsAvailable || rowsAvailable < 2
    ? p.rows.slice(0, rowsAvailable)
    : p.rows.slice(0, rowsAvailable - 1);
  const cols = p.header.length;
  const widths = p.header.map((h, i) => Math.max(width(h), ...shown.map((r) => width(r[i] ?? ""))));
  const gap = 2;
  const indent = 2;
  const total = () => indent + widths.reduce((a, b) => a + b, 0) + gap * (cols - 1);
  const flex = p.flexible ?? 0;
  // The flexible column gives up width first, down to 8; then the others from the right.
  while (total() > w && widths[flex]! > 8) widths[flex]!--;
  for (let i = cols - 1; i >= 0 && total() > w; i--) {
    if (i !== flex) widths[i] = Math.max(1, widths[i]! - (total() - w));
  }
  const right = new Set(p.right ?? []);
  const cells = (r: string[]) =>
    "  " + r.map((c, i) => {
      const t = truncate(c, widths[i]!);
      return right.has(i) ? t.padStart(widths[i]!) : t.padEnd(widths[i]!);
    }).join(" ".repeat(gap)).trimEnd();
  const alarm = new Set(p.alarm ?? []);
  const lines: Seg[][] = [title, [[cells(p.header), "dim"]]];
  shown.forEach((r, i) => lines.push([[cells(r), alarm.has(i) ? "red" : undefined]]));
  if (shown.length < p.rows.length && rowsAvailable >= 2) {
    lines.push([[`  … ${p.rows.length - shown.length} more`, "dim"]]);
  }
  return lines;
}

const HELP = [
  "KEYS",
  "  q  quit (also Ctrl-C)",
  "  p  pause or resume refreshing (resizes still redraw)",
  "  t  cycle the type filter: all types, then each type seen",
  "  r  refresh now",
  "  ?  this help (any key returns)",
  "",
  "WHAT IT SHOWS",
  "  Counts by status and their change since the last refresh.",
  "    ~ marks a planner estimate (finished tasks of a large table).",
  "  Completed and failed per second over the last full minute;",
  "    one bar per minute of the last hour (the current one once it ends).",
  "  The queue per type: ready now, lag (age of the oldest ready task),",
  "    queued, retrying, running. Red: lag of 5 minutes or more.",
  "  Stuck: running with an expired lease, or locked too long without one.",
  "  Failure groups and workers, when the source provides them.",
];

/**
 * Renders one frame. Lines are at most `view.width` columns and at most `view.height` of
 * them; with `view.color` off there are no escape codes at all.
 */
export function renderTopFrame(data: TopData, view: TopView): string[] {
  const w = Math.max(20, view.width);
  const h = Math.max(5, view.height);
  const out: Seg[][] = [];
  const typeLabel = view.type ?? "all";
  const state = view.paused ? "PAUSED" : `every ${formatDuration(view.intervalMs)}`;
  // Most important first: a narrow terminal cuts the source, which the user knows anyway.
  const header = ` ${
    [`${clock(view.now)} UTC`, view.pad === false ? "" : state, `type: ${typeLabel}`]
      .filter((p) => p !== "").join("  ")
  }  top of ${view.source} `;
  out.push([[header.padEnd(w), "inverse"]]);

  const o = data.overview;
  const footer: Seg[] = view.error
    ? [[`! ${view.error}`, "red"], [o ? ` (data from ${clock(o.generated_at)} UTC)` : "", "dim"]]
    : [[
      !o
        ? ""
        : view.pad === false
        ? `generated ${clock(o.generated_at)} UTC`
        : `updated ${clock(o.generated_at)} UTC · p pause · t type · r refresh · ? help · q quit`,
      "dim",
    ]];

  if (view.help) {
    for (const line of HELP) out.push([[line, line === line.toUpperCase() ? "bold" : undefined]]);
  } else if (!o) {
    out.push([[view.error ? "" : "loading…", "dim"]]);
  } else {
    // Counts by status, with their change.
    let line: Seg[] = [];
    let used = 0;
    const push = (segs: Seg[]) => {
      const len = segs.reduce((n, [t]) => n + width(t), 0);
      if (used > 0 && used + len > w) {
        out.push(line);
        line = [];
        used = 0;
      }
      line.push(...segs);
      used += len;
    };
    for (const s of ORDER) {
      const n = o.status_counts[s];
      const estimated = o.estimated.includes(s);
      const before = data.previous && !estimated ? data.previous.status_counts[s] : n;
      const delta = n - before;
      const alarm = (s === "failed" && delta > 0) || (s === "retry" && n > 0 && delta > 0);
      const segs: Seg[] = [
        [` ${s} `, "dim"],
        [`${estimated ? "~" : ""}${formatCount(n)}`, alarm ? "red" : "bold"],
      ];
      if (delta !== 0) segs.push([` ${delta > 0 ? "+" : ""}${formatCount(delta)}`, "dim"]);
      segs.push(["  "]);
      push(segs);
    }
    if (line.length > 0) out.push(line);

    // Throughput: the last full minute as a rate, one bar per closed minute.
    const minutes = o.throughput.minutes;
    const closed = minutes.filter((b) => !b.open);
    const last = closed.at(-1);
    const open = minutes.find((b) => b.open);
    const summary = (kind: "completed" | "failed") =>
      `  ${formatCount(open?.[kind] ?? 0)} this min · ${
        formatCount(closed.reduce((n, b) => n + b[kind], 0))
      } in ${closed.length}m`;
    const summaryWidth = Math.max(width(summary("completed")), width(summary("failed")));
    const sparkWidth = Math.max(0, Math.min(closed.length, w - 20 - summaryWidth));
    for (const kind of ["completed", "failed"] as const) {
      const values = closed.slice(closed.length - sparkWidth).map((b) => b[kind]);
      const alarm = kind === "failed" && (last?.failed ?? 0) > 0;
      out.push([
        [` ${kind.padEnd(9)} `, "dim"],
        [rate(last?.[kind] ?? 0).padStart(8), alarm ? "red" : "bold"],
        [" ", undefined],
        [sparkWidth > 0 ? sparkline(values) : "", alarm ? "red" : "green"],
        [summary(kind), "dim"],
      ]);
    }

    // Panels share the rows left, in order; each gets its title, header and one row first.
    const [failures, ...others] = data.panels;
    // Failure groups right after the queue: "why is it failing" before "what is stuck".
    const panels = failures?.title === "FAILURE GROUPS"
      ? [queuePanel(o), failures, stuckPanel(o, o.generated_at), ...others]
      : [queuePanel(o), stuckPanel(o, o.generated_at), ...data.panels];
    let left = h - out.length - 1; // the footer
    const plan: Array<{ p: Panel; rows: number }> = [];
    for (const p of panels) {
      const cost = p.rows.length === 0 ? 3 : 4; // blank + title + (empty | header + one row)
      if (left < cost) break;
      plan.push({ p, rows: p.rows.length === 0 ? 0 : 1 });
      left -= cost;
    }
    for (const entry of plan) {
      const more = Math.min(entry.p.rows.length - entry.rows, left);
      entry.rows += more;
      left -= more;
    }
    for (const { p, rows } of plan) {
      out.push([]);
      out.push(...panelLines(p, rows, w));
    }
    if (plan.length < panels.length && out.length < h - 1) {
      out.push([[
        ` (${panels.length - plan.length} more panel(s): enlarge the terminal)`,
        "dim",
      ]]);
    }
  }

  const body = out.slice(0, h - 1).map((segs) => draw(segs, w, view.color));
  while (body.length < h - 1 && view.pad !== false) body.push("");
  body.push(draw(footer, w, view.color));
  return body;
}
