/**
 * Bulk enqueue: many tasks in batches, each batch one INSERT statement (all of it or none of
 * it) and at most one NOTIFY. `seedtask enqueue --file` and `POST /tasks/batch` both call
 * {@link enqueueTasks}.
 */
import { type Db, guard, inTransaction, type Sql } from "../db.ts";
import { InvalidInputError, UsageError } from "../errors.ts";
import { parseInput } from "../input/fields.ts";
import { NewTaskSchema, type ResolvedNewTask } from "../input/new_task.ts";
import { NOTIFY_CHANNEL } from "./enqueue_task.ts";

/** Tasks per INSERT when no batch size is given. */
export const DEFAULT_ENQUEUE_BATCH = 1000;

/** Largest batch: one statement's JSON parameter stays well under PostgreSQL's 1 GB limit. */
export const MAX_ENQUEUE_BATCH = 10_000;

/** Most batches {@link enqueueTasks} writes at once (`writers`). */
export const MAX_ENQUEUE_WRITERS = 4;

/** One element of a bulk enqueue: a task in the JSON shape of `POST /tasks`, and where it is. */
export interface BulkTask {
  /** The task as `POST /tasks` takes it (`type`, `params`, `drift_score`, `run_after`, …). */
  task: unknown;
  /** Where it came from, for messages: `line 17`, `[3]`. */
  at: string;
}

/** Options of {@link enqueueTasks}. */
export interface EnqueueTasksOptions {
  /** Tasks per INSERT statement, 1..{@link MAX_ENQUEUE_BATCH}. Default {@link DEFAULT_ENQUEUE_BATCH}. */
  batchSize?: number;
  /** Validate every task and write nothing. */
  dryRun?: boolean;
  /** Return the new ids, in input order (costs memory: meant for bounded inputs). */
  returnIds?: boolean;
  /**
   * Batches written at once, 1..{@link MAX_ENQUEUE_WRITERS}, each in a transaction of its own
   * that commits after the one before it (so what is written is always a prefix of the
   * input). Default 1. At most the pool's connections, and always 1 on the embedded PGlite,
   * whose connections share one session.
   */
  writers?: number;
  /** Called after each written batch with the running total (progress). */
  onBatch?: (enqueued: number) => void;
}

/** What {@link enqueueTasks} did. */
export interface EnqueueTasksResult {
  /** Tasks written (with `dryRun`, tasks that would be: all of them were valid). */
  enqueued: number;
  /** INSERT statements run (0 with `dryRun`). */
  batches: number;
  /** Nothing was written: the run only checked. */
  dry_run: boolean;
  /** The new ids in input order, with `returnIds`. */
  ids?: string[];
}

/**
 * A bad element stopped a bulk enqueue: nothing of its batch was written; the batches before
 * it were (`enqueued` tasks, the input up to `writtenThrough`).
 */
export class BulkEnqueueError extends InvalidInputError {
  /** Where the bad element is (`line 17`, `[3]`), or the batch the database refused. */
  readonly at: string;
  /** Tasks written by the batches before it. */
  readonly enqueued: number;
  /** The last element of the last written batch (`line 1000`); null when none was written. */
  readonly writtenThrough: string | null;
  /** `reason` says what is wrong at `at`; `progress`, what was written before. */
  constructor(
    at: string,
    reason: string,
    progress: { enqueued: number; writtenThrough: string | null; dryRun: boolean },
  ) {
    const { enqueued, writtenThrough, dryRun } = progress;
    super(
      `${at[0]!.toUpperCase()}${at.slice(1)}: ${reason}`,
      dryRun
        ? "dry run: nothing was written"
        : writtenThrough === null
        ? "nothing was written"
        : `earlier batches wrote ${enqueued} task${
          enqueued === 1 ? "" : "s"
        }, through ${writtenThrough}; nothing after that was written`,
    );
    this.at = at;
    this.enqueued = enqueued;
    this.writtenThrough = writtenThrough;
  }

