import { shortId } from "../queries/task_id.ts";

/** Everything a dispatcher reports, one event per log line. Task events carry the task id. */
export type DispatchEvent =
  | {
    event: "started";
    dispatcher: string;
    concurrency: number;
    batch: number;
    lease_ms: number;
    max_attempts: number;
    executor: string;
    listen: boolean;
    once: boolean;
  }
  | {
    event: "processing";
    task_id: string;
    type: string;
    domain: string | null;
    attempts: number;
    max_attempts: number;
  }
  | { event: "sending"; task_id: string; type: string; target: string }
  | { event: "completed"; task_id: string; type: string; duration_ms: number }
  | {
    event: "retry";
    task_id: string;
    type: string;
    attempts: number;
    max_attempts: number;
    delay_ms: number;
    error: string;
  }
  | {
    event: "failed";
    task_id: string;
    type: string;
    attempts: number;
    max_attempts: number;
    error: string;
  }
  | { event: "refused"; task_id: string; outcome: string; reason: string }
  | { event: "lease_lost"; task_id: string }
  | { event: "reaped"; task_id: string; outcome: "retry" | "failed"; previous_owner: string | null }
  | { event: "released"; task_id: string }
  | { event: "stopping"; dispatcher: string; reason: string; in_flight: number }
  | {
    event: "stopped";
    dispatcher: string;
    claimed: number;
    completed: number;
    retried: number;
    failed: number;
  }
  | { event: "error"; dispatcher: string; message: string; task_id?: string }
  | { event: "listening"; dispatcher: string; channel: string; target: string }
  /** `dispatch --metrics-port` is serving; `url` has the bound port (also for port 0). */
  | { event: "metrics"; dispatcher: string; url: string }
  | {
    event: "listen_unavailable";
    dispatcher: string;
    channel: string;
    target: string;
    /** Why LISTEN cannot work there. */
    reason: string;
    /** The poll interval the dispatcher relies on instead. */
    poll_ms: number;
    /** How to get LISTEN back, when there is a way. */
    hint?: string;
  };

function seconds(ms: number): string {
  return ms < 10_000 ? `${(ms / 1000).toFixed(1)}s` : `${Math.round(ms / 1000)}s`;
}

/**
 * The seed's log line for an event, e.g.
 * `[QueueDispatcher] 🚀 Processing task 1a2b3c4d (type=graph_embed, domain=user_123, attempts=1/3)`.
 * Emoji only when `emoji` (a terminal without NO_COLOR); the task's short id unless `fullId`.
 */
export function formatEventText(
  event: DispatchEvent,
  emoji: boolean,
  options: { fullId?: boolean } = {},
): string {
  const i = (s: string) => (emoji ? `${s} ` : "");
  const p = "[QueueDispatcher]";
  // Short ids, as in every table (`seedtask show` takes them); the full one when asked.
  const e = !options.fullId && "task_id" in event && event.task_id
    ? { ...event, task_id: shortId(event.task_id) } as DispatchEvent
    : event;
  switch (e.event) {
    case "started":
      return `${p} ${i("▶️")}Dispatcher ${e.dispatcher} started (concurrency=${e.concurrency}, ` +
        `batch=${e.batch}, lease=${seconds(e.lease_ms)}, max_attempts=${e.max_attempts}, ` +
        `executor=${e.executor}${e.listen ? ", listen" : ""}${e.once ? ", once" : ""})`;
    case "processing":
      return `${p} ${i("🚀")}Processing task ${e.task_id} (type=${e.type}, domain=${
        e.domain ?? "-"
      }, ` +
        `attempts=${e.attempts}/${e.max_attempts})`;
    case "sending":
      return `${p} ${i("📤")}Sending task ${e.task_id} to ${e.target} for execution`;
    case "completed":
      return `${p} ${i("✅")}Task ${e.task_id} completed successfully (type=${e.type}, ${
        seconds(e.duration_ms)
      })`;
    case "retry":
      return `${p} ${i("🔄")}Task ${e.task_id} failed (attempt ${e.attempts}/${e.max_attempts}), ` +
        `retrying in ${seconds(e.delay_ms)}: ${e.error}`;
    case "failed":
      return `${p} ${
        i("❌")
      }Task ${e.task_id} failed permanently after ${e.attempts}/${e.max_attempts} ` +
        `attempts: ${e.error}`;
    case "refused":
      return `${p} ${i("⚠️")}Task ${e.task_id}: ${e.outcome} not recorded — ${e.reason}`;
    case "lease_lost":
      return `${p} ${i("⚠️")}Task ${e.task_id} is no longer held by this dispatcher ` +
        "(cancelled or reaped); stopping its execution";
    case "reaped":
      return `${p} ${i("🚨")}Task ${e.task_id} lease expired (locked by ${
        e.previous_owner ?? "?"
      }): ` +
        `moved to ${e.outcome}`;
    case "released":
      return `${p} ${i("↩️")}Task ${e.task_id} released at shutdown: back to retry`;
    case "stopping":
      return `${p} ${i("🛑")}Dispatcher ${e.dispatcher} stopping (${e.reason}): no new claims, ` +
        `${e.in_flight} in flight`;
    case "stopped":
      return `${p} ${i("🏁")}Dispatcher ${e.dispatcher} stopped: claimed ${e.claimed}, completed ` +
        `${e.completed}, retried ${e.retried}, failed ${e.failed}`;
    case "error":
      return `${p} ${i("💥")}${e.task_id ? `Task ${e.task_id}: ` : ""}${e.message}`;
    case "listening":
      return `${p} ${i("👂")}Listening for NOTIFY ${e.channel} on ${e.target} ` +
        "(checked: a test notification arrived)";
    case "metrics":
      return `${p} ${i("📈")}Prometheus metrics of ${e.dispatcher} at ${e.url}`;
    case "listen_unavailable":
      return `${p} ${i("⚠️")}LISTEN ${e.channel} does not work through ${e.target} ` +
        `(${e.reason}): polling every ${seconds(e.poll_ms)} instead${e.hint ? ` — ${e.hint}` : ""}`;
  }
}

/** A log line with an ISO timestamp: text (the seed's format) or one JSON object. */
export function formatEvent(
  e: DispatchEvent,
  format: "text" | "json",
  options: { emoji?: boolean; now?: Date; fullId?: boolean } = {},
): string {
  const ts = (options.now ?? new Date()).toISOString();
  if (format === "json") {
    const level = e.event === "error" || e.event === "failed"
      ? "error"
      : e.event === "refused" || e.event === "lease_lost" || e.event === "reaped" ||
          e.event === "retry" || e.event === "listen_unavailable"
      ? "warn"
      : "info";
    return JSON.stringify({ ts, level, ...e, msg: formatEventText(e, false, { fullId: true }) });
  }
  return `${ts} ${formatEventText(e, !!options.emoji, { fullId: options.fullId })}`;
}
