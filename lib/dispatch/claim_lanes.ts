import { claimTasks } from "./claim_tasks.ts";
import type { Db } from "../db.ts";
import type { DispatchEvent } from "./events.ts";
import type { RunScope } from "./run_scope.ts";
import type { Task } from "../table/contract.ts";

/** Most claim statements one dispatcher runs at once (see {@link ClaimLanes}). */
const MAX_CLAIM_LANES = 4;

/** What {@link ClaimLanes} needs from its dispatcher. */
export interface ClaimLanesOptions {
  db: Db;
  /** Written to locked_by and owner_id. */
  owner: string;
  concurrency: number;
  batch: number;
  leaseMs: number;
  types?: readonly string[];
  pollMs: number;
  /** Return once nothing is claimable and nothing is in flight. */
  once: boolean;
  scope: RunScope;
  /** Starts the execution of a claimed task; its slot is taken until `slotFreed()`. */
  start(task: Task): void;
  /** Executions whose result is not recorded yet: `once` returns only when none is left. */
  inFlight(): number;
  emit(event: DispatchEvent): void;
}

/**
 * Claiming with slot accounting. `concurrency` bounds the handlers running at once
 * (`executing`); a claim statement reserves the slots it may fill before it runs (`reserved`),
 * so concurrent claims never overfill them.
 *
 * Lane 0 claims as a single loop would; while claims come back full (a backlog), the other
 * lanes claim too, so up to min(concurrency / batch, 4) claim statements run at once (on
 * separate connections) instead of one after another — what lets the defaults keep up with a
 * backlog. Idle, lane 0 waits for a wake (a NOTIFY, a freed slot, a retry coming due) or the
 * poll interval; the other lanes wait for a wake only.
 */
export class ClaimLanes {
  /** Handlers running now: what `concurrency` bounds. */
  #executing = 0;
  /** Slots promised to claim statements still in flight. */
  #reserved = 0;
  /** The last claim came back full: more is waiting, so every claim lane works. */
  #backlog = false;
  /** The first lane has returned: the others follow. */
  #lanesDone = false;
  #stopping = false;
  /** Counts wake()s; each lane remembers the count it has seen, so none misses a wake. */
  #wakes = 0;
  readonly #seen: number[] = [];
  readonly #waiters = new Set<() => void>();

  constructor(private readonly o: ClaimLanesOptions) {}

  /** Wakes the waiting lanes (new task notified, a slot freed, a retry became due). */
  wake(): void {
    this.#wakes++;
    for (const waiter of [...this.#waiters]) waiter();
  }

  /** No more claims: the lanes return once their current claim is done. */
  stop(): void {
    this.#stopping = true;
    this.wake();
  }

  /** A handler returned: its slot is free for the next claim. */
  slotFreed(): void {
    this.#executing--;
    this.wake();
  }

  /** Claims until `stop()` (or, with `once`, until nothing is claimable or in flight). */
  async run(): Promise<void> {
    const { concurrency, batch } = this.o;
    const lanes = Math.min(Math.ceil(concurrency / batch), MAX_CLAIM_LANES);
    const others = Array.from({ length: lanes - 1 }, (_, i) => this.#claimLoop(i + 1));
    await this.#claimLoop(0);
    this.#lanesDone = true;
    this.wake();
    await Promise.all(others);
  }

  async #claimLoop(lane: number): Promise<void> {
    const o = this.o;
    let errorDelay = 0;
    while (!this.#stopping && !(lane > 0 && this.#lanesDone)) {
      const free = o.concurrency - this.#executing - this.#reserved;
      let wanted = 0;
      let claimed = 0;
      if (free > 0 && (lane === 0 || this.#backlog)) {
        wanted = Math.min(o.batch, free);
        this.#reserved += wanted;
        let tasks: Task[];
        try {
          tasks = await claimTasks(o.db, {
            owner: o.owner,
            limit: wanted,
            leaseMs: o.leaseMs,
            types: o.types,
          });
          errorDelay = 0;
        } catch (err) {
          this.#reserved -= wanted;
          this.#backlog = false;
          // The database is unreachable or busy: back off and keep trying (up to the poll).
          errorDelay = Math.min(Math.max(errorDelay * 2, 100), Math.max(o.pollMs, 1000));
          o.emit({
            event: "error",
            dispatcher: o.owner,
            message: `Claim failed: ${(err as Error).message}`,
          });
          await this.#waitForWake(lane, lane === 0 ? errorDelay : Infinity);
          continue;
        }
        this.#reserved -= wanted;
        claimed = tasks.length;
        for (const task of tasks) {
          this.#executing++;
          o.start(task);
        }
        const full = claimed === wanted;
        if (full && !this.#backlog) this.wake(); // bring the other lanes in
        this.#backlog = full;
      }
      if (
        lane === 0 && o.once && claimed === 0 && o.inFlight() === 0 && this.#reserved === 0
      ) return;
      // A full batch suggests more is waiting: claim again at once while slots are free.
      if (
        claimed > 0 && claimed === wanted &&
        this.#executing + this.#reserved < o.concurrency
      ) continue;
      await this.#waitForWake(
        lane,
        lane > 0
          ? Infinity // the other lanes only follow a backlog; a wake brings them back
          : this.#executing >= o.concurrency || (o.once && claimed === 0)
          ? 60_000 // a finishing task wakes us
          : o.pollMs,
      );
    }
  }

  /**
   * Resolves on the next wake(), or after `ms` (never, for Infinity) — at once when a wake
   * came while this lane was busy (a stop during its claim must not wait for the poll).
   */
  #waitForWake(lane: number, ms: number): Promise<void> {
    if ((this.#seen[lane] ?? 0) !== this.#wakes) {
      this.#seen[lane] = this.#wakes;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const done = () => {
        this.o.scope.clear(timer);
        this.#waiters.delete(done);
        this.#seen[lane] = this.#wakes;
        resolve();
      };
      const timer = Number.isFinite(ms) ? this.o.scope.timeout(done, ms) : undefined;
      this.#waiters.add(done);
    });
  }
}
