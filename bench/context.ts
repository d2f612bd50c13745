/**
 * What every suite receives: the benchmark database, the run's profile (sizes, repetitions,
 * durations) and the filled tables, built once per size and shared between suites.
 */
import type postgres from "postgres";
import type { Machine } from "./common.ts";
import type { FilledTable } from "./data.ts";

/** Sizes, repetitions and durations of one run. */
export interface Profile {
  /** Table sizes for the queries, list_total and start-up suites. */
  sizes: number[];
  /** Table size of the seedcore suite (SeedCore's schema and indexes only). */
  seedcoreRows: number;
  /** Table size the serve and start-up (ndjson) suites use. */
  serveRows: number;
  /** Seconds per load level (route x connections). */
  serveSeconds: number;
  /** No-op tasks drained per library-level and graphile-worker run. */
  dispatchTasks: number;
  /**
   * No-op tasks drained per `dispatch --exec` run. A process per task is several times
   * slower than an in-process handler, so this is kept well below `dispatchTasks`.
   */
  execTasks: number;
  /** In-process repetitions of each list/show call, bounded by `inProcessBudgetMs`. */
  inProcessReps: number;
  inProcessBudgetMs: number;
  /** Repetitions of spawned processes (CLI and psql) per operation. */
  processReps: number;
  /** Seconds of pgbench per replayed statement. */
  pgbenchSeconds: number;
  /** Tuned [concurrency, batch] settings tried at the library level. */
  tuned: [number, number][];
  /** Enqueue-to-start samples for --listen. */
  listenSamples: number;
  /** Runs per command in the start-up suite. */
  startupRuns: number;
}

export const PROFILES: Record<"quick" | "full", Profile> = {
  quick: {
    sizes: [1_000_000],
    seedcoreRows: 1_000_000,
    serveRows: 1_000_000,
    serveSeconds: 5,
    dispatchTasks: 20_000,
    execTasks: 1_000,
    inProcessReps: 300,
    inProcessBudgetMs: 10_000,
    processReps: 7,
    pgbenchSeconds: 3,
    tuned: [[32, 16], [64, 32]],
    listenSamples: 50,
    startupRuns: 15,
  },
  full: {
    // 1M rows are the quick run's: the full run spends its time on 10M.
    sizes: [10_000_000],
    seedcoreRows: 10_000_000,
    serveRows: 10_000_000,
    serveSeconds: 15,
    dispatchTasks: 50_000,
    execTasks: 3_000,
    inProcessReps: 1000,
    inProcessBudgetMs: 15_000,
    processReps: 10,
    pgbenchSeconds: 5,
    tuned: [[32, 16], [64, 32], [128, 64]],
    listenSamples: 200,
    startupRuns: 20,
  },
};

export interface BenchContext {
  /** The benchmark database (`seedtask_bench`). */
  dsn: string;
  /** An admin connection to it (fixtures, catalog reads; not the code under test). */
  sql: postgres.Sql;
  mode: string;
  profile: Profile;
  machine: Machine;
  /** A scratch directory for scripts and logs, removed at the end. */
  tmp: string;
  /** The filled table of `rows` tasks (built on first use, then shared). */
  filled(rows: number): Promise<FilledTable>;
  /** Records in RESULTS.md how a filled table came to be (filled now, or reused). */
  noteFill(f: FilledTable): void;
  /** Schemas created by this run, dropped at the end unless --keep. */
  schemas: Set<string>;
}
