import { type ConfigFlags, resolveConfig } from "./config.ts";
import { connect, type Db, guard } from "./db.ts";
import { TaskNotFoundError } from "./errors.ts";
import { formatStatistics } from "./format/stats.ts";
import { type DisplayOptions, formatTaskDetails } from "./format/tasks.ts";
import { getTask } from "./queries/get_task.ts";
import { type ListFilter, listTasks, type TaskPage } from "./queries/list_tasks.ts";
import { getTaskStatistics, type StatsOptions, type TaskStatistics } from "./queries/task_stats.ts";
import type { Task } from "./table/contract.ts";

/** Options of {@link TaskTableHelper.connect}. */
export interface HelperOptions {
  /** postgres:// URL. Default: PG_DSN, then SEEDCORE_PG_DSN, then the seed's default. */
  dsn?: string;
  /** Task table, optionally schema-qualified. Default `tasks`. */
  table?: string;
  /** Statement timeout such as `30s` (default) or `0` for none. */
  statementTimeout?: string;
  /** Named prepared statements. Default: on, off in pooler mode. */
  prepare?: boolean;
  /**
   * The DSN is a transaction-pooling pooler such as PgBouncer: no session state (see the
   * README's PgBouncer section). Default: SEEDTASK_POOLER, else off; `prepare: false` implies it.
   */
  pooler?: boolean;
  /** Environment to read PG_DSN / SEEDCORE_PG_DSN from. Default: the process environment. */
  env?: Record<string, string | undefined>;
}

function processEnv(): Record<string, string | undefined> {
  try {
    return Deno.env.toObject();
  } catch {
    return {}; // no --allow-env: fall back to the explicit dsn or the default
  }
}

/**
 * The programmatic API over a task table — the seed's `TaskTableHelper`, in TypeScript.
 *
 * @example
 * ```ts
 * import { TaskTableHelper } from "./lib/mod.ts";
 *
 * await using helper = await TaskTableHelper.connect({ dsn: "postgres://postgres@localhost/seedcore" });
 * const running = await helper.listTasks({ statuses: ["running"] });
 * const task = await helper.getTaskById(running[0]!.id.slice(0, 8));
 * if (task) helper.printTaskDetails(task);
 * helper.printStatistics(await helper.getTaskStatistics());
 * ```
 */
export class TaskTableHelper implements AsyncDisposable {
  /** The underlying connection, for the lower-level functions exported by lib/mod.ts. */
  readonly db: Db;

  private constructor(db: Db) {
    this.db = db;
  }

  /** Connects and checks the server answers, so a bad DSN fails here and not later. */
  static async connect(options: HelperOptions = {}): Promise<TaskTableHelper> {
    const flags: ConfigFlags = {
      dsn: options.dsn,
      table: options.table,
      statementTimeout: options.statementTimeout,
      prepare: options.prepare,
      pooler: options.pooler,
    };
    const db = connect(resolveConfig(flags, options.env ?? processEnv()));
    try {
      await guard(db, () => db.sql`select 1`);
    } catch (err) {
      await db.close();
      throw err;
    }
    return new TaskTableHelper(db);
  }

  /** Wraps an existing connection (e.g. one opened with `connect()` from lib/db.ts). */
  static fromDb(db: Db): TaskTableHelper {
    return new TaskTableHelper(db);
  }

  /**
   * Tasks newest first, filtered like `seedtask list`.
   * @example const failed = await helper.listTasks({ statuses: ["failed"], type: "graph_embed" });
   */
  async listTasks(filter: ListFilter = {}): Promise<Task[]> {
    return (await listTasks(this.db, filter)).items;
  }

  /** One page with its `next_cursor`, for walking a large result. */
  listTasksPage(filter: ListFilter = {}): Promise<TaskPage> {
    return listTasks(this.db, filter);
  }

  /**
   * A task by full id or unique prefix; null when none matches (as the seed's helper).
   * An ambiguous prefix throws AmbiguousTaskIdError listing the candidates.
   * @example const task = await helper.getTaskById("1a2b3c4d");
   */
  async getTaskById(id: string): Promise<Task | null> {
    try {
      return await getTask(this.db, id);
    } catch (err) {
      if (err instanceof TaskNotFoundError) return null;
      throw err;
    }
  }

  /**
   * The statistics of `seedtask stats --json`.
   * @example const { status_counts, queue } = await helper.getTaskStatistics({ days: 3 });
   */
  getTaskStatistics(options: StatsOptions = {}): Promise<TaskStatistics> {
    return getTaskStatistics(this.db, options);
  }

  /** The `seedtask show` text of a task. */
  formatTaskDetails(task: Task, options: DisplayOptions = {}): string {
    return formatTaskDetails(task, options);
  }

  /** Prints {@link formatTaskDetails} to stdout. */
  printTaskDetails(task: Task, options: DisplayOptions = {}): void {
    // deno-lint-ignore no-console -- printing is this method's purpose (the seed's API)
    console.log(formatTaskDetails(task, options).trimEnd());
  }

  /** The `seedtask stats` report as text. */
  formatStatistics(stats: TaskStatistics, options: DisplayOptions = {}): string {
    return formatStatistics(stats, options);
  }

  /** Prints {@link formatStatistics} to stdout. */
  printStatistics(stats: TaskStatistics, options: DisplayOptions = {}): void {
    // deno-lint-ignore no-console -- printing is this method's purpose (the seed's API)
    console.log(formatStatistics(stats, options).trimEnd());
  }

  /** Closes the pool. Called automatically by `await using`. */
  close(): Promise<void> {
    return this.db.close();
  }

  /** Closes the pool; called by `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
