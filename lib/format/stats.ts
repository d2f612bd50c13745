import { formatDuration } from "../duration.ts";
import { formatStatus } from "./tasks.ts";
import { renderTable } from "./table.ts";
import { formatUtc } from "./time.ts";
import type { TaskStatistics } from "../queries/task_stats.ts";
import { TASK_STATUSES } from "../table/contract.ts";
import { shortId } from "../queries/task_id.ts";
import type { DisplayOptions } from "./tasks.ts";
import { formatPauses } from "./pauses.ts";

function pct(rate: number | null): string {
  return rate === null ? "-" : `${(rate * 100).toFixed(1)}%`;
}

function secs(value: number | null): string {
  return value === null ? "-" : formatDuration(value * 1000);
}

/** Right-aligned numbers under left-aligned labels. */
function rows(entries: Array<[string, string]>, indent = "   "): string[] {
  return renderTable(entries, { indent, align: ["left", "right"] });
}

/** Left-aligned columns separated by two spaces. */
function columns(table: string[][], indent = "   "): string[] {
  return renderTable(table, { indent });
}

/** `: 10 of 87` after a section heading, or nothing when the list is complete. */
function ofTotal(shown: number, total: number, approximate: boolean): string {
  if (!approximate && total <= shown) return "";
  return `: ${shown} of ${approximate ? "≈" : ""}${Math.max(total, shown)}`;
}

/** The human `seedtask stats` report: aligned sections, same numbers as `--json`. */
export function formatStatistics(stats: TaskStatistics, options: DisplayOptions = {}): string {
  const e = (emoji: string) => options.emoji ? `${emoji} ` : "";
  const estimated = new Set(stats.estimates?.fields ?? []);
  const approx = (field: string, n: number | string) => estimated.has(field) ? `≈${n}` : String(n);
  const heading = (field: string, text: string) =>
    estimated.has(field) ? `${text} (estimated)` : text;
  const out: string[] = [];
  const rule = "=".repeat(80);
  out.push(rule, `${e("📊")}TASK STATISTICS  (${formatUtc(stats.generated_at)})`, rule);

  out.push("", `${e("📈")}STATUS`);
  out.push(
    ...rows([
      ...TASK_STATUSES.map((s): [string, string] => [
        formatStatus(s, options.emoji),
        `${approx(`status_counts.${s}`, stats.status_counts[s])}  (${
          stats.status_percentages[s].toFixed(1).padStart(5)
        }%)`,
      ]),
      ["total", `${approx("total", stats.total)}${" ".repeat(10)}`],
    ]),
  );

  out.push("", `${e("🩺")}HEALTH`);
  out.push(
    ...rows([
      ["ready to claim", String(stats.queue.ready)],
      ["queue lag", secs(stats.queue.lag_seconds)],
      ["overdue", String(stats.queue.overdue)],
      ["stuck running", String(stats.stuck_running)],
      [
        "completed (1h / 24h)",
        `${stats.throughput.completed_last_hour} / ${stats.throughput.completed_last_day}`,
      ],
      [
        "failed (1h / 24h)",
        `${stats.throughput.failed_last_hour} / ${stats.throughput.failed_last_day}`,
      ],
      [
        "failure rate (1h / 24h)",
        `${pct(stats.failure_rate.last_hour)} / ${pct(stats.failure_rate.last_day)}`,
      ],
      [
        "run time p50 / p95",
        `${secs(stats.run_duration_seconds.p50)} / ${secs(stats.run_duration_seconds.p95)}`,
      ],
      [
        "drift score avg / max",
        stats.drift_score.avg === null
          ? "-"
          : `${approx("drift_score", stats.drift_score.avg.toFixed(3))} / ${
            approx("drift_score", stats.drift_score.max?.toFixed(3) ?? "-")
          }`,
      ],
    ]),
  );

  if (stats.paused.length > 0) {
    // Paused work is left out of the health numbers above: say where it is.
    out.push("", `${e("⏸️")}PAUSED (not claimed; not counted in ready, lag or overdue)`);
    out.push(...formatPauses(stats.paused, stats.generated_at, "   "));
  }

  const attempts = Object.entries(stats.attempts_distribution);
  if (attempts.length > 0) {
    out.push("", `${e("🔢")}${heading("attempts_distribution", "ATTEMPTS")}`);
    out.push(...rows(attempts.map(([k, v]) => [`${k} attempt${k === "1" ? "" : "s"}`, String(v)])));
  }
  const types = Object.entries(stats.type_counts);
  if (types.length > 0) {
    out.push("", `${e("🏷️")}${heading("type_counts", "TOP TYPES")}`);
    out.push(...rows(types.map(([k, v]) => [k, String(v)])));
  }
  const domains = Object.entries(stats.domain_counts);
  if (domains.length > 0) {
    out.push("", `${e("🌐")}${heading("domain_counts", "TOP DOMAINS")}`);
    out.push(...rows(domains.map(([k, v]) => [k, String(v)])));
  }

  const days = stats.options.days;
  out.push("", `${e("📅")}RECENT ACTIVITY (${days} day${days === 1 ? "" : "s"}, UTC)`);
  out.push(
    ...renderTable(
      stats.recent_activity.map((d) => [
        d.date,
        String(d.created_count),
        String(d.completed_count),
        String(d.failed_count),
      ]),
      {
        head: ["date", "created", "completed", "failed"],
        align: ["left", "right", "right", "right"],
        indent: "   ",
      },
    ),
  );

  if (stats.long_running.length > 0) {
    out.push(
      "",
      `${e("⏰")}LONG RUNNING (> ${formatDuration(stats.options.long_running_seconds * 1000)})${
        ofTotal(stats.long_running.length, stats.long_running_total, false)
      }`,
    );
    out.push(...columns(stats.long_running.map((t) => [
      shortId(t.id),
      t.type,
      `running ${formatDuration(t.running_seconds * 1000)}`,
      `locked by ${t.locked_by ?? "-"}`,
      `attempts ${t.attempts}`,
    ])));
  }
  if (stats.high_attempts.length > 0) {
    out.push(
      "",
      `${e("🔄")}HIGH ATTEMPTS (>= ${stats.options.high_attempts})${
        ofTotal(
          stats.high_attempts.length,
          stats.high_attempts_total,
          estimated.has("attempts_distribution"),
        )
      }`,
    );
    const lines = columns(stats.high_attempts.map((t) => [
      shortId(t.id),
      t.type,
      formatStatus(t.status, options.emoji),
      `${t.attempts} attempt${t.attempts === 1 ? "" : "s"}`,
      formatUtc(t.updated_at),
    ]));
    stats.high_attempts.forEach((t, i) => {
      out.push(lines[i]!);
      if (t.error) {
        const err = t.error.replace(/\s+/g, " ");
        out.push(`      error: ${err.length > 70 ? err.slice(0, 69) + "…" : err}`);
      }
    });
  }
  if (stats.estimates) {
    out.push(
      "",
      `≈ estimated from the planner's statistics (${stats.estimates.rows} rows, ANALYZE of ${
        stats.estimates.analyzed_at ? formatUtc(stats.estimates.analyzed_at) : "unknown time"
      }); --exact counts every row`,
    );
  }
  out.push(rule);
  return out.join("\n") + "\n";
}
