import { AsyncLocalStorage } from "node:async_hooks";
import postgres from "postgres";
import {
  type ConnectionConfig,
  describeDsn,
  dsnSecrets,
  parseDsn,
  parseTableName,
  scrubSecrets,
} from "./config.ts";
import {
  ConnectionError,
  DatabaseError,
  isUsageError,
  RejectedValueError,
  SeedtaskError,
  TableNotFoundError,
} from "./errors.ts";
import { formatDuration } from "./duration.ts";
import {
  cachedMissingIndexes,
  explainMismatch,
  getCatalog,
  learnMissingIndexes,
  type TableInfo,
  tableInfo,
} from "./table/catalog.ts";

/**
 * The postgres.js tagged-template client (`postgres.Sql` of the npm package `postgres`).
 *
 * @internal An alias of a type from another package, which `deno doc --lint` cannot see as
 * public (denoland/deno#27364).
 */
// deno-lint-ignore ban-types
export type Sql = postgres.Sql<{}>;

/** A connection pool bound to one task table. Every lib function takes this first. */
export interface Db {
  /** The postgres.js client of the pool; tagged templates run queries. */
  readonly sql: Sql;
  /** The table as configured (`tasks` or `schema.tasks`); interpolate with `db.sql(db.table)`. */
  readonly table: string;
  /** The schema part of a schema-qualified `table`, if any. */
  readonly schema?: string;
  /** The table name without its schema. */
  readonly tableName: string;
  /** `host:port/database`, safe to print. */
  readonly target: string;
  /** The settings the pool was opened with (DSN, table, timeouts, pooler mode). */
  readonly config: ConnectionConfig;
  /** Per-connection memo (the table's catalog, see lib/table/catalog.ts). */
  readonly cache: Map<string, unknown>;
  /** Closes every connection of the pool. */
  close(): Promise<void>;
  /** Closes the pool; called by `await using`. */
  [Symbol.asyncDispose](): Promise<void>;
}

/** Options for {@link connect} beyond the connection settings. */
export interface ConnectOptions {
  /** Receives server NOTICE messages (they never go to stdout). */
  onNotice?: (message: string) => void;
  /** Longest wait for a new connection, seconds (default 10). */
  connectTimeoutS?: number;
  /**
   * Pause before a pooled connection reconnects after a failed attempt, seconds. By default the
   * driver's: growing with consecutive failures up to 20 s, which a query that arrives after an
   * outage waits out. `serve` passes 0 and paces reconnects itself (server/db_gate.ts).
   */
  reconnectBackoffS?: number;
  /** Called with the text of every statement sent (tests and benchmarks count them). */
  onQuery?: (query: string) => void;
}

/**
 * Single-connection clients of a Db, used one transaction at a time (see
 * {@link inTransaction}). Not `sql.reserve()` or `sql.begin()`: in postgres.js 3.4.9 a
 * connection that dies in the middle of either crashes the process on the next write, or is
 * lost to the pool for good (porsager/postgres#1208, reproduced here by terminating the
 * backend) — and through a pooler a connection dying is routine. A one-connection client runs
 * a transaction as plain queries, and after a loss simply reconnects.
 */
interface Lanes {
  dsn: string;
  options: postgres.Options<Record<string, never>>;
  max: number;
  all: Lane[];
  free: Lane[];
  waiting: Array<(lane: Lane) => void>;
}

interface Lane {
  sql: Sql;
  /** Its connection closed since the current transaction began. */
  broken: boolean;
}

const lanes = new WeakMap<Db, Lanes>();

/** Pooler mode: the lane the current lib operation's transaction runs on (see {@link guard}). */
const current = new WeakMap<Db, AsyncLocalStorage<Lane>>();

/**
 * Opens a pool (lazily: the first query connects). `application_name=seedtask` and UTC are
 * sent as startup parameters (PgBouncer tracks both and sets them on whichever server
 * connection it hands out), and so is the statement timeout on a direct connection.
 *
 * In pooler mode (`config.pooler`) the statement timeout cannot be a startup parameter:
 * stock PgBouncer refuses the connection ("unsupported startup parameter"), and with
 * `ignore_startup_parameters` drops it silently. It travels with every transaction instead:
 * {@link guard} runs each lib operation in a transaction that starts by setting it, and
 * `db.sql` sends the operation's queries into that transaction.
 *
 * @example
 * ```ts
 * const db = connect(resolveConfig({ table: "tasks" }, Deno.env.toObject()));
 * try {
 *   const page = await listTasks(db, { statuses: ["failed"], limit: 20 });
 * } finally {
 *   await db.close();
 * }
 * ```
 */
