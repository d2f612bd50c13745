/**
 * The reports that the API's routes and the console's panels share. Each is cached under one
 * key, its name and its options, so a report costs one computation per options and TTL, however
 * many requests ask for it (top, the console, monitoring).
 */
import type { Db } from "../lib/db.ts";
import type { FailureGroupsOptions, LeasesOptions, WorkersOptions } from "../lib/input/insight.ts";
import type { LatencyOptions, ThroughputOptions } from "../lib/input/history_options.ts";
import type { ResolvedStatsOptions } from "../lib/input/stats_options.ts";
import { type FailureGroups, getFailureGroups } from "../lib/queries/failure_groups.ts";
import { getLatency, type Latency } from "../lib/queries/latency.ts";
import { getLeases, type LeaseReport } from "../lib/queries/leases.ts";
import { getOverview, type Overview, type OverviewOptions } from "../lib/queries/overview.ts";
import { getTaskStatistics, type TaskStatistics } from "../lib/queries/task_stats.ts";
import { getThroughput, type Throughput, ThroughputCache } from "../lib/queries/throughput.ts";
import { listWorkers, type WorkerList } from "../lib/queries/workers.ts";

/** The cache key of report `name` for `options`. */
export function reportKey(name: string, options: unknown): string {
  return `${name}:${JSON.stringify(options)}`;
}

/** Each shared report: the options it takes and what it answers. */
export interface ReportTypes {
  stats: [ResolvedStatsOptions, TaskStatistics];
  throughput: [ThroughputOptions, Throughput];
  latency: [LatencyOptions, Latency];
  overview: [OverviewOptions, Overview];
  failures: [FailureGroupsOptions, FailureGroups];
  leases: [LeasesOptions, LeaseReport];
  workers: [WorkersOptions, WorkerList];
}

/** Each shared report's function: its options in, the (cached) report out. */
export type Reports = {
  [N in keyof ReportTypes]: (options: ReportTypes[N][0]) => Promise<ReportTypes[N][1]>;
};

/**
 * The shared reports over `db`, each through `cache` (single-flight, TTL). `loadStats` computes
 * `stats` (a test's stand-in, or getTaskStatistics).
 */
export function sharedReports(
  db: Db,
  cache: <T>(key: string, load: () => Promise<T>) => Promise<T>,
  loadStats: (
    db: Db,
    options: ResolvedStatsOptions,
    throughput: ThroughputCache,
  ) => Promise<TaskStatistics> = getTaskStatistics,
): Reports {
  // The closed throughput buckets, counted once for the app's lifetime (see getThroughput).
  const throughputCache = new ThroughputCache();
  const shared = <N extends keyof ReportTypes>(
    name: N,
    load: (options: ReportTypes[N][0]) => Promise<ReportTypes[N][1]>,
  ) =>
  (options: ReportTypes[N][0]) => cache(reportKey(name, options), () => load(options));
  return {
    stats: shared(
      "stats",
      (o) => loadStats(db, o, throughputCache),
    ),
    throughput: shared(
      "throughput",
      (o) => getThroughput(db, o, throughputCache),
    ),
    latency: shared("latency", (o) => getLatency(db, o)),
    overview: shared(
      "overview",
      (o) => getOverview(db, o, throughputCache),
    ),
    failures: shared(
      "failures",
      (o) => getFailureGroups(db, o),
    ),
    leases: shared("leases", (o) => getLeases(db, o)),
    workers: shared("workers", (o) => listWorkers(db, o)),
  };
}
