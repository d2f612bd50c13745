import client from "prom-client";
import type { DispatchEvent } from "./events.ts";
import { COUNTED_BY, type DispatcherStats } from "./stats.ts";

/**
 * Prometheus counters of one dispatcher process (`dispatch --metrics-port`). Give it to the
 * dispatcher (`metrics` option): the counters follow its events, as its stats do, and the
 * in-flight gauge reads its in-flight executions at each scrape.
 */
export class DispatcherMetrics {
  /** The registry of these metrics only (not prom-client's global one). */
  readonly registry: client.Registry = new client.Registry();
  /** `seedtask_dispatcher_claimed_total`. */
  readonly claimed: client.Counter;
  /** `seedtask_dispatcher_completed_total`. */
  readonly completed: client.Counter;
  /** `seedtask_dispatcher_failed_total`. */
  readonly failed: client.Counter;
  /** `seedtask_dispatcher_retried_total`. */
  readonly retried: client.Counter;
  /** `seedtask_dispatcher_reaped_total`. */
  readonly reaped: client.Counter;
  /** `seedtask_dispatcher_in_flight`. */
  readonly inFlight: client.Gauge;
  /** The counter of each stat that has one (released and refused have none). */
  readonly #counters: Partial<Record<keyof DispatcherStats, client.Counter>>;
  #inFlightNow: () => number = () => 0;

  /** Metrics labelled `dispatcher="<name>"`. */
  constructor(dispatcher: string) {
    this.registry.setDefaultLabels({ dispatcher });
    const registers = [this.registry];
    const counter = (name: string, help: string) =>
      new client.Counter({ name: `seedtask_dispatcher_${name}_total`, help, registers });
    this.claimed = counter("claimed", "Tasks claimed (executions started)");
    this.completed = counter("completed", "Executions recorded as completed");
    this.failed = counter("failed", "Tasks failed for good (max attempts reached)");
    this.retried = counter("retried", "Failed executions scheduled for retry");
    this.reaped = counter(
      "reaped",
      "Running tasks with an expired lease returned by this dispatcher's reaper",
    );
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

  /** The content type of {@link text}. */
  get contentType(): string {
    return this.registry.contentType;
  }
}
