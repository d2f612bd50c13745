import type { Db } from "../db.ts";
import { delay } from "../duration.ts";
import type { DispatchEvent } from "./events.ts";
import { type Claimed, completeTasks } from "./finish_task.ts";
import type { RunScope } from "./run_scope.ts";

/** Most completions one statement writes. */
const MAX_BATCH = 256;

/** Tries of a result write before the dispatcher gives up on it (the lease then expires). */
const WRITE_TRIES = 4;

interface Pending {
  claim: Claimed;
  result: unknown;
  done(ok: boolean | undefined): void;
}

/**
 * Records the results of one dispatcher's executions. Completions that arrive in the same turn
 * of the event loop are written by one statement, so a batch of short tasks costs one round
 * trip instead of one each; every write is retried briefly if the database blips.
 */
export class BatchCompleter {
  #queue: Pending[] = [];
  #flushTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    private readonly db: Db,
    private readonly owner: string,
    private readonly scope: RunScope,
    private readonly emit: (event: DispatchEvent) => void,
  ) {}

  /**
   * Queues a completion. Resolves true when recorded, false when refused (the task is no
   * longer this execution's), undefined when the database could not be reached.
   */
  complete(claim: Claimed, result: unknown): Promise<boolean | undefined> {
    // After the run (which waits for every execution it does not abandon): nothing is written.
    if (this.scope.closed) return Promise.resolve(undefined);
    return new Promise((done) => {
      this.#queue.push({ claim, result, done });
      this.#scheduleFlush();
    });
  }

  /** Writes what is queued now instead of on the next turn (the run is ending). */
  async flushNow(): Promise<void> {
    this.scope.clear(this.#flushTimer);
    this.#flushTimer = undefined;
    while (this.#queue.length > 0) await this.#write(this.#queue.splice(0, MAX_BATCH));
  }

  /**
   * Runs a result write, retrying it briefly (250ms, 500ms, 1s) if the database blips.
   * `undefined`, after an error event, if it never could: the lease will expire and the task
   * will be retried.
   */
  async persist<T>(taskId: string, write: () => Promise<T>): Promise<T | undefined> {
    for (let attempt = 1;; attempt++) {
      try {
        return await write();
      } catch (err) {
        if (attempt < WRITE_TRIES) {
          // Ends early when the run is over: then the lease takes over.
          const waited = await delay(250 * 2 ** (attempt - 1), this.scope.signal)
            .then(() => true, () => false);
          if (waited) continue;
        }
        this.emit({
          event: "error",
          dispatcher: this.owner,
          task_id: taskId,
          message: `Could not record the result (${(err as Error).message}); the lease will ` +
            "expire and the task will be retried",
        });
        return undefined;
      }
    }
  }

  #scheduleFlush(): void {
    if (this.#flushTimer !== undefined) return;
    this.#flushTimer = this.scope.timeout(() => {
      this.#flushTimer = undefined;
      this.scope.spawn(() => this.#flush());
    }, 0);
  }

  async #flush(): Promise<void> {
    const batch = this.#queue.splice(0, MAX_BATCH);
    if (this.#queue.length > 0) this.#scheduleFlush();
    await this.#write(batch);
  }

  async #write(batch: Pending[]): Promise<void> {
    if (batch.length === 0) return;
    const ids = await this.persist(
      batch[0]!.claim.id,
      () => completeTasks(this.db, batch),
    );
    for (const item of batch) item.done(ids === undefined ? undefined : ids.has(item.claim.id));
  }
}
