/**
 * Admission to database work for `serve`, so that neither a flood of clients nor a database
 * outage can make requests wait without bound:
 *
 * - at most `concurrency` units of database work run at once (the pool size: more would only
 *   queue inside the driver, where a wait has no limit and cannot be taken back);
 * - behind them at most `maxWaiting` requests wait, each at most `maxWaitMs`; beyond either,
 *   the request is shed at once (503, Retry-After);
 * - a circuit opens on the first sign that the database cannot be reached, and while it is open
 *   requests fail at once instead of each discovering the outage on its own; queued requests
 *   are released with the same answer. One request at a time probes the database (`select 1`,
 *   bounded), the first right away and then at most once per `probeEveryMs`; the first success
 *   closes the circuit, so service resumes as soon as the database is back.
 *
 * `server/app.ts` admits a request on uncached routes as one unit (a middleware: one unit covers
 * every query its handler makes, and a shed request costs no handler work), and a shared
 * computation on cached routes as one unit (however many requests wait for it). Nothing in lib/
 * or the CLI goes through the gate: shedding is a server's answer to load, not a library's.
 */
import { ConnectionError, DatabaseError, SeedtaskError } from "../lib/errors.ts";

/**
 * The pool settings `serve` pairs with the gate: a request waits at most 2 s for a new
 * connection, and a pooled connection reconnects at once after a failure — the gate paces
 * attempts (one probe at a time), where the driver's own backoff grows to 20 s and makes the
 * first requests after an outage wait it out.
 */
export const SERVE_CONNECT_OPTIONS = { connectTimeoutS: 2, reconnectBackoffS: 0 } as const;

/** Why a request was refused without touching the database. */
export class ShedError extends SeedtaskError {
  constructor(
    code: "database_unavailable" | "overloaded",
    message: string,
    /** Whole seconds the client should wait before trying again (the Retry-After header). */
    readonly retryAfterS: number,
  ) {
    super(code, message);
  }
}

/**
 * Whether `err` says the database cannot be reached right now (as opposed to a bad query or a
 * missing row): no connection, a lost connection, or a server shutting down, starting up or out
 * of connection slots.
 */
export function isUnavailable(err: unknown): boolean {
  if (err instanceof ShedError) return err.code === "database_unavailable";
  if (err instanceof ConnectionError) return true;
  if (err instanceof DatabaseError && err.sqlState) {
    // 08: connection exception; 57P01-03: admin/crash shutdown, cannot connect now;
    // 53300: too many connections.
    return /^(08|57P0[123]$|53300$)/.test(err.sqlState);
  }
  return false;
}

export interface GateOptions {
  /** Units of database work at once: the pool size. */
  concurrency: number;
  /** Requests that may wait for a unit (default: 10 per unit, at least 64). */
  maxWaiting?: number;
  /** Longest wait for a unit, ms (default 2000). */
  maxWaitMs?: number;
  /** Time between probes while the circuit is open, ms (default 1000). */
  probeEveryMs?: number;
  /** Resolves when the database answers (a bounded `select 1`), rejects otherwise. */
  probe: () => Promise<unknown>;
  now?: () => number;
}

interface Waiter {
  resolve(release: () => void): void;
  reject(err: ShedError): void;
  timer: ReturnType<typeof setTimeout>;
}

export class DbGate {
  readonly concurrency: number;
  readonly maxWaiting: number;
  readonly maxWaitMs: number;
  readonly probeEveryMs: number;
  /** Requests refused, by reason. */
  readonly shed = { database_unavailable: 0, overloaded: 0 };
  private readonly probe: () => Promise<unknown>;
  private readonly now: () => number;
  private active = 0;
  private readonly queue: Waiter[] = [];
  private open = false;
  private nextProbeAt = 0;
  private probing = false;