  /** The HTTP body's `error` object, with `at` and `enqueued`. */
  override httpError(): { code: string; message: string; at: string; enqueued: number } {
    return { code: this.code, message: this.message, at: this.at, enqueued: this.enqueued };
  }
}

/** Lowercase first letter: a field rule's message continues the `at` prefix. */
function reasonOf(err: UsageError): string {
  const m = err.message;
  return /^[A-Z][a-z]/.test(m) ? m[0]!.toLowerCase() + m.slice(1) : m;
}

/** `line 3`, `lines 1-1000`, `[0] to [999]`: the elements of a batch. */
function span(first: string, last: string): string {
  if (first === last) return first;
  const a = /^line (\d+)$/.exec(first);
  const b = /^line (\d+)$/.exec(last);
  return a && b ? `lines ${a[1]}-${b[1]}` : `${first} to ${last}`;
}

/** The row as `json_populate_record` reads it: the table's column names. */
function rowOf(t: ResolvedNewTask): Record<string, unknown> {
  return {
    type: t.type,
    params: t.params,
    description: t.description ?? null,
    domain: t.domain ?? null,
    drift_score: t.driftScore,
    run_after: t.runAfter?.toISOString() ?? null,
    status: t.status,
  };
}

/**
 * Enqueues many tasks, in batches: each batch is one INSERT statement, so it is written whole
 * or not at all, and sends one NOTIFY on {@link NOTIFY_CHANNEL} (its payload one of the batch's
 * ids) when it holds a task that is claimable now. Elements are checked by the schema of `POST /tasks` ({@link NewTaskSchema});
 * a bad element (or an error thrown by the iterable itself, such as a line that is not JSON)
 * stops the run with a {@link BulkEnqueueError}: nothing of its batch (or after it) is
 * written, the earlier batches stay (their count is in the error). An input of one batch is
 * therefore all or nothing. With `writers` above 1, batches are written at once but commit in
 * input order, so this holds as well. Memory is bounded by `writers` + 1 batches (plus the ids
 * with `returnIds`).
 *
 * Each batch's rows go to PostgreSQL as one JSON array parameter, read with
 * `json_populate_record` into the table's own row type: the status enum, jsonb and
 * timestamptz conversions are the table's, and a SeedCore table's extra columns keep their
 * defaults.
 *
 * @example
 * const result = await enqueueTasks(db, [
 *   { at: "[0]", task: { type: "graph_embed", params: { id: 1 } } },
 *   { at: "[1]", task: { type: "graph_embed", params: { id: 2 }, status: "created" } },
 * ]);
 * console.log(result.enqueued); // 2
 */