export function connect(config: ConnectionConfig, options: ConnectOptions = {}): Db {
  dropDriverStartupRejections();
  const { schema, name } = parseTableName(config.table);
  const connection: Record<string, string | number> = {
    application_name: "seedtask",
    TimeZone: "UTC",
  };
  if (config.statementTimeoutMs > 0 && !config.pooler) {
    connection.statement_timeout = config.statementTimeoutMs;
  }
  const backoff = options.reconnectBackoffS;
  const poolOptions = {
    ...driverTarget(config.dsn),
    max: config.maxConnections,
    prepare: config.prepare,
    connect_timeout: options.connectTimeoutS ?? 10,
    ...(backoff === undefined ? {} : { backoff: () => backoff }),
    idle_timeout: 60,
    connection,
    onnotice: (n: postgres.Notice) => options.onNotice?.(String(n.message)),
    ...(options.onQuery ? { debug: (_c: number, query: string) => options.onQuery!(query) } : {}),
  };
  // The driver never sees the DSN itself (see driverUrl): host, user and password go in apart.
  const pool = postgres(driverUrl(config.dsn), poolOptions);
  const own: Lanes = {
    dsn: driverUrl(config.dsn),
    options: poolOptions,
    max: config.maxConnections,
    all: [],
    free: [],
    waiting: [],
  };
  const store = config.pooler ? new AsyncLocalStorage<Lane>() : undefined;
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await Promise.all([pool, ...own.all.map((l) => l.sql)].map((s) => s.end({ timeout: 5 })));
  };
  const db: Db = {
    sql: store ? routed(pool, store) : pool,
    table: config.table,
    schema,
    tableName: name,
    target: config.label ?? describeDsn(config.dsn),
    config,
    cache: new Map(),
    close,
    [Symbol.asyncDispose]: close,
  };
  lanes.set(db, own);
  if (store) current.set(db, store);
  return db;
}

/** What `db.sql` sends to the current transaction: queries and their helpers. */
const ROUTED = new Set<PropertyKey>([
  "unsafe",
  "json",
  "array",
  "typed",
  "types",
  "file",
  "notify",
]);

function connectionLostError(): Error {
  return Object.assign(new Error("the connection closed in the middle of a transaction"), {
    code: "CONNECTION_CLOSED",
  });
}

/**
 * The pool as lib functions see it in pooler mode: inside a {@link guard}ed operation, every
 * query (and `sql.unsafe`, `sql.json`, …) goes to that operation's transaction; outside one,
 * to the pool. So lib functions keep writing `db.sql\`...\`` in either mode. Once the
 * transaction's connection has closed, a query would run on a new connection, outside it:
 * it fails instead.
 */
function routed(pool: Sql, store: AsyncLocalStorage<Lane>): Sql {
  const tx = () => {
    const lane = store.getStore();
    if (lane?.broken) throw connectionLostError();
    return lane?.sql as Record<PropertyKey, unknown> & Sql | undefined;
  };
  return new Proxy(pool, {
    apply: (target, self, args) => Reflect.apply(tx() ?? target, self, args),
    get: (target, prop) => {
      const sql = ROUTED.has(prop) ? tx() : undefined;
      return sql ? sql[prop] : Reflect.get(target, prop);
    },
  });
}

/** Runs `fn` on a free lane of `db` (opening one, up to the pool size, or waiting for one). */
async function withLane<T>(db: Db, fn: (lane: Lane) => Promise<T>): Promise<T> {
  const own = lanes.get(db);
  if (!own) throw new TypeError("Not a Db opened by connect()");
  let lane = own.free.pop();
  if (!lane && own.all.length < own.max) {
    const opened: Lane = { sql: undefined as unknown as Sql, broken: false };
    opened.sql = postgres(own.dsn, {
      ...own.options,
      max: 1,
      onclose: () => void (opened.broken = true),
    });
    own.all.push(opened);
    lane = opened;
  }
  lane ??= await new Promise<Lane>((resolve) => own.waiting.push(resolve));
  try {
    return await fn(lane);
  } finally {
    const next = own.waiting.shift();
    if (next) next(lane);
    else own.free.push(lane);
  }
}

