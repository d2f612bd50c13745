/**
 * seedtask's programmatic API: the same functions the CLI and the HTTP server call.
 *
 * @example
 * ```ts
 * import { TaskTableHelper } from "@seedtask/seedtask";
 *
 * await using helper = await TaskTableHelper.connect({ dsn: Deno.env.get("PG_DSN") });
 * const stats = await helper.getTaskStatistics();
 * console.log(stats.status_counts);
 * ```
 *
 * @module
 */
export { type HelperOptions, TaskTableHelper } from "./task_table_helper.ts";
export { connect, type ConnectOptions, type Db, getTableInfo } from "./db.ts";
export type { TableInfo } from "./table/catalog.ts";
export { type ConfigFlags, type ConnectionConfig, resolveConfig } from "./config.ts";
export {
  countTasks,
  type ListFilter,
  listTasks,
  streamTasks,
  type TaskPage,
} from "./queries/list_tasks.ts";
export { countListTotal, listTasksWithTotal, type ListTotal } from "./queries/list_total.ts";
export { getTask } from "./queries/get_task.ts";
export {
  type DayActivity,
  getTaskStatistics,
  type HighAttemptTask,
  type LongRunningTask,
  type StatsOptions,
  type TaskStatistics,
} from "./queries/task_stats.ts";
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
  type ResolvedLatencyOptions,
  type ResolvedThroughputOptions,
  type ThroughputOptions,
  ThroughputOptionsSchema,
} from "./input/history_options.ts";
export {
  checkHealth,
  type CheckMetric,
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
  type Pattern as FingerprintPattern,
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
export {
  FailureGroupsSchema,
  LeasesSchema,
  type ResolvedFailureGroupsOptions,
  type ResolvedLeasesOptions,
  WorkersSchema,
} from "./input/insight.ts";
export {
  type DoctorCheck,
  type DoctorOptions,
  type DoctorReport,
  runDoctor,
} from "./table/doctor.ts";
export {
  migrate,
  type MigrationPlan,
  type MigrationResult,
  migrationScript,
  type MigrationStep,
  planMigration,
} from "./table/migrate.ts";
export { enqueueTask, type NewTask, NOTIFY_CHANNEL } from "./ops/enqueue_task.ts";
export { NEW_TASK_STATUSES } from "./input/new_task.ts";
export {
  BulkEnqueueError,
  type BulkTask,
  DEFAULT_ENQUEUE_BATCH,
  enqueueTasks,
  type EnqueueTasksOptions,
  type EnqueueTasksResult,
  MAX_ENQUEUE_BATCH,
  MAX_ENQUEUE_WRITERS,
  ndjsonTasks,
} from "./ops/enqueue_tasks.ts";
export {
  cancelTasks,
  cancelWhere,
  type FilterPreview,
  previewCancelWhere,
  previewReleaseWhere,
  previewRetryWhere,
  type RefusedTransition,
  releaseCreatedTasks,
  releaseCreatedWhere,
  resolveTaskIds,
  retryTasks,
  retryWhere,
  type TaskFilter,
  type TransitionReport,
} from "./ops/task_transitions.ts";
export {
  countWaiting,
  listPauses,
  MAX_WAITING_COUNT,
  pauseQueue,
  type PauseRequest,
  PausesNotMigratedError,
  type PauseTarget,
  type QueuePause,
  resumeQueue,
} from "./ops/queue_pauses.ts";
export { type RequeuedTask, type RequeueOptions, requeueStale } from "./ops/requeue_stale.ts";
export {
  DEFAULT_PURGE_BATCH,
  previewPurge,
  type PurgeOptions,
  type PurgeResult,
  purgeTasks,
} from "./ops/purge_tasks.ts";
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
export {
  type DisplayOptions,
  formatTaskDetails,
  formatTaskTable,
  type TaskTableOptions,
} from "./format/tasks.ts";
export { formatStatistics } from "./format/stats.ts";
export { type DurationUse, parseDuration } from "./duration.ts";
export { type Naming, parseInput } from "./input/fields.ts";
export { ListFilterSchema, type ParamMatch, type ResolvedListFilter } from "./input/list_filter.ts";
export { type ResolvedStatsOptions, StatsOptionsSchema } from "./input/stats_options.ts";
export {
  type CheckOptions,
  CheckOptionsSchema,
  type MetricName,
  type Threshold,
  type ThresholdKind,
} from "./input/check_thresholds.ts";
export { NewTaskSchema, type ResolvedNewTask } from "./input/new_task.ts";
export { type TransitionOptions, TransitionSchema } from "./input/transition.ts";
export {
  type ContractRow,
  parseStatuses,
  type Task,
  TASK_STATUSES,
  type TaskStatus,
} from "./table/contract.ts";
export { LIST_SORTS, type ListSort } from "./input/cursor.ts";
export * from "./errors.ts";
export { VERSION } from "./version.ts";
