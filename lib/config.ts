import { parseDuration } from "./duration.ts";
import { InvalidInputError } from "./errors.ts";

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
  /** `--dsn`: the connection URL; otherwise `PG_DSN`, then `SEEDCORE_PG_DSN`. */
  dsn?: string;
  /** `--table`: the task table, optionally schema-qualified. Default `tasks`. */
  table?: string;
  /** `--statement-timeout`: a duration such as `30s`; `0` turns it off. */
  statementTimeout?: string;
  /** `--no-prepare` gives `false`: no prepared statements (implies pooler mode). */
  prepare?: boolean;
  /** Pooler mode (see {@link ConnectionConfig.pooler}); `prepare: false` implies it. */
  pooler?: boolean;
  /** Upper bound of the connection pool. */
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

/** Where a DSN came from, as messages name it. */
function sourceName(source: ConnectionConfig["dsnSource"]): string {
  return source === "flag" ? "--dsn" : source;
}

/**
 * Resolves the connection settings once: flag > PG_DSN > SEEDCORE_PG_DSN > the seed's default.
 * `env` is passed in (not read here) so that lib/ stays free of process state. An empty
 * variable counts as unset; an empty `--dsn` is a mistake, not a request for the default.
 *
 * @example
 * ```ts
 * const config = resolveConfig({ dsn: "postgres://postgres@127.0.0.1/test" }, Deno.env.toObject());
 * ```
 */
