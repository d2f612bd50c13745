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
export { connect, type Db, getTableInfo, type TableInfo } from "./db.ts";
export { type ConnectionConfig, resolveConfig } from "./config.ts";
export { type ListFilter, listTasks, streamTasks, type TaskPage } from "./list_tasks.ts";
export { getTask } from "./get_task.ts";
export { getTaskStatistics, type StatsOptions, type TaskStatistics } from "./task_stats.ts";
export { getQueueHealth, type HealthOptions, type QueueHealth } from "./queue_health.ts";
export {
  checkHealth,
  type CheckResult,
  type CheckState,
  type CheckThresholds,
  parseThreshold,
} from "./check_health.ts";
export { type DoctorReport, runDoctor } from "./doctor.ts";
export { migrate, type MigrationResult, migrationScript, planMigration } from "./migrate.ts";
export { enqueueTask, type NewTask, NOTIFY_CHANNEL } from "./enqueue_task.ts";
export {
  cancelTasks,
  cancelWhere,
  previewCancelWhere,
  previewRetryWhere,
  resolveTaskIds,
  retryTasks,
  retryWhere,
  type TaskFilter,
  type TransitionReport,
} from "./task_transitions.ts";
export { type RequeuedTask, type RequeueOptions, requeueStale } from "./requeue_stale.ts";
export { previewPurge, type PurgeOptions, purgeTasks } from "./purge_tasks.ts";
export { type ClaimOptions, claimTasks } from "./claim_tasks.ts";
export { completeTask, failTask, releaseTasks, renewLeases } from "./finish_task.ts";
export {
  createDispatcher,
  Dispatcher,
  type DispatcherOptions,
  type DispatcherStats,
} from "./dispatcher.ts";
export { type DispatchEvent, formatEvent } from "./dispatch_events.ts";
export { DispatcherMetrics } from "./dispatch_metrics.ts";
export { executorEnv } from "./exec_env.ts";
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
} from "./executors.ts";
export { backoffDelay, type BackoffPolicy, DEFAULT_BACKOFF } from "./backoff.ts";
export { formatTaskDetails, formatTaskTable } from "./format_tasks.ts";
export { formatStatistics } from "./format_stats.ts";
export { parseDuration } from "./duration.ts";
export { parseStatuses, type Task, TASK_STATUSES, type TaskStatus } from "./task.ts";
export * from "./errors.ts";
export { VERSION } from "./version.ts";
