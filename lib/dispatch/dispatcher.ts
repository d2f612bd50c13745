import {
  backoffDelay,
  type BackoffPolicy,
  DEFAULT_BACKOFF,
  DEFAULT_MAX_ATTEMPTS,
} from "./backoff.ts";
import { BatchCompleter } from "./batch_completer.ts";
import { ClaimLanes } from "./claim_lanes.ts";
import { type Db, getTableInfo } from "../db.ts";
import type { DispatchEvent } from "./events.ts";
import type { DispatcherMetrics } from "./metrics.ts";
import {
  InvalidInputError,
  LeaseColumnsMissingError,
  OutOfRangeError,
  SeedtaskError,
} from "../errors.ts";
import { type Executor, handlerExecutor, type TaskHandler } from "./executors.ts";
import { type Claimed, failTask, refusalReason, releaseTasks } from "./finish_task.ts";
import { type LeasedExecution, LeaseKeeper } from "./lease_keeper.ts";
import { listenForTasks } from "./listen_tasks.ts";
import { RunScope } from "./run_scope.ts";
import { countEvent, type DispatcherStats, emptyStats } from "./stats.ts";
import type { Task } from "../table/contract.ts";
import { WorkerRegistry } from "./worker_registry.ts";
import { hostName } from "../host.ts";

export type { DispatcherStats } from "./stats.ts";

/** Options of {@link createDispatcher}; the defaults are `seedtask dispatch`'s. */
export interface DispatcherOptions {
  /** The task table to dispatch. */
  db: Db;
  /** How tasks run. Give this or `handlers`. */
  executor?: Executor;
  /** Library handlers by task type; only these types are claimed. */
  handlers?: Record<string, TaskHandler>;
  /** Written to locked_by. Default `<hostname>-<pid>`. */
  name?: string;
  /** Executions at once. Default 16. */
  concurrency?: number;
  /** Most tasks per claim statement. Default 8. */
  batch?: number;
  /** Lease length; heartbeats renew it every third of it. Default 90s. */
  leaseMs?: number;
  /** Executions per task before it fails for good. Default 3. */
  maxAttempts?: number;
  /** Only claim these types. */
  types?: readonly string[];
  /** Wait between claims when idle. Default 1s. */
  pollMs?: number;
  /** Wake on NOTIFY tasks_new instead of waiting out the poll interval. */
  listen?: boolean;
  /**
   * Where to LISTEN when `db` goes through a transaction pooler, where LISTEN cannot work: a
   * Db on a direct connection to the same server. Default: `db`.
   */
  listenDb?: Db;
  /** How long the LISTEN self-test waits for its own notification. Default 5s. */
  listenCheckMs?: number;
  /** Drain what is claimable now, then return. */
  once?: boolean;
  /** Retry delays; see {@link DEFAULT_BACKOFF}. */
  backoff?: Partial<BackoffPolicy>;
  /** At stop, how long in-flight work may take before it is released. Default 30s. */
  shutdownTimeoutMs?: number;
  /** Receives every event (the CLI turns them into log lines). */
  onEvent?: (event: DispatchEvent) => void;
  /** Prometheus metrics that follow the events (`dispatch --metrics-port`). */
  metrics?: DispatcherMetrics;
}

interface InFlight extends LeasedExecution {
  task: Task;
  claim: Claimed;
  controller: AbortController;
  /** Its result is being written: a missing lease now means we finished it, not lost it. */
  finishing: boolean;
  /** Released at shutdown: whatever the execution returns is not recorded. */
  abandoned: boolean;
  /** A heartbeat found it no longer ours: reported once, its execution aborted. */
  lost: boolean;
  done: Promise<void>;
}

/** The default dispatcher name: host and process, unique enough for locked_by. */
export function defaultDispatcherName(): string {
  return `${hostName() ?? "seedtask"}-${Deno.pid}`;
}

