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
export { formatTaskDetails, formatTaskTable } from "./format_tasks.ts";
export { formatStatistics } from "./format_stats.ts";
export { parseDuration } from "./duration.ts";
export { parseStatuses, type Task, TASK_STATUSES, type TaskStatus } from "./task.ts";
export * from "./errors.ts";
export { VERSION } from "./version.ts";
