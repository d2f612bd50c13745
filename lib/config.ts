import { parseDuration } from "./duration.ts";
import { InvalidInputError, OutOfRangeError } from "./errors.ts";

/** The seed's default DSN (SeedCore's docker-compose service name). */
export const DEFAULT_DSN = "postgresql://postgres:postgres@postgresql:5432/seedcore";
export const DEFAULT_TABLE = "tasks";
export const DEFAULT_STATEMENT_TIMEOUT_MS = 30_000;

/** Everything needed to open a connection to a task table. */
export interface ConnectionConfig {
  /** postgres:// URL. May contain a password: never print it, use {@link describeDsn}. */
  dsn: string;
  /** Where the DSN came from, for error hints. */
  dsnSource: "flag" | "PG_DSN" | "SEEDCORE_PG_DSN" | "default" | "embedded";
  /** Table name, optionally schema-qualified (`public.tasks`). Always used as an identifier. */
  table: string;
  /** Server-side statement_timeout applied to every query, in milliseconds (0 = none). */
  statementTimeoutMs: number;
  /** Use named prepared statements. Off for PgBouncer in transaction pooling mode. */
  prepare: boolean;
  /**
   * The DSN points at a transaction-pooling connection pooler (PgBouncer `pool_mode =
   * transaction`): no session state may be assumed, so the statement timeout travels with
   * every transaction, migrate locks per transaction and LISTEN needs a direct connection.
   */
  pooler: boolean;
  /** Upper bound of the connection pool. */
  maxConnections: number;
  /** How to name the server in messages instead of host:port/database (embedded). */
  label?: string;
}

/** Raw option values as they arrive from flags (strings) — validated here. */
export interface ConfigFlags {
  dsn?: string;
  table?: string;
  statementTimeout?: string;
  prepare?: boolean;
  /** Pooler mode (see {@link ConnectionConfig.pooler}); `prepare: false` implies it. */
  pooler?: boolean;
  maxConnections?: number;
}

const IDENT = /^[A-Za-z_][A-Za-z0-9_$]*$/;

/** Validates a `--table` value: `name` or `schema.name`, each a plain SQL identifier. */
export function parseTableName(table: string): { schema?: string; name: string } {
  const parts = table.split(".");
  if (parts.length > 2 || parts.some((p) => !IDENT.test(p))) {
    throw new InvalidInputError(
      `Invalid table name "${table}": expected name or schema.name (letters, digits, _)`,
    );
  }
  return parts.length === 2 ? { schema: parts[0]!, name: parts[1]! } : { name: parts[0]! };
}

/**
 * Resolves the connection settings once: flag > PG_DSN > SEEDCORE_PG_DSN > the seed's default.
 * `env` is passed in (not read here) so that lib/ stays free of process state.
 */
export function resolveConfig(
  flags: ConfigFlags,
  env: Record<string, string | undefined>,
): ConnectionConfig {
  let dsn: string;
  let dsnSource: ConnectionConfig["dsnSource"];
  if (flags.dsn) [dsn, dsnSource] = [flags.dsn, "flag"];
  else if (env.PG_DSN) [dsn, dsnSource] = [env.PG_DSN, "PG_DSN"];
  else if (env.SEEDCORE_PG_DSN) [dsn, dsnSource] = [env.SEEDCORE_PG_DSN, "SEEDCORE_PG_DSN"];
  else [dsn, dsnSource] = [DEFAULT_DSN, "default"];
  if (!/^postgres(ql)?:\/\//.test(dsn)) {
    throw new InvalidInputError(
      `Invalid DSN from ${
        dsnSource === "flag" ? "--dsn" : dsnSource
      }: expected postgres://user@host:port/database`,
    );
  }
  const table = flags.table ?? DEFAULT_TABLE;
  parseTableName(table);
  const statementTimeoutMs = flags.statementTimeout === undefined
    ? DEFAULT_STATEMENT_TIMEOUT_MS
    : parseDuration(flags.statementTimeout, "statement timeout");
  if (statementTimeoutMs > 2_147_483_647) {
    throw new OutOfRangeError(`Statement timeout "${flags.statementTimeout}" is too large`);
  }
  // --no-prepare was documented as the PgBouncer flag, and a pooler is the only reason to
  // turn prepared statements off: it implies pooler mode.
  const pooler = flags.pooler ?? (flags.prepare === false ? true : undefined) ??
    parsePoolerEnv(env.SEEDTASK_POOLER) ?? false;
  return {
    dsn,
    dsnSource,
    table,
    statementTimeoutMs,
    prepare: flags.prepare ?? !pooler,
    pooler,
    maxConnections: flags.maxConnections ?? 4,
  };
}

function parsePoolerEnv(value: string | undefined): boolean | undefined {
  if (value === undefined) return undefined;
  const v = value.trim().toLowerCase();
  if (["1", "true", "yes", "on"].includes(v)) return true;
  if (["0", "false", "no", "off", ""].includes(v)) return false;
  throw new InvalidInputError(
    `Invalid SEEDTASK_POOLER "${value}": expected 1 or 0 (on or off)`,
  );
}

interface DsnParts {
  user: string;
  password?: string;
  hostport: string;
  database: string;
  params: URLSearchParams;
}

/** Splits a postgres:// URL by hand: WHATWG URL rejects `postgres://u@/db?host=/socket`. */
function parseDsn(dsn: string): DsnParts | undefined {
  const m = /^postgres(?:ql)?:\/\/(?:([^@/?]*)@)?([^/?]*)(?:\/([^?]*))?(?:\?(.*))?$/.exec(dsn);
  if (!m) return undefined;
  const [user, password] = (m[1] ?? "").split(/:(.*)/s);
  const decode = (s: string | undefined) => {
    try {
      return s === undefined ? undefined : decodeURIComponent(s);
    } catch {
      return s;
    }
  };
  return {
    user: decode(user) ?? "",
    password: decode(password),
    hostport: m[2] ?? "",
    database: decode(m[3]) ?? "",
    params: new URLSearchParams(m[4] ?? ""),
  };
}

/** `host:port/database` of a DSN, with user and password left out, for messages. */
export function describeDsn(dsn: string): string {
  const p = parseDsn(dsn);
  if (!p) return "the configured server";
  const hostport = p.hostport || p.params.get("host") || "localhost";
  const withPort = /:\d+$/.test(hostport)
    ? hostport
    : `${hostport}:${p.params.get("port") ?? 5432}`;
  return `${withPort}/${p.database || p.user || "postgres"}`;
}

/** The password inside a DSN, if any, so it can be scrubbed from messages. */
export function dsnPassword(dsn: string): string | undefined {
  return parseDsn(dsn)?.password || undefined;
}
