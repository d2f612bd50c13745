import { backoffDelay, type BackoffPolicy, DEFAULT_BACKOFF } from "./backoff.ts";
import { claimTasks } from "./claim_tasks.ts";
import { type Db, getTableInfo, guard, mapDbError } from "../db.ts";
import type { DispatchEvent } from "./events.ts";
import type { DispatcherMetrics } from "./metrics.ts";
import { NOTIFY_CHANNEL } from "../ops/enqueue_task.ts";
import { formatDuration } from "../duration.ts";
import {
  InvalidInputError,
  LeaseColumnsMissingError,
  OutOfRangeError,
  SeedtaskError,
} from "../errors.ts";
import { type Executor, handlerExecutor, type TaskHandler } from "./executors.ts";
import { type Claimed, completeTasks, failTask, releaseTasks, renewLeases } from "./finish_task.ts";
import { requeueStale } from "../ops/requeue_stale.ts";
import type { Task } from "../table/contract.ts";

/** Options of {@link createDispatcher}; the defaults are `seedtask dispatch`'s. */
export interface DispatcherOptions {
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
  backoff?: Partial<BackoffPolicy>;
  /** At stop, how long in-flight work may take before it is released. Default 30s. */
  shutdownTimeoutMs?: number;
  /** Receives every event (the CLI turns them into log lines). */
  onEvent?: (event: DispatchEvent) => void;
  metrics?: DispatcherMetrics;
}

/** Counters of one dispatcher run. */
export interface DispatcherStats {
  claimed: number;
  completed: number;
  retried: number;
  failed: number;
  reaped: number;
  released: number;
  refused: number;
}

interface InFlight {
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
  let host = "seedtask";
  try {
    host = Deno.hostname();
  } catch { /* no --allow-sys */ }
  return `${host}-${Deno.pid}`;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * The queue dispatcher (DESIGN §8): claims tasks with one `FOR UPDATE SKIP LOCKED` statement,
 * runs them with bounded concurrency, records completion, retry with backoff, or final
 * failure with guarded updates, renews leases by heartbeat and returns expired leases with a
 * reaper. `stop()` stops claiming, lets in-flight work finish within the shutdown timeout and
 * releases the rest.
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
/** Most claim statements one dispatcher runs at once (see run()). */
const MAX_CLAIM_LANES = 4;

export class Dispatcher {
  readonly name: string;
  readonly stats: DispatcherStats = {
    claimed: 0,
    completed: 0,
    retried: 0,
    failed: 0,
    reaped: 0,
    released: 0,
    refused: 0,
  };
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
  private woken = false;
  private readonly waiters = new Set<() => void>();
  /** Handlers running now: what `concurrency` bounds. */
  private executing = 0;
  /** Slots promised to claim statements still in flight. */
  private reserved = 0;
  /** The last claim came back full: more is waiting, so every claim lane works. */
  private backlog = false;
  /** The first lane has returned: the others follow. */
  private lanesDone = false;
  private running = false;
  /** Completions waiting to be written together (see `complete`). */
  private completions: Array<
    { claim: Claimed; result: unknown; done: (ok: boolean | undefined) => void }
  > = [];
  private flushScheduled = false;

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
    this.maxAttempts = options.maxAttempts ?? 3;
    this.types = options.types ?? this.executor.types;
    this.pollMs = options.pollMs ?? 1000;
    this.backoff = { ...DEFAULT_BACKOFF, ...options.backoff };
    this.shutdownTimeoutMs = options.shutdownTimeoutMs ?? 30_000;
    for (const [k, v] of Object.entries({ concurrency: this.concurrency, batch: this.batch })) {
      if (!Number.isInteger(v) || v < 1) {
        throw new OutOfRangeError(`Invalid ${k} "${v}": expected 1 or more`);
      }
    }
  }

  private emit(event: DispatchEvent): void {
    try {
      this.options.onEvent?.(event);
    } catch { /* a logging failure must not stop the dispatcher */ }
  }

  /** Wakes the claim loops (new task notified, a slot freed, a retry became due). */
  wake(): void {
    this.woken = true;
    for (const waiter of [...this.waiters]) waiter();
  }