/**
 * The queue dispatcher: claims tasks with one `FOR UPDATE SKIP LOCKED` statement, runs them
 * with bounded concurrency, records completion, retry with backoff, or final failure with
 * guarded updates, renews leases by heartbeat and returns expired leases with a reaper.
 * `stop()` stops claiming, lets in-flight work finish within the shutdown timeout and
 * releases the rest.
 *
 * Each concern has its own part: {@link ClaimLanes} claims and accounts for the slots,
 * {@link BatchCompleter} records results, {@link LeaseKeeper} runs the heartbeat and the
 * reaper. An outcome is reported once, as an event: `stats`, the `metrics` and `onEvent` all
 * follow the events. Every timer the dispatcher starts belongs to one {@link RunScope}, closed
 * before `run()` returns: a run leaves nothing behind.
 *
 * @example
 * ```ts
 * const dispatcher = createDispatcher({
 *   db,
 *   handlers: { graph_embed: async (task) => ({ vectors: await embed(task.params) }) },
 * });
 * Deno.addSignalListener("SIGTERM", () => dispatcher.stop("SIGTERM"));
 * await dispatcher.run();
 * ```
 */
export class Dispatcher {
  /** Written to locked_by; see {@link DispatcherOptions.name}. */
  readonly name: string;
  /** This run's counters, counted from its events. */
  readonly stats: DispatcherStats = emptyStats();
  private readonly db: Db;
  private readonly executor: Executor;
  private readonly concurrency: number;
  private readonly batch: number;
  private readonly leaseMs: number;
  private readonly maxAttempts: number;
  private readonly types?: readonly string[];
  private readonly pollMs: number;
  private readonly backoff: BackoffPolicy;
  private readonly shutdownTimeoutMs: number;
  private readonly inFlight = new Map<string, InFlight>();
  private stopping: string | null = null;
  private running = false;
  private readonly scope = new RunScope();
  private readonly lanes: ClaimLanes;
  private readonly completer: BatchCompleter;
  private readonly leases: LeaseKeeper;
  private readonly registry: WorkerRegistry;
  /** Who hears each event, in order: the counters, the metrics, then `onEvent`. */
  private readonly listeners: Array<(event: DispatchEvent) => void>;

  /** Checks the options; nothing runs until {@link run}. */
  constructor(private readonly options: DispatcherOptions) {
    if (!options.executor && !options.handlers) {
      throw new InvalidInputError("A dispatcher needs an executor or handlers");
    }
    this.db = options.db;
    this.executor = options.executor ?? handlerExecutor(options.handlers!);
    this.name = options.name ?? defaultDispatcherName();
    this.concurrency = options.concurrency ?? 16;
    this.batch = options.batch ?? 8;
    this.leaseMs = options.leaseMs ?? 90_000;
    this.maxAttempts = options.maxAttempts ?? DEFAULT_MAX_ATTEMPTS;
    this.types = options.types ?? this.executor.types;
    this.pollMs = options.pollMs ?? 1000;
    this.backoff = { ...DEFAULT_BACKOFF, ...options.backoff };
    this.shutdownTimeoutMs = options.shutdownTimeoutMs ?? 30_000;
    for (const [k, v] of Object.entries({ concurrency: this.concurrency, batch: this.batch })) {
      if (!Number.isInteger(v) || v < 1) {
        throw new OutOfRangeError(`Invalid ${k} "${v}": expected 1 or more`);
      }
    }
    const emit = (event: DispatchEvent) => this.emit(event);
    this.lanes = new ClaimLanes({
      db: this.db,
      owner: this.name,
      concurrency: this.concurrency,
      batch: this.batch,
      leaseMs: this.leaseMs,
      types: this.types,
      pollMs: this.pollMs,
      once: !!options.once,
      scope: this.scope,
      start: (task) => this.start(task),
      inFlight: () => this.inFlight.size,
      emit,
    });
    this.completer = new BatchCompleter(this.db, this.name, this.scope, emit);
    this.registry = new WorkerRegistry({
      db: this.db,
      name: this.name,
      concurrency: this.concurrency,
      types: this.types,
      leaseMs: this.leaseMs,
      stats: () => this.stats,
      inFlight: () => this.inFlight.size,
    });
    this.leases = new LeaseKeeper({
      db: this.db,
      owner: this.name,
      leaseMs: this.leaseMs,
      maxAttempts: this.maxAttempts,
      scope: this.scope,
      inFlight: this.inFlight,
      emit,
      wake: () => this.wake(),
      registry: this.registry,
    });
    const { metrics, onEvent } = options;
    metrics?.watchInFlight(() => this.inFlight.size);
    this.listeners = [
      (event) => countEvent(this.stats, event),
      ...(metrics ? [(event: DispatchEvent) => metrics.observe(event)] : []),
      ...(onEvent ? [onEvent] : []),
    ];
  }

