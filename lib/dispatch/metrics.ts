import client from "prom-client";
import type { DispatchEvent } from "./events.ts";
import { COUNTED_BY, type DispatcherStats } from "./stats.ts";

/**
 * Prometheus counters of one dispatcher process (`dispatch --metrics-port`). Give it to the
 * dispatcher (`metrics` option): the counters follow its events, as its stats do, and the
 * in-flight gauge reads its in-flight executions at each scrape.
 */
export class DispatcherMetrics {
  readonly registry = new client.Registry();
  readonly claimed: client.Counter;
  readonly completed: client.Counter;
  readonly failed: client.Counter;
  readonly retried: client.Counter;
  readonly reaped: client.Counter;
  readonly inFlight: client.Gauge;
  /** The counter of each stat that has one (released and refused have none). */
  readonly #counters: Partial<Record<keyof DispatcherStats, client.Counter>>;
  #inFlightNow: () => number = () => 0;

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
    const inFlightNow = () => this.#inFlightNow();
    this.inFlight = new client.Gauge({
      name: "seedtask_dispatcher_in_flight",
      help: "Executions in progress",
      registers,
      collect() {
        this.set(inFlightNow());
      },
    });
    const { claimed, completed, retried, failed, reaped } = this;
    this.#counters = { claimed, completed, retried, failed, reaped };
  }

  /** Counts one dispatcher event (the dispatcher hands it each of its events). */
  observe(event: DispatchEvent): void {
    const stat = COUNTED_BY[event.event];
    if (stat) this.#counters[stat]?.inc();
  }

  /** Where the in-flight gauge reads its value (the dispatcher gives its own count). */
  watchInFlight(count: () => number): void {
    this.#inFlightNow = count;
  }

  /** The Prometheus text exposition of every metric. */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
