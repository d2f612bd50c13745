import type { Db } from "../db.ts";
import type { DispatchEvent } from "./events.ts";
import { renewLeases } from "./finish_task.ts";
import { requeueStale } from "../ops/requeue_stale.ts";
import type { RunScope } from "./run_scope.ts";
import type { WorkerRegistry } from "./worker_registry.ts";

/** What the lease keeper sees of an execution in flight. */
export interface LeasedExecution {
  readonly task: { readonly id: string };
  /** Its result is being written: a missing lease now means we finished it, not lost it. */
  readonly finishing: boolean;
  /** Released at shutdown: its lease is not ours any more. */
  readonly abandoned: boolean;
  /** A heartbeat found it no longer ours: reported once, its execution aborted. */
  lost: boolean;
  readonly controller: AbortController;
}

/** What {@link LeaseKeeper} needs from its dispatcher. */
export interface LeaseKeeperOptions {
  db: Db;
  /** The dispatcher's name: the owner of its leases, the actor of its reaper. */
  owner: string;
  leaseMs: number;
  maxAttempts: number;
  scope: RunScope;
  /** The executions in flight, by task id. */
  inFlight: ReadonlyMap<string, LeasedExecution>;
  emit(event: DispatchEvent): void;
  /** The reaper made tasks claimable again. */
  wake(): void;
  /** The dispatcher's row in `seedtask_workers`, refreshed with every heartbeat. */
  registry?: WorkerRegistry;
}

/**
 * Keeps one dispatcher's leases, and returns expired ones. The heartbeat renews the lease of
 * every execution in flight each third of the lease; one that is no longer ours (cancelled
 * with --force, or reaped) is reported once and its execution aborted. The reaper, every half
 * lease (between 1s and 30s), returns running tasks whose lease expired — another dispatcher's
 * that died — to retry, or to failed once they used their attempts. Each heartbeat also
 * refreshes the dispatcher's registry row, in flight or idle: a worker not heard from within
 * its lease is one that died (`seedtask workers`).
 */
export class LeaseKeeper {
  #stopTimers: Array<() => void> = [];

  constructor(private readonly o: LeaseKeeperOptions) {}

  /** Starts the heartbeat and the reaper; resolves after a first reap. */
  async start(): Promise<void> {
    const { scope, leaseMs } = this.o;
    this.#stopTimers = [
      scope.interval(() => {
        scope.spawn(() => this.#heartbeat());
        scope.spawn(() => this.#register());
      }, Math.max(leaseMs / 3, 100)),
      scope.interval(
        () => scope.spawn(() => this.#reap()),
        Math.min(Math.max(leaseMs / 2, 1000), 30_000),
      ),
    ];
    await this.#reap();
  }

  /** Stops the heartbeat and the reaper (a heartbeat or reap under way finishes). */
  stop(): void {
    for (const stop of this.#stopTimers.splice(0)) stop();
  }

  async #heartbeat(): Promise<void> {
    const { db, owner, leaseMs, inFlight, emit } = this.o;
    const ids = [...inFlight.values()].filter((e) => !e.finishing && !e.abandoned && !e.lost)
      .map((e) => e.task.id);
    if (ids.length === 0) return;
    let held: Set<string>;
    try {
      held = await renewLeases(db, owner, ids, leaseMs);
    } catch (err) {
      emit({
        event: "error",
        dispatcher: owner,
        message: `Heartbeat failed: ${(err as Error).message}`,
      });
      return;
    }
    for (const id of ids) {
      const entry = inFlight.get(id);
      if (held.has(id) || !entry || entry.finishing || entry.abandoned || entry.lost) continue;
      // Cancelled with --force, or reaped: stop the work, its result would be refused anyway.
      // Once: the execution may take a while to stop (a command's kill grace).
      entry.lost = true;
      emit({ event: "lease_lost", task_id: id });
      entry.controller.abort();
    }
  }

  async #register(): Promise<void> {
    try {
      await this.o.registry?.beat();
    } catch (err) {
      this.o.emit({
        event: "error",
        dispatcher: this.o.owner,
        message: `Worker registry heartbeat failed: ${(err as Error).message}`,
      });
    }
  }

  async #reap(): Promise<void> {
    const { db, owner, maxAttempts, emit } = this.o;
    try {
      const reaped = await requeueStale(db, { leaseOnly: true, maxAttempts, actor: owner });
      for (const r of reaped) {
        emit({
          event: "reaped",
          task_id: r.task.id,
          outcome: r.outcome,
          previous_owner: r.previous_owner,
        });
      }
      if (reaped.some((r) => r.outcome === "retry")) this.o.wake();
    } catch (err) {
      emit({
        event: "error",
        dispatcher: owner,
        message: `Reaper failed: ${(err as Error).message}`,
      });
    }
  }
}