  /** Resolves on the next wake(), or after `ms` (never, for Infinity). */
  private waitForWake(ms: number): Promise<void> {
    if (this.woken) {
      this.woken = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const done = () => {
        if (timer !== undefined) clearTimeout(timer);
        this.waiters.delete(done);
        this.woken = false;
        resolve();
      };
      const timer = Number.isFinite(ms) ? setTimeout(done, ms) : undefined;
      this.waiters.add(done);
    });
  }

  /** Stops claiming; in-flight executions finish (or are released after the timeout). */
  stop(reason = "stop requested"): void {
    if (this.stopping !== null) return;
    this.stopping = reason;
    this.emit({ event: "stopping", dispatcher: this.name, reason, in_flight: this.inFlight.size });
    this.wake();
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

    const unlisten = this.options.listen ? await this.listen() : null;
    const heartbeat = setInterval(() => void this.heartbeat(), Math.max(this.leaseMs / 3, 100));
    const reaper = setInterval(
      () => void this.reap(),
      Math.min(Math.max(this.leaseMs / 2, 1000), 30_000),
    );
    await this.reap();

    try {
      // Lane 0 claims as a single loop would; while claims come back full, the other lanes
      // claim too, so up to `lanes` claim statements run at once (on separate connections)
      // instead of one after another — what lets the defaults keep up with a backlog.
      const lanes = Math.min(Math.ceil(this.concurrency / this.batch), MAX_CLAIM_LANES);
      const others = Array.from({ length: lanes - 1 }, (_, i) => this.claimLoop(i + 1));
      await this.claimLoop(0);
      this.lanesDone = true;
      this.wake();
      await Promise.all(others);
      await this.drain();
    } finally {
      clearInterval(heartbeat);
      clearInterval(reaper);
      if (unlisten) await unlisten();
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

  /**
   * LISTENs on NOTIFY_CHANNEL (on `listenDb` when given) and returns what undoes it, or null
   * when the dispatcher has to rely on polling — which it then says, once.
   *
   * Through a transaction pooler LISTEN "succeeds" on whichever server connection runs it,
   * which then goes back to the pool: notifications reach another client or no one. So in
   * pooler mode it is not tried at all. Elsewhere a self-test tells: a NOTIFY on a private
   * channel, sent through `db` as enqueue sends its own, must come back within
   * `listenCheckMs`. Until then (and regardless) the dispatcher polls every `pollMs`.
   */
  private async listen(): Promise<(() => Promise<void>) | null> {
    const target = this.options.listenDb ?? this.db;
    const unavailable = (reason: string) =>
      this.emit({
        event: "listen_unavailable",
        dispatcher: this.name,
        channel: NOTIFY_CHANNEL,
        target: target.target,
        reason,
        poll_ms: this.pollMs,
        hint: target.config.dsnSource === "embedded"
          ? undefined
          : "pass --listen-dsn with a direct connection to PostgreSQL to wake at once",
      });
    if (target.config.pooler) {
      unavailable("a transaction pooler gives LISTEN's server connection to other clients");
      return null;
    }
    const subs: Array<{ unlisten(): Promise<void> }> = [];
    let cancelCheck = () => {};
    const unlistenAll = async () => {
      cancelCheck();
      for (const sub of subs.splice(0)) await sub.unlisten().catch(() => {});
    };
    try {
      subs.push(await target.sql.listen(NOTIFY_CHANNEL, () => this.wake()));
      const probe = `seedtask_probe_${crypto.randomUUID().replaceAll("-", "")}`;
      let arrived!: () => void;
      const arrival = new Promise<boolean>((r) => (arrived = () => r(true)));
      const probeSub = await target.sql.listen(probe, () => arrived());
      subs.push(probeSub);
      await guard(this.db, () => this.db.sql`select pg_notify(${probe}, 'self-test')`);
      const waitMs = this.options.listenCheckMs ?? 5000;
      let timer: ReturnType<typeof setTimeout> | undefined;
      const verdict = Promise.race([
        arrival,
        new Promise<boolean | null>((r) => {
          timer = setTimeout(() => r(false), waitMs);
          cancelCheck = () => r(null);
        }),
      ]);
      void verdict.then(async (ok) => {
        clearTimeout(timer);
        if (ok === true) {
          const i = subs.indexOf(probeSub);
          if (i < 0) return; // already unlistened: the dispatcher stopped
          subs.splice(i, 1);
          await probeSub.unlisten().catch(() => {});
          this.emit({
            event: "listening",
            dispatcher: this.name,
            channel: NOTIFY_CHANNEL,
            target: target.target,
          });
        } else if (ok === false) {
          unavailable(`a test notification did not come back within ${waitMs / 1000}s`);
          await unlistenAll();
        }
      });
    } catch (err) {
      await unlistenAll();
      this.emit({
        event: "error",
        dispatcher: this.name,
        message: `LISTEN ${NOTIFY_CHANNEL} failed, polling every ${
          formatDuration(this.pollMs)
        } instead: ${mapDbError(err, target).message}`,
      });
      return null;
    }
    return unlistenAll;
  }

  private async claimLoop(lane: number): Promise<void> {
    let errorDelay = 0;
    while (this.stopping === null && !(lane > 0 && this.lanesDone)) {
      const free = this.concurrency - this.executing - this.reserved;
      let wanted = 0;
      let claimed = 0;
      if (free > 0 && (lane === 0 || this.backlog)) {
        wanted = Math.min(this.batch, free);
        this.reserved += wanted;
        let tasks: Task[];
        try {
          tasks = await claimTasks(this.db, {
            owner: this.name,
            limit: wanted,
            leaseMs: this.leaseMs,
            types: this.types,
          });
          errorDelay = 0;
        } catch (err) {
          this.reserved -= wanted;
          this.backlog = false;
          // The database is unreachable or busy: back off and keep trying (up to the poll).
          errorDelay = Math.min(Math.max(errorDelay * 2, 100), Math.max(this.pollMs, 1000));
          this.emit({
            event: "error",
            dispatcher: this.name,
            message: `Claim failed: ${(err as Error).message}`,
          });
          await this.waitForWake(lane === 0 ? errorDelay : Infinity);
          continue;
        }
        this.reserved -= wanted;
        claimed = tasks.length;
        for (const task of tasks) this.start(task);
        const full = claimed === wanted;
        if (full && !this.backlog) this.wake(); // bring the other lanes in
        this.backlog = full;
      }
      if (
        lane === 0 && this.options.once && claimed === 0 && this.inFlight.size === 0 &&
        this.reserved === 0
      ) return;
      // A full batch suggests more is waiting: claim again at once while slots are free.
      if (
        claimed > 0 && claimed === wanted &&
        this.executing + this.reserved < this.concurrency
      ) continue;
      await this.waitForWake(
        lane > 0
          ? Infinity // the other lanes only follow a backlog; a wake brings them back
          : this.executing >= this.concurrency || (this.options.once && claimed === 0)
          ? 60_000 // a finishing task wakes us
          : this.pollMs,
      );
    }
  }

  private start(task: Task): void {
    this.stats.claimed++;
    this.options.metrics?.claimed.inc();
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
    this.executing++;
    this.options.metrics?.inFlight.set(this.inFlight.size);
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
        this.options.metrics?.inFlight.set(this.inFlight.size);
        this.wake();
      });
  }

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
      this.executing--;
      this.wake();
    }
    if (entry.abandoned) return;
    entry.finishing = true;
    if (result.success) {
      const completed = await this.complete(entry.claim, result.result);
      if (completed === undefined) return;
      if (completed) {
        this.stats.completed++;
        this.options.metrics?.completed.inc();
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
    const outcome = await this.persist(
      task.id,
      () =>
        failTask(this.db, entry.claim, result.error, { maxAttempts: this.maxAttempts, delayMs }),
    );
    if (outcome === undefined) return;
    if (outcome === null) return await this.refused(task.id, "failure");
    if (outcome.outcome === "retry") {
      this.stats.retried++;
      this.options.metrics?.retried.inc();
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
      if (!this.options.once) setTimeout(() => this.wake(), delayMs + 5);
    } else {
      this.stats.failed++;
      this.options.metrics?.failed.inc();
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

  /**
   * Queues a completion; the completions that arrive in the same turn of the event loop are
   * written by one statement, so a batch of short tasks costs one round trip instead of one
   * each. Resolves true when recorded, false when refused, undefined when the database
   * could not be reached.
   */
  private complete(claim: Claimed, result: unknown): Promise<boolean | undefined> {
    return new Promise((done) => {
      this.completions.push({ claim, result, done });
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        setTimeout(() => void this.flushCompletions(), 0);
      }
    });
  }

  private async flushCompletions(): Promise<void> {
    this.flushScheduled = false;
    const batch = this.completions.splice(0, 256);
    if (this.completions.length > 0) {
      this.flushScheduled = true;
      setTimeout(() => void this.flushCompletions(), 0);
    }
    const ids = await this.persist(
      batch[0]!.claim.id,
      () => completeTasks(this.db, this.name, batch),
    );
    for (const item of batch) item.done(ids === undefined ? undefined : ids.has(item.claim.id));
  }

  /** Writes a result, retrying briefly if the database blips. `undefined` if it never could. */
  private async persist<T>(taskId: string, write: () => Promise<T>): Promise<T | undefined> {
    for (let attempt = 0;; attempt++) {
      try {
        return await write();
      } catch (err) {
        if (attempt === 3) {
          this.emit({
            event: "error",
            dispatcher: this.name,
            task_id: taskId,
            message: `Could not record the result (${(err as Error).message}); the lease will ` +
              "expire and the task will be retried",
          });
          return undefined;
        }
        await sleep(250 * 2 ** attempt);
      }
    }
  }

  private async refused(taskId: string, what: string): Promise<void> {
    this.stats.refused++;
    let reason = "the task is no longer running under this dispatcher";
    try {
      const [row] = await this.db.sql`
        select status, locked_by from ${this.db.sql(this.db.table)} where id = ${taskId}`;
      if (!row) reason = "the task was deleted";
      else if (row.status !== "running") reason = `the task is now "${row.status}"`;
      else reason = `the task is now held by ${row.locked_by}`;
    } catch { /* keep the generic reason */ }
    this.emit({ event: "refused", task_id: taskId, outcome: what, reason });
  }

  private async heartbeat(): Promise<void> {
    const ids = [...this.inFlight.values()].filter((e) => !e.finishing && !e.abandoned && !e.lost)
      .map((e) => e.task.id);
    if (ids.length === 0) return;
    let held: Set<string>;
    try {
      held = await renewLeases(this.db, this.name, ids, this.leaseMs);
    } catch (err) {
      this.emit({
        event: "error",
        dispatcher: this.name,
        message: `Heartbeat failed: ${(err as Error).message}`,
      });
      return;
    }
    for (const id of ids) {
      const entry = this.inFlight.get(id);
      if (held.has(id) || !entry || entry.finishing) continue;
      // Cancelled with --force, or reaped: stop the work, its result would be refused anyway.
      // Once: the execution may take a while to stop (a command's kill grace).
      entry.lost = true;
      this.emit({ event: "lease_lost", task_id: id });
      entry.controller.abort();
    }
  }

  private async reap(): Promise<void> {
    try {
      const reaped = await requeueStale(this.db, {
        leaseOnly: true,
        maxAttempts: this.maxAttempts,
        actor: this.name,
      });
      for (const r of reaped) {
        this.stats.reaped++;
        this.options.metrics?.reaped.inc();
        this.emit({
          event: "reaped",
          task_id: r.task.id,
          outcome: r.outcome,
          previous_owner: r.previous_owner,
        });
      }
      if (reaped.some((r) => r.outcome === "retry")) this.wake();
    } catch (err) {
      this.emit({
        event: "error",
        dispatcher: this.name,
        message: `Reaper failed: ${(err as Error).message}`,
      });
    }
  }

  /** After the claim loop: wait for in-flight work, then release what is left. */
  private async drain(): Promise<void> {
    if (this.inFlight.size === 0) return;
    const all = Promise.all([...this.inFlight.values()].map((e) => e.done));
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      all,
      new Promise<void>((r) => (timer = setTimeout(r, this.shutdownTimeoutMs))),
    ]);
    clearTimeout(timer);
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
      for (const t of released) {
        this.stats.released++;
        this.emit({ event: "released", task_id: t.id });
      }
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
    await Promise.race([all, sleep(2000 + (this.executor.stopTimeoutMs ?? 0))]);
  }
}

/** Creates a dispatcher; see {@link Dispatcher}. */
export function createDispatcher(options: DispatcherOptions): Dispatcher {
  return new Dispatcher(options);
}
