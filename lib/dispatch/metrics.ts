import client from "prom-client";

/** Prometheus counters of one dispatcher process (`dispatch --metrics-port`). */
export class DispatcherMetrics {
  readonly registry = new client.Registry();
  readonly claimed: client.Counter;
  readonly completed: client.Counter;
  readonly failed: client.Counter;
  readonly retried: client.Counter;
  readonly reaped: client.Counter;
  readonly inFlight: client.Gauge;

  constructor(dispatcher: string) {
    this.registry.setDefaultLabels({ dispatcher });
    const registers = [this.registry];
    this.claimed = new client.Counter({
      name: "seedtask_dispatcher_claimed_total",
      help: "Tasks claimed (executions started)",
      registers,
    });
    this.completed = new client.Counter({
      name: "seedtask_dispatcher_completed_total",
      help: "Executions recorded as completed",
      registers,
    });
    this.failed = new client.Counter({
      name: "seedtask_dispatcher_failed_total",
      help: "Tasks failed for good (max attempts reached)",
      registers,
    });
    this.retried = new client.Counter({
      name: "seedtask_dispatcher_retried_total",
      help: "Failed executions scheduled for retry",
      registers,
    });
    this.reaped = new client.Counter({
      name: "seedtask_dispatcher_reaped_total",
      help: "Running tasks with an expired lease returned by this dispatcher's reaper",
      registers,
    });
    this.inFlight = new client.Gauge({
      name: "seedtask_dispatcher_in_flight",
      help: "Executions in progress",
      registers,
    });
  }

  /** The Prometheus text exposition of every metric. */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
