/**
 * The request log of `serve`, written in order by one writer at a time, that can never hold the
 * process hostage: when the output is slower than the requests (a terminal, a pipe nobody
 * reads, a stalled log collector), at most `maxPending` lines wait; further lines are dropped
 * and counted. The count is logged as a line of its own once the output takes lines again (at
 * most once per `reportEveryMs`, and at {@link LineLog.flush}), and is exported in /metrics.
 *
 * Lines that pile up while a write is in progress go out together in the next write, so a fast
 * output (a file) keeps up with tens of thousands of requests a second.
 */

/** Default bound on lines waiting for the output (a few hundred KiB). */
export const MAX_PENDING_LINES = 4096;

/** What /metrics reports about the log. */
export interface LogCounters {
  /** Lines dropped so far because the output did not keep up. */
  readonly dropped: number;
  /** Lines waiting for the output (at most the bound). */
  readonly pending: number;
}

export interface LineLogOptions {
  /** Most lines waiting for the output, including those being written. */
  maxPending?: number;
  /** Least time between two "dropped N log lines" lines, ms (default 10 s). */
  reportEveryMs?: number;
  now?: () => number;
}

export class LineLog implements LogCounters {
  readonly maxPending: number;
  private readonly reportEveryMs: number;
  private readonly now: () => number;
  private queue: string[] = [];
  private writingLines = 0;
  private writing = false;
  private droppedTotal = 0;
  private unreported = 0;
  private lastReport = Number.NEGATIVE_INFINITY;
  private reportTimer: ReturnType<typeof setTimeout> | undefined;
  private idle: (() => void)[] = [];

  /** `write` receives one or more newline-terminated lines; it is never called concurrently. */
  constructor(
    private readonly write: (text: string) => Promise<void>,
    options: LineLogOptions = {},
  ) {
    this.maxPending = Math.max(1, options.maxPending ?? MAX_PENDING_LINES);
    this.reportEveryMs = options.reportEveryMs ?? 10_000;
    this.now = options.now ?? Date.now;
  }

  get dropped(): number {
    return this.droppedTotal;
  }

  get pending(): number {
    return this.queue.length + this.writingLines;
  }

  /** Queues one line (without its newline), or drops and counts it when the bound is reached. */
  line(text: string): void {
    if (this.pending >= this.maxPending) {
      this.droppedTotal++;
      this.unreported++;
      this.scheduleReport();
      return;
    }
    this.queue.push(text);
    this.pump();
  }

  /**
   * Writes what is pending, with the count of dropped lines, waiting at most `timeoutMs` for a
   * slow output. Resolves with whether everything was written.
   */
  async flush(timeoutMs = 2000): Promise<boolean> {
    if (this.unreported > 0) this.lastReport = Number.NEGATIVE_INFINITY;
    this.pump();
    if (!this.writing) return true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const done = await Promise.race([
      new Promise<boolean>((resolve) => this.idle.push(() => resolve(true))),
      new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs))),
    ]);
    clearTimeout(timer);
    return done;
  }

  /** Stops the report timer (the process is ending). */
  close(): void {
    clearTimeout(this.reportTimer);
    this.reportTimer = undefined;
  }

  private scheduleReport(): void {
    if (this.reportTimer !== undefined) return;
    const wait = Math.max(0, this.lastReport + this.reportEveryMs - this.now());
    const timer = setTimeout(() => {
      this.reportTimer = undefined;
      this.pump();
    }, wait);
    // A pending report must not keep a finished server alive.
    Deno.unrefTimer(timer);
    this.reportTimer = timer;
  }

  /** The "dropped N log lines" line when one is due. */
  private takeReport(): string | undefined {
    if (this.unreported === 0) return undefined;
    const now = this.now();
    if (now - this.lastReport < this.reportEveryMs) {
      this.scheduleReport();
      return undefined;
    }
    const line = `${new Date(now).toISOString()} dropped ${this.unreported} log line${
      this.unreported === 1 ? "" : "s"
    }: the output did not keep up`;
    this.unreported = 0;
    this.lastReport = now;
    return line;
  }

  private pump(): void {
    if (this.writing) return;
    this.writing = true;
    void (async () => {
      while (true) {
        const batch = this.queue;
        this.queue = [];
        this.writingLines = batch.length;
        const report = this.takeReport();
        if (report !== undefined) batch.unshift(report);
        if (batch.length === 0) break;
        try {
          await this.write(batch.join("\n") + "\n");
        } catch {
          // An output that fails is one that did not keep up: count what it lost.
          this.droppedTotal += this.writingLines;
          this.unreported += this.writingLines;
        }
        this.writingLines = 0;
      }
      this.writingLines = 0;
      this.writing = false;
      for (const resolve of this.idle.splice(0)) resolve();
    })();
  }
}
