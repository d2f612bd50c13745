/**
 * The human views of the incident questions: `seedtask failures`, `seedtask leases` and
 * `seedtask workers`. Pure: data in, text out.
 */
import { formatDuration } from "../duration.ts";
import type { FailureGroups } from "../queries/failure_groups.ts";
import type { LeaseReport, LeaseState } from "../queries/leases.ts";
import { shortId } from "../queries/task_id.ts";
import type { WorkerList } from "../queries/workers.ts";
import { oneLine, renderTable } from "./table.ts";
import { formatRelative } from "./time.ts";

/** How a view is drawn. */
export interface InsightDisplay {
  /** Reference instant for relative times. Default: now. */
  now?: Date;
  /** Full task ids instead of 8-character ones. */
  fullId?: boolean;
}

function table(head: string[], rows: string[][]): string {
  return renderTable(rows, { head }).join("\n");
}

function plural(n: number, word: string, many = `${word}s`): string {
  return `${n.toLocaleString("en-US")} ${n === 1 ? word : many}`;
}

function ago(date: Date | null, now: Date): string {
  return date ? formatRelative(date, now) : "never";
}

function percent(share: number): string {
  const p = share * 100;
  return p >= 10 || p === 0 ? `${Math.round(p)}%` : `${p.toFixed(1)}%`;
}

function trendWord(thisHour: number, before: number, complete: boolean): string {
  const counts = `${thisHour} this hour, ${before}${complete ? "" : "+"} the hour before`;
  if (!complete && thisHour <= before) return counts;
  if (thisHour > before) return `rising: ${counts}`;
  if (thisHour < before) return `falling: ${counts}`;
  return `steady: ${counts}`;
}

/** `seedtask failures`: one block per group, largest first, and what to do next. */
export function formatFailureGroups(r: FailureGroups, options: InsightDisplay = {}): string {
  const now = options.now ?? r.window.until;
  const id = (x: string) => options.fullId ? x : shortId(x);
  const span = r.window.until.getTime() - r.window.since.getTime();
  // `24h` as given, not `1d 0h`.
  const window = span % 3_600_000 === 0 && span <= 7 * 86_400_000
    ? `${span / 3_600_000}h`
    : formatDuration(span);
  const scope = [
    r.filter.statuses.join(", "),
    r.filter.type ? `type ${r.filter.type}` : "",
    r.filter.domain ? `domain ${r.filter.domain}` : "",
  ].filter((s) => s !== "").join("; ");
  const out: string[] = [];
  if (r.total === 0) {
    return `No failures in the last ${window} (${scope}).\n`;
  }
  out.push(
    `${plural(r.total, "failure")} in the last ${window} (${scope}), in ${
      plural(r.group_count, "group")
    }.`,
  );
  if (r.sampled) {
    out.push(
      `SAMPLE: grouped the newest ${r.analyzed.toLocaleString("en-US")} (since ${
        ago(r.analyzed_from, now)
      }); counts are of the sample, "~" scales them to the total. --exact groups all.`,
    );
  }
  r.groups.forEach((g, i) => {
    const count = r.sampled
      ? `${plural(g.count, "failure")} (${percent(g.share)}, ~${
        g.estimated_total.toLocaleString("en-US")
      } in all)`
      : `${plural(g.count, "failure")} (${percent(g.share)})`;
    const statuses = Object.entries(g.statuses).map(([s, n]) => `${s} ${n}`).join(", ");
    const domains = g.domains.map((d) => `${d.domain ?? "(none)"} ${d.count}`).join(", ");
    const attempts = g.attempts.min === g.attempts.max
      ? `${g.attempts.min}`
      : `${g.attempts.min}-${g.attempts.max}`;
    out.push(
      "",
      `#${i + 1}  group ${g.id}  ${g.type}  ${count}`,
      `    ${oneLine(g.fingerprint === "" ? "(no error text)" : g.fingerprint, 160)}`,
      `    ${trendWord(g.trend.this_hour, g.trend.previous_hour, g.trend.complete)}; last ${
        ago(g.last_seen, now)
      }, first ${ago(g.first_seen, now)}`,
      `    ${statuses}; attempts ${attempts}; domains ${domains || "-"}`,
      `    tasks ${g.sample_ids.map(id).join(" ")}`,
      `    e.g. ${oneLine(g.example_error ?? "-", 200)}`,
    );
  });
  if (r.group_count > r.groups.length) {
    out.push(
      "",
      `… and ${plural(r.group_count - r.groups.length, "more group")} (--top to see more)`,
    );
  }
  const first = r.groups[0]?.id ?? "<group>";
  out.push(
    "",
    `Act on a group: seedtask retry --group ${first} (a dry run; add --yes), ` +
      `seedtask cancel --group ${first} stops its retries.`,
  );
  return `${out.join("\n")}\n`;
}

