/**
 * seedtask's programmatic API: the same functions the CLI and the HTTP server call.
 *
 * @example
 * ```ts
 * import { TaskTableHelper } from "./lib/mod.ts";
 *
 * await using helper = await TaskTableHelper.connect({ dsn: Deno.env.get("PG_DSN") });
 * const stats = await helper.getTaskStatistics();
 * console.log(stats.status_counts);
 * ```
 *
 * @module
 */
export { type HelperOptions, TaskTableHelper } from "./task_table_helper.ts";
export { connect, type Db, getTableInfo } from "./db.ts";
export type { TableInfo } from "./table/catalog.ts";
export { type ConnectionConfig, resolveConfig } from "./config.ts";
export {
  countTasks,
  type ListFilter,
  listTasks,
  streamTasks,
  type TaskPage,
} from "./queries/list_tasks.ts";
export { getTask } from "./queries/get_task.ts";
export { getTaskStatistics, type StatsOptions, type TaskStatistics } from "./queries/task_stats.ts";
export { getQueueHealth, type HealthOptions, type QueueHealth } from "./queries/queue_health.ts";
export {
  type Counts,
  getThroughput,
  type Series,
  SETTLE_MS,
  type Throughput,
  type ThroughputBucket,
  ThroughputCache,
} from "./queries/throughput.ts";
export {
  getOverview,
  type Overview,
  type OverviewOptions,
  OverviewOptionsSchema,
  type OverviewStuckTask,
  type TypeQueue,
} from "./queries/overview.ts";
export { getLatency, type Latency, type Percentiles, type TypeLatency } from "./queries/latency.ts";
export {
  type LatencyOptions,
  LatencyOptionsSchema,
  type ThroughputOptions,
  ThroughputOptionsSchema,
} from "./input/history_options.ts";
export {
  checkHealth,
  type CheckResult,
  type CheckState,
  type CheckThresholds,
  parseThreshold,
} from "./queries/check_health.ts";
export {
  type FailureGroup,
  type FailureGroups,
  type FailureGroupsOptions,
  getFailureGroups,
} from "./queries/failure_groups.ts";
export {
  failureGroupId,
  FINGERPRINT_RULES,
  fingerprintError,
  type FingerprintRule,
} from "./queries/fingerprint.ts";
export {
  getLeases,
  type LeaseOwner,
  type LeaseReport,
  type LeasesOptions,
  type LeaseState,
  type StuckTask,
} from "./queries/leases.ts";
export {
  listWorkers,
  type WorkerInfo,
  type WorkerList,
  type WorkersOptions,
} from "./queries/workers.ts";
export { FailureGroupsSchema, LeasesSchema, WorkersSchema } from "./input/insight.ts";
export { type DoctorReport, runDoctor } from "./table/doctor.ts";
export { migrate, type MigrationResult, migrationScript, planMigration } from "./table/migrate.ts";
export { enqueueTask, type NewTask, NOTIFY_CHANNEL } from "./ops/enqueue_task.ts";
export {
  BulkEnqueueError,
  type BulkTask,
  DEFAULT_ENQUEUE_BATCH,
  enqueueTasks,
  type EnqueueTasksOptions,
  type EnqueueTasksResult,
  MAX_ENQUEUE_BATCH,
  ndjsonTasks,
} from "./ops/enqueue_tasks.ts";
export {
  cancelTasks,
  cancelWhere,
  type FilterPreview,
  previewCancelWhere,
  previewReleaseWhere,
  previewRetryWhere,
  releaseCreatedTasks,
  releaseCreatedWhere,
  resolveTaskIds,
  retryTasks,
  retryWhere,
  type TaskFilter,
  type TransitionReport,
} from "./ops/task_transitions.ts";
export { type RequeuedTask, type RequeueOptions, requeueStale } from "./ops/requeue_stale.ts";
export { previewPurge, type PurgeOptions, purgeTasks } from "./ops/purge_tasks.ts";
export { type ClaimOptions, claimTasks } from "./dispatch/claim_tasks.ts";
export {
  type Claimed,
  completeTasks,
  failTask,
  releaseTasks,
  renewLeases,
} from "./dispatch/finish_task.ts";
export {
  createDispatcher,
  Dispatcher,
  type DispatcherOptions,
  type DispatcherStats,
} from "./dispatch/dispatcher.ts";
export { type DispatchEvent, formatEvent } from "./dispatch/events.ts";
export { DispatcherMetrics } from "./dispatch/metrics.ts";
export { executorEnv } from "./dispatch/exec_env.ts";
export {
  commandExecutor,
  type CommandExecutorOptions,
  type ExecutionResult,
  type Executor,
  type HandlerContext,
  handlerExecutor,
  httpExecutor,
  type TaskHandler,
  type TaskPayload,
} from "./dispatch/executors.ts";
export { backoffDelay, type BackoffPolicy, DEFAULT_BACKOFF } from "./dispatch/backoff.ts";
export { formatTaskDetails, formatTaskTable } from "./format/tasks.ts";
export { formatStatistics } from "./format/stats.ts";
export { parseDuration } from "./duration.ts";
export { type Naming, parseInput } from "./input/fields.ts";
export { ListFilterSchema } from "./input/list_filter.ts";
export { StatsOptionsSchema } from "./input/stats_options.ts";
export { type CheckOptions, CheckOptionsSchema } from "./input/check_thresholds.ts";
export { NewTaskSchema } from "./input/new_task.ts";
export { TransitionSchema } from "./input/transition.ts";
export { parseStatuses, type Task, TASK_STATUSES, type TaskStatus } from "./table/contract.ts";
export * from "./errors.ts";
export { VERSION } from "./version.ts";