export async function enqueueTasks(
  db: Db,
  tasks: Iterable<BulkTask> | AsyncIterable<BulkTask>,
  options: EnqueueTasksOptions = {},
): Promise<EnqueueTasksResult> {
  const size = options.batchSize ?? DEFAULT_ENQUEUE_BATCH;
  if (!Number.isInteger(size) || size < 1 || size > MAX_ENQUEUE_BATCH) {
    throw new RangeError(`batchSize must be a whole number from 1 to ${MAX_ENQUEUE_BATCH}`);
  }
  const dryRun = options.dryRun ?? false;
  const ids: string[] | undefined = options.returnIds ? [] : undefined;
  let enqueued = 0;
  let batches = 0;
  let batch: ResolvedNewTask[] = [];
  let first = "";
  let last = "";
  let writtenThrough: string | null = null;
  const progress = () => ({ enqueued, writtenThrough, dryRun });

  // While batches are written (up to `writers` at once, each in its own transaction), the next
  // is read and checked: the client's work (JSON, the schema) overlaps the database's (the
  // insert, index maintenance), and with two writers the database's runs on two cores.
  // The embedded PGlite's connections share one session: one writer there, whatever was
  // asked; elsewhere no more than the pool has connections.
  const writers = db.config.dsnSource === "embedded"
    ? 1
    : Math.max(1, Math.min(options.writers ?? 1, MAX_ENQUEUE_WRITERS, db.config.maxConnections));
  const inFlight: Promise<void>[] = [];
  let previous: Promise<void> = Promise.resolve();
  const flush = async () => {
    const rows = batch;
    batch = [];
    if (rows.length === 0) return;
    if (dryRun) {
      enqueued += rows.length;
      return;
    }
    const now = Date.now();
    const notify = rows.some((r) =>
      r.status === "queued" && (r.runAfter === undefined || r.runAfter.getTime() <= now)
    );
    const json = JSON.stringify(rows.map(rowOf));
    while (inFlight.length >= writers) await inFlight.shift();
    const written = write(json, notify, span(first, last), last, previous);
    written.catch(() => {}); // awaited by a later flush or at the end
    inFlight.push(written);
    previous = written;
  };
  const write = async (
    json: string,
    notify: boolean,
    where: string,
    end: string,
    before: Promise<void>,
  ) => {
    let inserted: { count: number; ids?: string[] };
    try {
      inserted = await insertBatch(db, json, notify, ids !== undefined, writers > 1 && before);
    } catch (err) {
      // The batch before settles first: its failure is the one to report, and once it is
      // written the progress in this batch's error counts it.
      const earlier = await before.then(() => undefined, (e: unknown) => e);
      if (earlier !== undefined) throw earlier;
      if (err instanceof UsageError) {
        // A value the database refused (see RejectedValueError): somewhere in this batch.
        throw new BulkEnqueueError(where, reasonOf(err), progress());
      }
      throw err;
    }
    enqueued += inserted.count;
    writtenThrough = end;
    batches++;
    ids?.push(...inserted.ids!);
    options.onBatch?.(enqueued);
  };
  // Every batch in flight has committed or rolled back; the first failure, in input order.
  const settle = async () => {
    const results = await Promise.allSettled(inFlight.splice(0));
    const failed = results.find((r) => r.status === "rejected");
    if (failed) throw (failed as PromiseRejectedResult).reason;
  };

  let at = "";
  try {
    for await (const item of tasks) {
      at = item.at;
      const task = parseInput(NewTaskSchema, item.task);
      if (batch.length === 0) first = item.at;
      last = item.at;
      batch.push(task);
      if (batch.length >= size) await flush();
    }
  } catch (err) {
    await settle(); // the batches being written count as written (or fail first)
    if (err instanceof BulkEnqueueError || !(err instanceof UsageError)) throw err;
    // A bad element, or the source's own complaint (a line that is not JSON): it names itself.
    const where = (err as UsageError & { at?: string }).at ?? at;
    throw new BulkEnqueueError(where, reasonOf(err), progress());
  }
  try {
    await flush();
  } finally {
    await settle();
  }
  return { enqueued, batches, dry_run: dryRun, ...(ids ? { ids } : {}) };
}

/**
 * Inserts one batch (`json`: its rows as {@link rowOf} gives them) in one statement with its
 * NOTIFY, in a transaction that commits only once `before` (the batch before it) has: batches
 * written at once still become visible, and notify, in input order, and a failed batch takes
 * the batches after it down with it (`before` false: one writer, the batch before it is
 * written already). Returns the ids in input order with `withIds`, otherwise
 * only how many rows it wrote: a file of 100,000 tasks need not come back as 100,000 rows for
 * the client to parse.
 *
 * Not COPY FROM STDIN: measured, the server spends as much CPU on this statement as on
 * `psql \copy` of the same rows (index maintenance is nearly all of it), while postgres.js
 * 3.4.9's COPY writable took 5.4-5.9 s for 100 batches of 1000 rows into a table without
 * indexes where this statement took 1.3 s (about 45 ms more per batch, likely the CopyDone
 * message held back by Nagle's algorithm), and never settles when the server refuses the
 * COPY (porsager/postgres#1173): a refused batch would hang the run.
 */