/**
 * Runs `fn` in one transaction on a connection of its own, with the statement timeout set for
 * that transaction only (`set_config('statement_timeout', …, true)`), so nothing outlives it
 * on a server connection a pooler hands to someone else. BEGIN and the setting go out as one
 * message, pipelined ahead of `fn`'s first statement: the only extra round trip is COMMIT.
 * A failure rolls back. Used by {@link guard} in pooler mode, and by migrate in both modes.
 */
export async function inTransaction<T>(db: Db, fn: (tx: Sql) => Promise<T>): Promise<T> {
  return await withLane(db, (lane) => transaction(db, lane, () => fn(lane.sql)));
}

async function transaction<T>(db: Db, lane: Lane, fn: () => Promise<T>): Promise<T> {
  lane.broken = false;
  const tx = lane.sql;
  const timeout = Math.trunc(db.config.statementTimeoutMs);
  const begun = tx
    .unsafe(`begin; select set_config('statement_timeout', '${timeout}', true)`)
    .execute();
  begun.catch(() => {}); // a failure here fails fn's first statement too, and is seen below
  try {
    const result = await fn();
    await begun;
    // COMMIT on a new connection would commit nothing: what ran before is rolled back.
    if (lane.broken) throw connectionLostError();
    await tx.unsafe("commit");
    return result;
  } catch (err) {
    // Also takes the stale error postgres.js hands the first query after a lost connection.
    await tx.unsafe("rollback").catch(() => {});
    throw err;
  }
}

/**
 * Runs one statement outside any transaction and, on a direct connection, without a statement
 * timeout (CREATE INDEX CONCURRENTLY on a large table legitimately runs long): the timeout is
 * lifted for the session of a lane and restored after. In pooler mode a session SET would
 * stay behind on a server connection other clients get, so the statement runs under the
 * server's own default (`statement_timeout` of the role or database).
 */
export async function runUntimed(db: Db, statement: string): Promise<void> {
  if (db.config.pooler) {
    await db.sql.unsafe(statement).simple();
    return;
  }
  await withLane(db, async ({ sql }) => {
    await sql.unsafe("set statement_timeout = 0");
    try {
      await sql.unsafe(statement).simple();
    } finally {
      await sql.unsafe(`set statement_timeout = ${Math.trunc(db.config.statementTimeoutMs)}`)
        .catch(() => {});
    }
  });
}

/**
 * The DSN's query parameters (sslmode, application_name, …) in a URL with no credentials and
 * no host, for postgres.js to read as it always does. The driver parses its URL with WHATWG
 * URL, which refuses the socket form and quotes the whole DSN, password included, when it
 * fails; so it never sees the DSN itself (see {@link driverTarget}).
 */
function driverUrl(dsn: string): string {
  const params = parseDsn(dsn).params.toString();
  return `postgres:///${params === "" ? "" : `?${params}`}`;
}

/**
 * Host, port, user, password and database from the DSN (parsed and validated by
 * lib/config.ts), as postgres.js options. Left out when the DSN has none, so the driver falls
 * back to PGHOST, PGUSER, … as before. A socket directory is given as a plain string: that is
 * how postgres.js recognises one (it connects to DIR/.s.PGSQL.PORT).
 */
function driverTarget(dsn: string): Record<string, unknown> {
  const p = parseDsn(dsn);
  const target: Record<string, unknown> = {};
  if (p.user !== undefined) target.username = p.user;
  if (p.password !== undefined) target.password = p.password;
  if (p.database !== undefined) target.database = p.database;
  const hosts = p.hosts.filter((h) => h.host !== "");
  if (hosts.length === 1 && hosts[0]!.host.startsWith("/")) {
    target.host = hosts[0]!.host;
    target.port = hosts[0]!.port ?? 5432;
  } else if (hosts.length > 0) {
    target.host = hosts.map((h) => h.host);
    target.port = hosts.map((h) => h.port ?? p.hosts.find((x) => x.port)?.port ?? 5432);
  } else if (p.hosts[0]?.port !== undefined) {
    target.port = p.hosts[0].port;
  }
  return target;
}