export function resolveConfig(
  flags: ConfigFlags,
  env: Record<string, string | undefined>,
): ConnectionConfig {
  let dsn: string;
  let dsnSource: ConnectionConfig["dsnSource"];
  if (flags.dsn !== undefined) [dsn, dsnSource] = [flags.dsn, "flag"];
  else if (env.PG_DSN) [dsn, dsnSource] = [env.PG_DSN, "PG_DSN"];
  else if (env.SEEDCORE_PG_DSN) [dsn, dsnSource] = [env.SEEDCORE_PG_DSN, "SEEDCORE_PG_DSN"];
  else [dsn, dsnSource] = [DEFAULT_DSN, "default"];
  parseDsn(dsn, sourceName(dsnSource));
  const table = flags.table ?? DEFAULT_TABLE;
  parseTableName(table);
  const statementTimeoutMs = flags.statementTimeout === undefined
    ? DEFAULT_STATEMENT_TIMEOUT_MS
    : parseDuration(flags.statementTimeout, "statement timeout");
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

/** One server of a DSN: a host name, an IP address, or a unix-socket directory. */
export interface DsnHost {
  host: string;
  port?: number;
}

/** A postgres:// URL taken apart, percent-decoding done. */
export interface DsnParts {
  user?: string;
  password?: string;
  /** Empty: the driver's default (PGHOST, then localhost). */
  hosts: DsnHost[];
  database?: string;
  /** Query parameters other than host, port, user, password and dbname (sslmode, …). */
  params: URLSearchParams;
}

const DSN_HINT = "expected postgres://user:password@host:port/database; percent-encode " +
  "special characters in the user and password (@ as %40, / as %2F, : as %3A)";

/**
 * Takes a postgres:// URL apart the way libpq reads it, including the forms WHATWG URL
 * refuses: the unix-socket directory as `?host=/run/postgresql` after an empty host, or
 * percent-encoded as the host (`postgres://%2Frun%2Fpostgresql/db`), and several hosts
 * (`h1:5432,h2:5433`). A malformed DSN is an {@link InvalidInputError} that says what is wrong
 * but quotes nothing of the DSN: the part it would quote could be the password.
 */
export function parseDsn(dsn: string, what = "DSN"): DsnParts {
  const bad = (why: string) => new InvalidInputError(`Invalid DSN from ${what}: ${why}`, DSN_HINT);
  if (dsn.trim() === "") throw bad("it is empty");
  const scheme = /^postgres(?:ql)?:\/\//.exec(dsn);
  if (!scheme) throw bad("expected postgres://user@host:port/database");
  if (/\s/.test(dsn)) throw bad("it contains white space");
  if (dsn.includes("#")) throw bad('it contains "#" (percent-encode it as %23)');
  const decode = (text: string, part: string) => {
    try {
      return decodeURIComponent(text);
    } catch {
      throw bad(`the ${part} has an invalid percent-encoding`);
    }
  };
  let rest = dsn.slice(scheme[0].length);
  const q = rest.indexOf("?");
  const query = q >= 0 ? rest.slice(q + 1) : "";
  if (q >= 0) rest = rest.slice(0, q);
  const slash = rest.indexOf("/");
  let authority = slash >= 0 ? rest.slice(0, slash) : rest;
  const path = slash >= 0 ? rest.slice(slash + 1) : "";

  const parts: DsnParts = { hosts: [], params: new URLSearchParams() };
  const at = authority.indexOf("@");
  if (at >= 0) {
    if (authority.includes("@", at + 1)) throw bad('"@" appears more than once before the host');
    const userinfo = authority.slice(0, at);
    authority = authority.slice(at + 1);
    const colon = userinfo.indexOf(":");
    const user = colon >= 0 ? userinfo.slice(0, colon) : userinfo;
    if (user !== "") parts.user = decode(user, "user");
    if (colon >= 0) parts.password = decode(userinfo.slice(colon + 1), "password");
  }
  let hosts = authority === ""
    ? []
    : authority.split(",").map((h) => parseHost(h, bad, (t) => decode(t, "host")));
  if (path.includes("/")) throw bad('the database name contains "/" (percent-encode it as %2F)');
  if (path !== "") parts.database = decode(path, "database name");

  // URLSearchParams decodes leniently; decodeURIComponent finds the broken escapes first.
  decode(query.replaceAll("+", " "), "query string");
  let queryPort: number | undefined;
  for (const [key, value] of new URLSearchParams(query)) {
    if (key === "host") hosts = value.split(",").map((h) => parseHost(h, bad, undefined));
    else if (key === "port") queryPort = parsePort(value, bad);
    else if (key === "user") parts.user = value;
    else if (key === "password") parts.password = value;
    else if (key === "dbname") parts.database = value;
    else parts.params.append(key, value);
  }
  parts.hosts = queryPort === undefined
    ? hosts
    : hosts.length === 0
    ? [{ host: "", port: queryPort }]
    : hosts.map((h) => ({ ...h, port: h.port ?? queryPort }));
  return parts;
}

function parsePort(text: string, bad: (why: string) => Error): number {
  if (!/^\d{1,5}$/.test(text) || Number(text) < 1 || Number(text) > 65_535) {
    throw bad("the port is not a number from 1 to 65535");
  }
  return Number(text);
}

/**
 * One host of the authority (`name`, `name:port`, `[v6]:port`, a percent-encoded socket
 * directory such as `%2Frun%2Fpostgresql`), or of the `host` parameter (`name`, `v6`,
 * `/run/postgresql`), where a port has its own parameter.
 */
function parseHost(
  text: string,
  bad: (why: string) => Error,
  decode: ((text: string) => string) | undefined,
): DsnHost {
  let host = text;
  let port: number | undefined;
  const v6 = /^\[([0-9A-Fa-f:.]+)\](?::(.*))?$/.exec(text);
  if (decode && v6) {
    [host, port] = [v6[1]!, v6[2] === undefined ? undefined : parsePort(v6[2], bad)];
  } else if (decode) {
    const colon = text.lastIndexOf(":");
    if (colon >= 0) [host, port] = [text.slice(0, colon), parsePort(text.slice(colon + 1), bad)];
    host = decode(host);
  }
  const socketDirectory = host.startsWith("/") && !/[\0\s]/.test(host);
  const name = /^[A-Za-z0-9._-]+$/.test(host) ||
    (!!(v6 || !decode) && /^[0-9A-Fa-f:.]+$/.test(host));
  if (!socketDirectory && !name) {
    throw bad(
      host === "" ? "a host is empty" : "a host is not a name, an IP address or a socket directory",
    );
  }
  return { host, port };
}

/** `host:port/database` of a DSN, with user and password left out, for messages. */
export function describeDsn(dsn: string): string {
  let p: DsnParts;
  try {
    p = parseDsn(dsn);
  } catch {
    return "the configured server";
  }
  const first = p.hosts[0];
  return `${first?.host || "localhost"}:${first?.port ?? 5432}/${
    p.database || p.user || "postgres"
  }`;
}

/** The password inside a DSN, if any. */
export function dsnPassword(dsn: string): string | undefined {
  try {
    return parseDsn(dsn).password || undefined;
  } catch {
    return undefined;
  }
}

/**
 * Every string that could be the password of `dsn`, however malformed the DSN: the decoded
 * password, what stands between the first ":" after the user and the last "@", and its pieces
 * between the characters that break a DSN apart. Error text is scrubbed of all of them.
 */
export function dsnSecrets(dsn: string): string[] {
  const secrets = new Set<string>();
  const strict = dsnPassword(dsn);
  if (strict) secrets.add(strict);
  const loose = /^[a-z]+:\/\/[^:/@]*:(.*)@/is.exec(dsn)?.[1];
  if (loose) {
    secrets.add(loose);
    for (const piece of loose.split(/[@/?#:]/)) if (piece.length >= 4) secrets.add(piece);
  }
  return [...secrets].sort((a, b) => b.length - a.length);
}

/**
 * `text` with every secret of at least 4 characters replaced by `***` (a shorter one would
 * blank out ordinary words), and the password of any DSN quoted in it too — except the
 * `user:password@` placeholder of seedtask's own hints.
 */
export function scrubSecrets(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const secret of secrets) if (secret.length >= 4) out = out.split(secret).join("***");
  return out.replace(/(postgres(?:ql)?:\/\/[^:@/\s]*):(?!password@)[^@\s]*@/g, "$1:***@");
}
