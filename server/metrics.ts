import client from "prom-client";
import type { TaskStatistics } from "../lib/queries/task_stats.ts";
import { VERSION } from "../lib/version.ts";
import type { DbGate } from "./db_gate.ts";
import type { LogCounters } from "./line_log.ts";

/** The server's own state, read at each scrape. */
export interface ServerSources {
  log?: LogCounters;
  gate?: DbGate;
}

/** How many of the most common types `seedtask_tasks_by_type` lists (the statistics' `top`). */
export const METRICS_TOP = 50;

/** Prometheus gauges filled from the (cached) statistics on each scrape. */
export class TaskMetrics {
  private readonly registry = new client.Registry();
  private readonly tasks: client.Gauge;
  private readonly byType: client.Gauge;
  private readonly ready: client.Gauge;
  private readonly lag: client.Gauge;
  private readonly overdue: client.Gauge;
  private readonly stuck: client.Gauge;
  private readonly failureRate: client.Gauge;
  private readonly finished: client.Gauge;
  private readonly duration: client.Gauge;
  private readonly generated: client.Gauge;

  constructor(sources: ServerSources = {}) {
    const registers = [this.registry];
    const gauge = (name: string, help: string, labelNames: string[] = []) =>
      new client.Gauge({ name, help, labelNames, registers });
    const { log, gate } = sources;
    if (log) {
      new client.Counter({
        name: "seedtask_log_lines_dropped_total",
        help: "Request log lines dropped because stdout did not keep up",
        registers,
        collect() {
          this.reset();
          this.inc(log.dropped);
        },
      });
      new client.Gauge({
        name: "seedtask_log_lines_pending",
        help: "Request log lines waiting for stdout",
        registers,
        collect() {
          this.set(log.pending);
        },
      });
    }
    if (gate) {
      new client.Counter({
        name: "seedtask_http_shed_total",
        help: "Requests answered 503 + Retry-After without database work, by reason",
        labelNames: ["reason"],
        registers,
        collect() {
          this.reset();
          for (const [reason, n] of Object.entries(gate.shed)) this.inc({ reason }, n);
        },
      });
      new client.Gauge({
        name: "seedtask_database_circuit_open",
        help: "1 while requests fail fast because the database is known to be down",
        registers,
        collect() {
          this.set(gate.circuitOpen ? 1 : 0);
        },
      });
      new client.Gauge({
        name: "seedtask_database_work",
        help: "Units of database work running and requests waiting for one",
        labelNames: ["state"],
        registers,
        collect() {
          this.set({ state: "running" }, gate.running);
          this.set({ state: "waiting" }, gate.waiting);
        },
      });
    }
    gauge("seedtask_info", "seedtask version", ["version"]).set({ version: VERSION }, 1);
    this.tasks = gauge("seedtask_tasks", "Tasks by status", ["status"]);
    this.byType = gauge("seedtask_tasks_by_type", "Tasks by type (the most common types)", [
      "type",
    ]);
    this.ready = gauge("seedtask_queue_ready_tasks", "Tasks claimable now");
    this.lag = gauge("seedtask_queue_lag_seconds", "Age of the oldest claimable task");
    this.overdue = gauge(
      "seedtask_queue_overdue_tasks",
      "Claimable tasks whose run_after has passed",
    );
    this.stuck = gauge("seedtask_stuck_tasks", "Running tasks with an expired lease");
    this.failureRate = gauge(
      "seedtask_failure_rate",
      "failed / (completed + failed) over the window",
      ["window"],
    );
    this.finished = gauge("seedtask_finished_tasks", "Tasks finished in the window", [
      "status",
      "window",
    ]);
    this.duration = gauge("seedtask_run_duration_seconds", "Run time of recent completions", [
      "quantile",
    ]);
    this.generated = gauge(
      "seedtask_stats_generated_timestamp_seconds",
      "When these numbers were read",
    );
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** The exposition text for `stats`. */
  render(stats: TaskStatistics): Promise<string> {
    this.tasks.reset();
    for (const [status, n] of Object.entries(stats.status_counts)) this.tasks.set({ status }, n);
    this.byType.reset();
    for (const [type, n] of Object.entries(stats.type_counts)) this.byType.set({ type }, n);
    this.ready.set(stats.queue.ready);
    this.lag.set(stats.queue.lag_seconds ?? 0);
    this.overdue.set(stats.queue.overdue);
    this.stuck.set(stats.stuck_running);
    this.failureRate.reset();
    if (stats.failure_rate.last_hour !== null) {
      this.failureRate.set({ window: "1h" }, stats.failure_rate.last_hour);
    }
    if (stats.failure_rate.last_day !== null) {
      this.failureRate.set({ window: "24h" }, stats.failure_rate.last_day);
    }
    const t = stats.throughput;
    this.finished.set({ status: "completed", window: "1h" }, t.completed_last_hour);
    this.finished.set({ status: "failed", window: "1h" }, t.failed_last_hour);
    this.finished.set({ status: "completed", window: "24h" }, t.completed_last_day);
    this.finished.set({ status: "failed", window: "24h" }, t.failed_last_day);
    this.duration.reset();
    if (stats.run_duration_seconds.p50 !== null) {
      this.duration.set({ quantile: "0.5" }, stats.run_duration_seconds.p50);
    }
    if (stats.run_duration_seconds.p95 !== null) {
      this.duration.set({ quantile: "0.95" }, stats.run_duration_seconds.p95);
    }
    this.generated.set(stats.generated_at.getTime() / 1000);
    return this.registry.metrics();
  }
}