let droppingStartupRejections = false;

/**
 * postgres.js 3.4.9 runs a catalog query (the array types) first on every new connection and
 * drops its promise (`ReadyForQuery` -> `fetchArrayTypes()`; upstream issues #279, #1192,
 * #1205). When that query fails — cancelled by a statement timeout shorter than it, or its
 * backend terminated — the same error rejects the query that opened the connection, which
 * guard() maps and reports; but the dropped copy is an unhandled rejection, and Deno ends the
 * process with a stack trace (every CLI command, and `serve` on its first request). Only
 * rejections whose query is that catalog query are dropped here: anything else unhandled
 * still ends the process, as it should.
 */
function dropDriverStartupRejections(): void {
  if (droppingStartupRejections) return;
  droppingStartupRejections = true;
  globalThis.addEventListener("unhandledrejection", (event) => {
    const query = (event.reason as { query?: unknown } | null)?.query;
    if (typeof query === "string" && /\bb\.typarray\b/.test(query)) event.preventDefault();
  });
}

function scrub(text: string, db: Db): string {
  return scrubSecrets(text, dsnSecrets(db.config.dsn));
}

function connectionHint(db: Db): string {
  return db.config.dsnSource === "default"
    ? "no DSN configured (using the seed's default): set PG_DSN or pass --dsn"
    : "set PG_DSN or pass --dsn";
}

/**
 * Turns a postgres.js or socket error into a domain error with a one-line, secret-free
 * message. Domain and usage errors pass through unchanged.
 */
export function mapDbError(err: unknown, db: Db): Error {
  if (err instanceof SeedtaskError || isUsageError(err)) return err;
  const e = err as { code?: string; message?: string; name?: string };
  const message = scrub(String(e?.message ?? err), db);
  const code = e?.code;
  const where = db.target;
  if (e?.name === "PostgresError" && typeof code === "string" && isRejectedValue(code)) {
    const oneLine = message.replace(/\s+/g, " ");
    return new RejectedValueError(
      `The database refused a value: ${
        oneLine.length > 200 ? `${oneLine.slice(0, 200)}…` : oneLine
      }`,
      code,
    );
  }
  switch (code) {
    case "ECONNREFUSED":
      return new ConnectionError("unreachable", `Cannot connect to ${where}: connection refused`, {
        hint: connectionHint(db),
        cause: err,
      });
    case "ENOTFOUND":
    case "EAI_AGAIN":
    case "EAI_NONAME":
      return new ConnectionError(
        "unreachable",
        `Cannot connect to ${where}: host "${where.split(":")[0]}" not found`,
        { hint: connectionHint(db), cause: err },
      );
    case "CONNECT_TIMEOUT":
    case "ETIMEDOUT":
    case "EHOSTUNREACH":
    case "ENETUNREACH":
      return new ConnectionError("unreachable", `Cannot connect to ${where}: ${message}`, {
        hint: connectionHint(db),
        cause: err,
      });
    case "ECONNRESET":
    case "EPIPE":
    case "CONNECTION_CLOSED":
    case "CONNECTION_ENDED":
    case "CONNECTION_DESTROYED":
      return new ConnectionError("connection_lost", `Connection to ${where} lost: ${message}`, {
        cause: err,
      });
    case "28P01":
    case "28000":
      return new ConnectionError(
        "auth_failed",
        `Authentication failed on ${where}: ${message}`,
        { hint: "check the user and password in PG_DSN or --dsn", cause: err },
      );
    case "3D000":
      return new ConnectionError("database_not_found", `Cannot connect to ${where}: ${message}`, {
        hint: "check the database name in PG_DSN or --dsn",
        cause: err,
      });
    case "08P01":
      // PgBouncer's answer to the statement_timeout startup parameter of a direct connection.
      if (/unsupported startup parameter/.test(message)) {
        return new ConnectionError("unreachable", `Cannot connect to ${where}: ${message}`, {
          hint:
            "this is a connection pooler such as PgBouncer: pass --pooler (or SEEDTASK_POOLER=1)",
          cause: err,
        });
      }
      return new DatabaseError(`Database error on ${where}: ${message}`, code, { cause: err });
    case "42P01":
      return new TableNotFoundError(`Table "${db.table}" does not exist in ${where}`, err);
    case "42703":
      return new DatabaseError(
        `Table "${db.table}" lacks a column seedtask needs: ${message}`,
        code,
        {
          hint: "run `seedtask migrate` to add what is missing",
          cause: err,
        },
      );
    case "57014": {
      // Known when the command read the table's catalog, or guard() looked after the timeout.
      const missing = cachedMissingIndexes(db);
      return new DatabaseError(
        `Query cancelled after the statement timeout (${
          formatDuration(db.config.statementTimeoutMs)
        })`,
        code,
        {
          hint: missing && missing.length > 0
            ? `table "${db.table}" lacks ${missing.length} of seedtask's recommended indexes ` +
              "(run `seedtask doctor` to list them): run `seedtask migrate` to add them, or " +
              "raise the timeout with --statement-timeout"
            : "raise it with --statement-timeout",
          cause: err,
        },
      );
    }
    default:
      if (e?.name === "PostgresError") {
        return new DatabaseError(`Database error on ${where}: ${message}`, code, { cause: err });
      }
      if (typeof code === "string" && /^E[A-Z]+$/.test(code)) {
        return new ConnectionError("unreachable", `Cannot connect to ${where}: ${message}`, {
          hint: connectionHint(db),
          cause: err,
        });
      }
      return err instanceof Error ? err : new Error(message);
  }
}