  constructor(options: GateOptions) {
    this.concurrency = Math.max(1, options.concurrency);
    this.maxWaiting = options.maxWaiting ?? Math.max(64, 10 * this.concurrency);
    this.maxWaitMs = options.maxWaitMs ?? 2000;
    this.probeEveryMs = options.probeEveryMs ?? 1000;
    this.probe = options.probe;
    this.now = options.now ?? Date.now;
  }

  /** Units of work running now. */
  get running(): number {
    return this.active;
  }

  /** Requests waiting for a unit. */
  get waiting(): number {
    return this.queue.length;
  }

  /** Whether requests are being failed fast because the database is known to be down. */
  get circuitOpen(): boolean {
    return this.open;
  }

  /**
   * Lets the caller through unless the database is known to be down. While the circuit is open
   * one caller at a time becomes the probe when one is due; everyone else gets a ShedError.
   */
  async pass(): Promise<void> {
    if (!this.open) return;
    if (this.probing || this.now() < this.nextProbeAt) throw this.unavailable();
    this.probing = true;
    try {
      await this.probe();
    } catch {
      this.nextProbeAt = this.now() + this.probeEveryMs;
      throw this.unavailable();
    } finally {
      this.probing = false;
    }
    this.reachable();
  }

  /**
   * Waits for a unit of database work (after {@link pass}); resolves with its release
   * function. Throws ShedError when the queue is full, the wait runs out, or the circuit opens
   * while waiting.
   */
  async acquire(): Promise<() => void> {
    // Only an open circuit awaits: otherwise a request takes its place in the queue at once.
    if (this.open) await this.pass();
    if (this.active < this.concurrency && this.queue.length === 0) {
      this.active++;
      return this.releaser();
    }
    if (this.queue.length >= this.maxWaiting) {
      throw this.overloaded(`${this.queue.length} requests are already waiting for the database`);
    }
    return await new Promise<() => void>((resolve, reject) => {
      const waiter: Waiter = {
        resolve,
        reject,
        timer: setTimeout(() => {
          const i = this.queue.indexOf(waiter);
          if (i >= 0) this.queue.splice(i, 1);
          reject(this.overloaded(`No database connection was free within ${this.maxWaitMs} ms`));
        }, this.maxWaitMs),
      };
      this.queue.push(waiter);
    });
  }

  /** Runs `fn` as one unit of database work; an outage it runs into opens the circuit. */
  async run<T>(fn: () => Promise<T>): Promise<T> {
    const release = await this.acquire();
    try {
      return await fn();
    } catch (err) {
      this.observe(err);
      throw err;
    } finally {
      release();
    }
  }

  /** Records a failure of database work: one that says the database is down opens the circuit. */
  observe(err: unknown): void {
    if (err instanceof ShedError || !isUnavailable(err) || this.open) return;
    this.open = true;
    // The first probe may go at once: one failed connection is not yet an outage.
    this.nextProbeAt = this.now();
    for (const w of this.queue.splice(0)) {
      clearTimeout(w.timer);
      w.reject(this.unavailable());
    }
  }

  /** The database answered (a probe, or /health's ping): close the circuit. */
  reachable(): void {
    this.open = false;
  }

  /** Retry-After while the circuit is open: until the next probe, at least a second. */
  get retryAfterS(): number {
    return Math.max(1, Math.ceil((this.nextProbeAt - this.now()) / 1000));
  }

  private releaser(): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.active--;
      while (this.active < this.concurrency && this.queue.length > 0) {
        const w = this.queue.shift()!;
        clearTimeout(w.timer);
        this.active++;
        w.resolve(this.releaser());
      }
    };
  }

  private unavailable(): ShedError {
    this.shed.database_unavailable++;
    return new ShedError(
      "database_unavailable",
      "The database is unavailable",
      this.retryAfterS,
    );
  }

  private overloaded(why: string): ShedError {
    this.shed.overloaded++;
    return new ShedError("overloaded", `Too busy: ${why}`, 1);
  }
}