  /** Reports an event to every listener. */
  private emit(event: DispatchEvent): void {
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch { /* a logging failure must not stop the dispatcher */ }
    }
  }

  /** Wakes the claim loops (new task notified, a slot freed, a retry became due). */
  wake(): void {
    this.lanes.wake();
  }

  /** Stops claiming; in-flight executions finish (or are released after the timeout). */
  stop(reason = "stop requested"): void {
    if (this.stopping !== null) return;
    this.stopping = reason;
    this.emit({ event: "stopping", dispatcher: this.name, reason, in_flight: this.inFlight.size });
    this.lanes.stop();
  }

  /** Runs until `stop()` (or, with `once`, until nothing is claimable). Returns the counters. */
  async run(): Promise<DispatcherStats> {
    if (this.running) {
      throw new SeedtaskError("already_running", "This dispatcher is already running");
    }
    this.running = true;
    const info = await getTableInfo(this.db);
    if (!info.hasLease) {
      throw new LeaseColumnsMissingError(this.db.table);
    }
    this.emit({
      event: "started",
      dispatcher: this.name,
      concurrency: this.concurrency,
      batch: this.batch,
      lease_ms: this.leaseMs,
      max_attempts: this.maxAttempts,
      executor: this.executor.target,
      listen: !!this.options.listen,
      once: !!this.options.once,
    });

    let unlisten: (() => Promise<void>) | null = null;
    try {
      await this.registry.register().catch((err) =>
        this.emit({
          event: "error",
          dispatcher: this.name,
          message: `Could not register in the worker registry: ${(err as Error).message}`,
        })
      );
      if (this.options.listen) {
        unlisten = await listenForTasks({
          db: this.db,
          listenDb: this.options.listenDb,
          dispatcher: this.name,
          pollMs: this.pollMs,
          checkMs: this.options.listenCheckMs ?? 5000,
          scope: this.scope,
          emit: (event) => this.emit(event),
          onNotify: () => this.wake(),
        });
      }
      await this.leases.start();
      await this.lanes.run();
      await this.drain();
    } finally {
      this.leases.stop();
      if (unlisten) await unlisten();
      await this.completer.flushNow();
      await this.scope.close();
      // A clean stop leaves no row behind; a crash leaves one that goes silent.
      await this.registry.unregister().catch((err) =>
        this.emit({
          event: "error",
          dispatcher: this.name,
          message: `Could not leave the worker registry: ${(err as Error).message}`,
        })
      );
    }
    this.emit({
      event: "stopped",
      dispatcher: this.name,
      claimed: this.stats.claimed,
      completed: this.stats.completed,
      retried: this.stats.retried,
      failed: this.stats.failed,
    });
    return this.stats;
  }

  /** Starts the execution of a claimed task (its slot is taken by the claim lanes). */
  private start(task: Task): void {
    const entry: InFlight = {
      task,
      claim: { id: task.id, owner: this.name, attempts: task.attempts },
      controller: new AbortController(),
      finishing: false,
      abandoned: false,
      lost: false,
      done: Promise.resolve(),
    };
    this.inFlight.set(task.id, entry);
    entry.done = this.execute(entry)
      .catch((err) =>
        this.emit({
          event: "error",
          dispatcher: this.name,
          task_id: task.id,
          message: (err as Error).message,
        })
      )
      .finally(() => {
        this.inFlight.delete(task.id);
        this.wake();
      });
  }

  /** Runs one execution and records its outcome; the outcome's event counts it. */
  private async execute(entry: InFlight): Promise<void> {
    const { task } = entry;
    this.emit({
      event: "processing",
      task_id: task.id,
      type: task.type,
      domain: task.domain,
      attempts: task.attempts,
      max_attempts: this.maxAttempts,
    });
    this.emit({
      event: "sending",
      task_id: task.id,
      type: task.type,
      target: this.executor.target,
    });
    const started = performance.now();
    let result: Awaited<ReturnType<Executor["execute"]>>;
    try {
      result = await this.executor.execute(task, entry.controller.signal);
    } finally {
      // The slot is free once the handler returns: the next claim need not wait for this
      // result to be written (the task stays in inFlight, heartbeat-free, until it is).
      this.lanes.slotFreed();
    }
    if (entry.abandoned) return;
    entry.finishing = true;
    if (result.success) {
      const completed = await this.completer.complete(entry.claim, result.result);
      if (completed === undefined) return;
      if (completed) {
        this.emit({
          event: "completed",
          task_id: task.id,
          type: task.type,
          duration_ms: Math.round(performance.now() - started),
        });
      } else {
        await this.refused(task.id, "completion");
      }
      return;
    }
    const delayMs = backoffDelay(task.attempts, this.backoff);
    const outcome = await this.completer.persist(
      task.id,
      () =>
        failTask(this.db, entry.claim, result.error, { maxAttempts: this.maxAttempts, delayMs }),
    );
    if (outcome === undefined) return;
    if (outcome === null) return await this.refused(task.id, "failure");
    if (outcome.outcome === "retry") {
      this.emit({
        event: "retry",
        task_id: task.id,
        type: task.type,
        attempts: task.attempts,
        max_attempts: this.maxAttempts,
        delay_ms: delayMs,
        error: result.error,
      });
      // Our own retry becomes claimable at run_after: be there without waiting for a poll.
      if (!this.options.once) this.scope.timeout(() => this.wake(), delayMs + 5);
    } else {
      this.emit({
        event: "failed",
        task_id: task.id,
        type: task.type,
        attempts: task.attempts,
        max_attempts: this.maxAttempts,
        error: result.error,
      });
    }
  }

  /** Reports a result the database refused, with what became of the task. */
  private async refused(taskId: string, what: string): Promise<void> {
    const reason = await refusalReason(this.db, taskId);
    this.emit({ event: "refused", task_id: taskId, outcome: what, reason });
  }

  /** After the claim loop: wait for in-flight work, then release what is left. */
  private async drain(): Promise<void> {
    if (this.inFlight.size === 0) return;
    const all = Promise.all([...this.inFlight.values()].map((e) => e.done));
    await this.within(all, this.shutdownTimeoutMs);
    const left = [...this.inFlight.values()].filter((e) => !e.finishing);
    if (left.length === 0) {
      await all;
      return;
    }
    for (const e of left) e.abandoned = true;
    try {
      const released = await releaseTasks(
        this.db,
        left.map((e) => e.claim),
        `released at shutdown of ${this.name}`,
      );
      for (const t of released) this.emit({ event: "released", task_id: t.id });
    } catch (err) {
      this.emit({
        event: "error",
        dispatcher: this.name,
        message: `Could not release ${left.length} task(s) (${(err as Error).message}); ` +
          "their leases will expire and they will be retried",
      });
    }
    for (const e of left) e.controller.abort();
    // Aborted executions stop within the executor's own limit (a command: TERM, grace, KILL).
    await this.within(all, 2000 + (this.executor.stopTimeoutMs ?? 0));
  }

  /** Waits for `work`, at most `ms`. */
  private async within(work: Promise<unknown>, ms: number): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([work, new Promise<void>((r) => (timer = this.scope.timeout(r, ms)))]);
    this.scope.clear(timer);
  }
}

/** Creates a dispatcher; see {@link Dispatcher}. */
export function createDispatcher(options: DispatcherOptions): Dispatcher {
  return new Dispatcher(options);
}
