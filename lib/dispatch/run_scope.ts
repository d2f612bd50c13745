type Timer = ReturnType<typeof setTimeout>;

/**
 * Everything one dispatcher run starts in the background — timers, intervals and work nobody
 * awaits at once (a heartbeat, a completion flush) — so that `close()` ends it all and the
 * run leaves nothing behind in a library user's process. Every timer of the dispatcher goes
 * through here; none is created after `close()`.
 */
export class RunScope {
  readonly #timers = new Set<Timer>();
  readonly #intervals = new Set<ReturnType<typeof setInterval>>();
  readonly #work = new Set<Promise<void>>();
  readonly #controller = new AbortController();
  #failure: { err: unknown } | undefined;

  /** Aborted by `close()`: waits of background work (a write's retry backoff) end early. */
  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  get closed(): boolean {
    return this.#controller.signal.aborted;
  }

  /** `setTimeout`, forgotten once it fires, cleared by `close()`; nothing once closed. */
  timeout(fn: () => void, ms: number): Timer | undefined {
    if (this.closed) return undefined;
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      fn();
    }, ms);
    this.#timers.add(timer);
    return timer;
  }

  /** Clears a timer of {@link timeout}. */
  clear(timer: Timer | undefined): void {
    if (timer === undefined) return;
    clearTimeout(timer);
    this.#timers.delete(timer);
  }

  /** `setInterval`, cleared by `close()` or the returned function. */
  interval(fn: () => void, ms: number): () => void {
    if (this.closed) return () => {};
    const interval = setInterval(fn, ms);
    this.#intervals.add(interval);
    return () => {
      clearInterval(interval);
      this.#intervals.delete(interval);
    };
  }

  /**
   * Runs `work` in the background; `close()` waits for it. `work` reports its own failures
   * (as error events): a rejection is a bug, and `close()` rethrows the first one.
   */
  spawn(work: () => Promise<void>): void {
    const running: Promise<void> = work().then(
      () => void this.#work.delete(running),
      (err) => {
        this.#work.delete(running);
        this.#failure ??= { err };
      },
    );
    this.#work.add(running);
  }

  /** Waits for the background work running now (and what it spawns meanwhile). */
  async settle(): Promise<void> {
    while (this.#work.size > 0) await Promise.all(this.#work);
  }

  /** Aborts `signal`, clears every timer and interval, then waits for the background work. */
  async close(): Promise<void> {
    this.#controller.abort();
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    for (const interval of this.#intervals) clearInterval(interval);
    this.#intervals.clear();
    await this.settle();
    if (this.#failure) throw this.#failure.err;
  }
}
