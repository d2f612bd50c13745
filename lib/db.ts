import { AsyncLocalStorage } from "node:async_hooks";
import postgres from "postgres";
import { type ConnectionConfig, describeDsn, dsnPassword, parseTableName } from "./config.ts";
import {
  ConnectionError,
  DatabaseError,
  isUsageError,
  SeedtaskError,
  TableNotFoundError,
} from "./errors.ts";
import { formatDuration } from "./duration.ts";
import { LEASE_COLUMNS } from "./task.ts";

/** The postgres.js tagged-template client. */
// deno-lint-ignore ban-types
export type Sql = postgres.Sql<{}>;

/** A connection pool bound to one task table. Every lib function takes this first. */
export interface Db {
  readonly sql: Sql;
  /** The table as configured (`tasks` or `schema.tasks`); interpolate with `db.sql(db.table)`. */
  readonly table: string;
  readonly schema?: string;
  readonly tableName: string;
  /** `host:port/database`, safe to print. */
  readonly target: string;
  readonly config: ConnectionConfig;
  /** Per-connection memo (column metadata), so it is read once per process. */
  readonly cache: Map<string, unknown>;
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** Options for {@link connect} beyond the connection settings. */
export interface ConnectOptions {
  /** Receives server NOTICE messages (they never go to stdout). */
  onNotice?: (message: string) => void;
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
 */
export function connect(config: ConnectionConfig, options: ConnectOptions = {}): Db {
  const { schema, name } = parseTableName(config.table);
  const connection: Record<string, string | number> = {
    application_name: "seedtask",
    TimeZone: "UTC",
  };
  if (config.statementTimeoutMs > 0 && !config.pooler) {
    connection.statement_timeout = config.statementTimeoutMs;
  }
  const poolOptions = {
    max: config.maxConnections,
    prepare: config.prepare,
    connect_timeout: 10,
    idle_timeout: 60,
    connection,
    onnotice: (n: postgres.Notice) => options.onNotice?.(String(n.message)),
  };
  const pool = postgres(config.dsn, poolOptions);
  const own: Lanes = {
    dsn: config.dsn,
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

function scrub(text: string, db: Db): string {
  const password = dsnPassword(db.config.dsn);
  let out = password ? text.split(password).join("***") : text;
  // A DSN embedded in a driver message would carry credentials.
  out = out.replace(/(postgres(?:ql)?:\/\/[^:@/\s]*):[^@\s]*@/g, "$1:***@");
  return out;
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
    case "57014":
      return new DatabaseError(
        `Query cancelled after the statement timeout (${
          formatDuration(db.config.statementTimeoutMs)
        })`,
        code,
        { hint: "raise it with --statement-timeout", cause: err },
      );
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
    throw mapDbError(err, db);
  }
}

/** Column metadata of the task table, as read from the catalog. */
export interface TableInfo {
  /** column name -> type as the catalog prints it (`uuid`, `taskstatus`, `timestamp with time zone`). */
  columns: Map<string, string>;
  /** column name -> its type's oid and pg_type.typcategory (`E` for enums, `S` strings, …). */
  columnTypes: Map<string, { oid: number; category: string }>;
  /** owner_id, lease_expires_at and last_heartbeat are all present (SeedCore migration 006). */
  hasLease: boolean;
}

/**
 * Reads the table's columns once per Db. Throws {@link TableNotFoundError} when the table
 * does not exist, so every command reports a missing table the same way.
 */
export function getTableInfo(db: Db): Promise<TableInfo> {
  const cached = db.cache.get("tableInfo") as Promise<TableInfo> | undefined;
  if (cached) return cached;
  const promise = guard(db, async () => {
    const regclass = db.schema ? `${db.schema}.${db.tableName}` : db.tableName;
    const rows = await db.sql<{ name: string; type: string; oid: number; category: string }[]>`
      select a.attname as name, format_type(a.atttypid, a.atttypmod) as type,
             a.atttypid::int as oid, t.typcategory::text as category
      from pg_attribute a join pg_type t on t.oid = a.atttypid
      where a.attrelid = to_regclass(${quoteQualified(regclass)})
        and a.attnum > 0 and not a.attisdropped
      order by a.attnum`;
    if (rows.length === 0) {
      throw new TableNotFoundError(`Table "${db.table}" does not exist in ${db.target}`);
    }
    const columns = new Map(rows.map((r) => [r.name, r.type]));
    const columnTypes = new Map(rows.map((r) => [r.name, { oid: r.oid, category: r.category }]));
    const hasLease = LEASE_COLUMNS.every((c) => columns.has(c));
    return { columns, columnTypes, hasLease };
  });
  db.cache.set("tableInfo", promise);
  promise.catch(() => db.cache.delete("tableInfo"));
  return promise;
}

/** Forgets cached metadata (after `migrate` changed the table). */
export function invalidateTableInfo(db: Db): void {
  db.cache.delete("tableInfo");
  db.cache.delete("jsonSelectList");
}

/** Double-quotes each part of a (possibly schema-qualified) identifier for to_regclass(). */
export function quoteQualified(name: string): string {
  return name.split(".").map(quoteIdent).join(".");
}

/** Quotes one SQL identifier. Only DDL text (migrate) needs this; queries use sql(identifier). */
export function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}