/**
 * SQLSTATEs that mean "this value cannot be stored, converted or compared": class 22 (data
 * exception: 22P02 bad text for a type, 22P05 untranslatable character such as \u0000 in jsonb,
 * 22021 bad UTF-8, 22003 numeric and 22008 datetime out of range, 22001 too long, …) and 54000
 * (program limit exceeded: an index row too large, an array too big). Every value in a query
 * comes from the caller, so these are the caller's mistakes.
 */
function isRejectedValue(code: string): boolean {
  return code.startsWith("22") || code === "54000";
}

/** SQLSTATEs of a comparison or cast between types that do not fit together. */
const TYPE_MISMATCH = new Set(["42883", "42804", "42846", "22P02"]);

/**
 * Runs a lib operation and rethrows any database failure as a domain error (see
 * {@link mapDbError}). In pooler mode the operation runs in its own transaction, which carries
 * the statement timeout (see {@link inTransaction}); a nested guard joins the outer one.
 */
export async function guard<T>(db: Db, fn: () => Promise<T>): Promise<T> {
  try {
    const store = current.get(db);
    if (!store || store.getStore()) return await fn();
    return await withLane(db, (lane) => transaction(db, lane, () => store.run(lane, fn)));
  } catch (err) {
    const code = (err as { code?: unknown })?.code;
    if (code === "57014" && cachedMissingIndexes(db) === undefined) {
      // A timeout on a table without the recommended indexes is fixed by `migrate`, not a
      // longer timeout: look (a quick catalog read) so the error can say which.
      await learnMissingIndexes(db).catch(() => {});
    }
    const mapped = mapDbError(err, db);
    if (typeof code === "string" && TYPE_MISMATCH.has(code)) {
      throw await explainMismatch(db, mapped);
    }
    throw mapped;
  }
}

/**
 * The table's columns (from its catalog, read once per Db: see lib/table/catalog.ts). Throws
 * {@link TableNotFoundError} when the table does not exist, so every command reports a
 * missing table the same way.
 */
export function getTableInfo(db: Db): Promise<TableInfo> {
  return guard(db, async () => tableInfo(db, await getCatalog(db)));
}

/** Double-quotes each part of a (possibly schema-qualified) identifier for to_regclass(). */
export function quoteQualified(name: string): string {
  return name.split(".").map(quoteIdent).join(".");
}

/** Quotes one SQL identifier. Only DDL text (migrate) needs this; queries use sql(identifier). */
export function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}