async function insertBatch(
  db: Db,
  json: string,
  notify: boolean,
  withIds: boolean,
  before: Promise<void> | false,
): Promise<{ count: number; ids?: string[] }> {
  const insert = async (sql: Sql) => {
    const table = sql(db.table);
    // One NOTIFY for the batch (an uncorrelated subquery runs once), carrying one of its ids.
    const notified = notify
      ? sql`, (select pg_notify(${NOTIFY_CHANNEL}, min(id::text)) from inserted) as "__notified"`
      : sql``;
    // `with ordinality` keeps the input order, so the ids come back in it.
    const input = sql`
      with input as (
        select r.*, o.n
        from json_array_elements(${json}::text::json)
          with ordinality as o(row, n),
          json_populate_record(null::${table}, o.row) as r
      ), inserted as (
        insert into ${table} (type, params, description, domain, drift_score, run_after, status)
        select type, params, description, domain, drift_score, run_after, status
        from input order by n
        returning id
      )`;
    let result: { count: number; ids?: string[] };
    if (withIds) {
      const rows = await sql<{ id: string }[]>`${input} select id${notified} from inserted`;
      result = { count: rows.length, ids: rows.map((r) => r.id) };
    } else {
      const [row] = await sql<{ count: number }[]>`
        ${input} select (select count(*)::int from inserted) as count${notified}`;
      result = { count: row!.count };
    }
    await before; // commit after the batch before it; roll back if it failed
    return result;
  };
  // In pooler mode guard() runs the operation in a transaction of its own, and db.sql is in it.
  // One writer (`before` false) needs no transaction: the statement is one already, and runs
  // on the pool as any other (`serve` opens no extra connection for POST /tasks/batch).
  return await guard(
    db,
    () => db.config.pooler || before === false ? insert(db.sql) : inTransaction(db, insert),
  );
}

/** Longest line of a tasks file, in bytes: a task's params are at most 1 MiB. */
export const MAX_LINE_BYTES = 2 * 1024 * 1024;

/**
 * The tasks of an ndjson stream (one JSON object per line, blank lines skipped), each named by
 * its line number (`line 17`). A line that is not JSON, or not UTF-8, throws an
 * {@link InvalidInputError} naming it when the iteration reaches it: streamed, so a large file
 * is never held in memory.
 */
export async function* ndjsonTasks(
  stream: ReadableStream<Uint8Array>,
): AsyncGenerator<BulkTask> {
  const decoder = new TextDecoder("utf-8", { fatal: true });
  let buffered = "";
  let line = 0;
  const parseLine = (text: string): BulkTask | undefined => {
    line++;
    const at = `line ${line}`;
    if (text.trim() === "") return undefined;
    try {
      return { at, task: JSON.parse(text) };
    } catch (err) {
      throw Object.assign(
        new InvalidInputError(`not JSON (${(err as Error).message})`),
        { at },
      );
    }
  };
  const reader = stream.getReader();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      let chunk: string;
      try {
        chunk = done ? decoder.decode() : decoder.decode(value, { stream: true });
      } catch {
        throw Object.assign(new InvalidInputError("not valid UTF-8"), { at: `line ${line + 1}` });
      }
      buffered += chunk;
      let start = 0;
      for (let nl = buffered.indexOf("\n"); nl >= 0; nl = buffered.indexOf("\n", start)) {
        const task = parseLine(buffered.slice(start, nl));
        start = nl + 1;
        if (task) yield task;
      }
      buffered = buffered.slice(start);
      if (buffered.length > MAX_LINE_BYTES) {
        throw Object.assign(
          new InvalidInputError(`longer than ${MAX_LINE_BYTES} bytes`),
          { at: `line ${line + 1}` },
        );
      }
      if (done) break;
    }
    const task = parseLine(buffered);
    if (task) yield task;
  } finally {
    reader.releaseLock();
  }
}