const STATE_TEXT: Record<LeaseState, string> = {
  expired: "lease expired",
  heartbeat_stale: "no heartbeat",
  no_lease: "no lease, old",
};

/** `seedtask leases`: stuck running tasks by owner, and what requeue-stale would do now. */
export function formatLeases(r: LeaseReport, options: InsightDisplay = {}): string {
  const now = options.now ?? r.generated_at;
  const th = r.thresholds;
  if (r.total === 0) {
    return `No stuck running tasks (no expired lease, no heartbeat older than ${
      formatDuration(th.stale_after_seconds * 1000)
    }).\n`;
  }
  const expired = r.tasks.length === r.total
    ? r.tasks.filter((t) => t.state === "expired").length
    : r.owners.reduce((n, o) => n + o.expired, 0);
  const out: string[] = [
    `${plural(r.total, "stuck running task")}: ${expired} with an expired lease, ${
      r.total - expired
    } not heard from for ${formatDuration(th.stale_after_seconds * 1000)} or more.`,
    "",
    table(
      ["OWNER", "STUCK", "EXPIRED", "RUNNING", "LAST HEARD", "REGISTERED"],
      r.owners.map((o) => [
        o.owner ?? "(none)",
        String(o.stuck),
        String(o.expired),
        String(o.running),
        ago(o.last_heard_at, now),
        o.registered ? "yes" : "no",
      ]),
    ),
    "",
    table(
      ["TASK", "TYPE", "OWNER", "STATE", "ATTEMPTS", "CLAIMED", "LEASE", "REQUEUE-STALE"],
      r.tasks.map((t) => [
        options.fullId ? t.id : shortId(t.id),
        oneLine(t.type, 24),
        t.owner ?? "-",
        STATE_TEXT[t.state],
        String(t.attempts),
        ago(t.locked_at, now),
        t.lease_expires_at
          ? (t.lease_expires_at <= now ? "expired " : "ends ") +
            formatRelative(t.lease_expires_at, now)
          : "-",
        t.requeue ?? "waits",
      ]),
    ),
  ];
  if (r.tasks.length < r.total) out.push(`… ${r.total - r.tasks.length} more (--limit)`);
  const { retry, failed } = r.requeue_stale;
  out.push(
    "",
    retry + failed === 0
      ? "requeue-stale now: nothing (no lease has expired yet; it waits for the lease)."
      : `requeue-stale now: ${retry} back to retry, ${failed} to failed (max attempts ${th.max_attempts}). ` +
        "Run seedtask requeue-stale to do it; a running seedtask dispatch does it by itself.",
  );
  return `${out.join("\n")}\n`;
}

/** `seedtask workers`: the dispatchers, live first, and who holds running tasks. */
export function formatWorkers(r: WorkerList, options: InsightDisplay = {}): string {
  const now = options.now ?? r.generated_at;
  const out: string[] = [];
  if (r.workers.length === 0) {
    out.push("No workers: no dispatcher is registered and no task is running.");
  } else {
    out.push(
      table(
        [
          "NAME",
          "STATE",
          "RUNNING",
          "LAST SEEN",
          "HOST",
          "PID",
          "UP",
          "CONC",
          "DONE",
          "FAILED",
          "TYPES",
        ],
        r.workers.map((w) => [
          w.name,
          w.silent ? "SILENT" : w.registered ? "live" : "unregistered",
          w.expired_leases > 0 ? `${w.running} (${w.expired_leases} expired)` : String(w.running),
          ago(w.last_seen_at, now),
          w.host ?? "-",
          w.pid === null ? "-" : String(w.pid),
          w.started_at ? formatDuration(now.getTime() - w.started_at.getTime()) : "-",
          w.concurrency === null ? "-" : `${w.in_flight ?? 0}/${w.concurrency}`,
          w.counts ? String(w.counts.completed) : "-",
          w.counts ? String(w.counts.failed + w.counts.retried) : "-",
          w.types ? oneLine(w.types.join(","), 30) : w.registered ? "all" : "-",
        ]),
      ),
    );
    const silent = r.workers.filter((w) => w.silent);
    if (silent.length > 0) {
      out.push(
        "",
        `SILENT: not heard from within its lease (registered) or every lease it holds expired: ` +
          `${silent.map((w) => w.name).join(", ")}. Its tasks return when a dispatcher's reaper ` +
          "runs (seedtask leases shows them).",
      );
    }
    if (r.workers.some((w) => !w.registered)) {
      out.push(
        "",
        "unregistered: holds running tasks but is not in the registry (another dispatcher, " +
          "such as SeedCore's, or an older seedtask); seen from its heartbeats on its tasks.",
      );
    }
  }
  if (!r.registry) {
    out.push(
      "",
      "No worker registry in this database: run `seedtask migrate` so dispatchers register.",
    );
  }
  if (r.hidden > 0) {
    out.push("", `${plural(r.hidden, "worker")} silent for more than a day not shown (--all).`);
  }
  return `${out.join("\n")}\n`;
}
