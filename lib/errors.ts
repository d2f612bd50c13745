/**
 * Domain errors. lib/ throws these; main.ts maps them to an exit code and the HTTP app to a
 * status, each from the error itself (`exitCode`, `httpStatus`, `httpError()`), so the mapping
 * is decided here, once per class. Messages are sentence case, without a trailing period,
 * values quoted.
 *
 * | class                                   | exit | HTTP | said over HTTP                     |
 * | --------------------------------------- | ---- | ---- | ---------------------------------- |
 * | {@link UsageError} and its subclasses   | 2    | 400  | the message                        |
 * | {@link TaskNotFoundError}               | 1    | 404  | the message                        |
 * | {@link AmbiguousTaskIdError}            | 1    | 409  | the message and `candidates`       |
 * | {@link ConnectionError}                 | 1    | 503  | "The database is unavailable"      |
 * | {@link TableNotFoundError}              | 1    | 503  | a generic message                  |
 * | {@link IncompatibleTableError}          | 1    | 503  | a generic message                  |
 * | {@link LeaseColumnsMissingError}        | 1    | 503  | a generic message                  |
 * | {@link DatabaseError}                   | 1    | 503  | "The query timed out" or generic   |
 * | any other {@link SeedtaskError}         | 1    | 500  | "Internal error"                   |
 *
 * A server-side failure (5xx) never tells the client its message: it may name a host, a
 * database or a table. The server logs it instead.
 */

/** What an HTTP client is told about an error: the body's `error` object. */
export interface HttpErrorBody {
  /** A stable machine-readable code, e.g. `not_found`. */
  code: string;
  /** One line for a human. */
  message: string;
  /** Details some errors add, e.g. `candidates` of an ambiguous id. */
  [detail: string]: unknown;
}

/** Base class of every error seedtask reports: a runtime failure (exit 1) unless a subclass says otherwise. */
export class SeedtaskError extends Error {
  /** A stable machine-readable code, used in JSON error bodies. */
  readonly code: string;
  /** A short suggestion printed after the message, e.g. "run seedtask migrate". */
  readonly hint?: string;
  /** The exit code of a CLI run that ends with this error. */
  readonly exitCode: number = 1;
  /** The status of an HTTP request that ends with this error. */
  readonly httpStatus: number = 500;

  /** Makes an error with its machine-readable `code`, a one-line message and an optional hint and cause. */
  constructor(code: string, message: string, options?: { hint?: string; cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.hint = options?.hint;
  }

  /** The `error` object of the HTTP answer; a 5xx one keeps the message to the server's log. */
  httpError(): HttpErrorBody {
    return this.httpStatus >= 500
      ? { code: "internal_error", message: "Internal error" }
      : { code: this.code, message: this.message };
  }
}

/**
 * The caller's mistake — a bad flag, query value, body, id or JSON — as opposed to a failure
 * of the database or of seedtask: exit 2 (with the `--help` hint) / HTTP 400. A programming
 * error (a `TypeError` from a bug) is never taken for one.
 */
export class UsageError extends SeedtaskError {
  /** Usage errors end a CLI run with exit code 2. */
  override readonly exitCode: number = 2;
  /** Usage errors answer HTTP 400. */
  override readonly httpStatus: number = 400;
}

/** Bad user input (flag value, id, JSON). */
export class InvalidInputError extends UsageError {
  /** Makes an `invalid_input` error from a one-line message and an optional hint. */
  constructor(message: string, hint?: string) {
    super("invalid_input", message, { hint });
  }
}

/** A numeric input outside its allowed range. */
export class OutOfRangeError extends UsageError {
  /** Makes an `out_of_range` error from a one-line message and an optional hint. */
  constructor(message: string, hint?: string) {
    super("out_of_range", message, { hint });
  }
}

/**
 * A value the database refused as data — it cannot be stored, converted or compared (SQLSTATE
 * class 22, or 54000 "program limit exceeded" such as an index row too large). Whatever lets
 * such a value through, it is the caller's mistake: exit 2 / HTTP 400, never a server failure.
 */
export class RejectedValueError extends InvalidInputError {
  /** The PostgreSQL SQLSTATE. */
  readonly sqlState: string;
  /** Makes the error from the database's message (already without secrets) and SQLSTATE. */
  constructor(message: string, sqlState: string) {
    super(message);
    this.sqlState = sqlState;
  }
}

/**
 * `text` as one printable line: control characters (a newline, NUL, …) escaped as `\n`,
 * `\u0000`, and anything past `max` characters cut with "…". Messages quote what the caller
 * gave, which may hold anything; an error is always one line.
 */
export function oneLine(text: string, max = 1000): string {
  const escaped = text.replace(
    // deno-lint-ignore no-control-regex -- control characters are what this finds
    /[\u0000-\u001f\u007f]/g,
    (c) =>
      ({ "\n": "\\n", "\r": "\\r", "\t": "\\t" })[c] ??
        `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
  return escaped.length > max ? `${escaped.slice(0, max)}…` : escaped;
}

/** True for errors caused by the caller's input rather than by the database or the tool. */
export function isUsageError(err: unknown): err is UsageError {
  return err instanceof UsageError;
}

/** No task has the id, or no task's id starts with the prefix. */
export class TaskNotFoundError extends SeedtaskError {
  /** A task that does not exist answers HTTP 404. */
  override readonly httpStatus: number = 404;
  /** The id or prefix that was looked up. */
  readonly id: string;
  /** Makes the error for the id or prefix that matched nothing. */
  constructor(id: string) {
    super("not_found", `Task "${id}" not found`);
    this.id = id;
  }
}

/** An id prefix that matches several tasks; the answer lists them. */
export class AmbiguousTaskIdError extends SeedtaskError {
  /** An ambiguous prefix answers HTTP 409. */
  override readonly httpStatus: number = 409;
  /** The prefix that matched several tasks. */
  readonly prefix: string;
  /** Full ids of (up to ten of) the matching tasks. */
  readonly candidates: string[];
  /** True when more tasks than `candidates` match. */
  readonly more: boolean;
  /** Makes the error from the prefix, up to ten matching ids, and whether there are more. */
  constructor(prefix: string, candidates: string[], more: boolean) {
    super(
      "ambiguous_id",
      `Task id prefix "${prefix}" is ambiguous: it matches ${candidates.join(", ")}${
        more ? ", ..." : ""
      }`,
      { hint: "give more characters of the id" },
    );
    this.prefix = prefix;
    this.candidates = candidates;
    this.more = more;
  }

  /** The message with the `candidates`, so a client can choose. */
  override httpError(): HttpErrorBody {
    return { ...super.httpError(), candidates: this.candidates };
  }
}

/** The server cannot be reached, refused the login, or the database does not exist. */
export class ConnectionError extends SeedtaskError {
  /** An unreachable database answers HTTP 503. */
  override readonly httpStatus: number = 503;
  /** Makes the error from its kind (`code`), a one-line message without secrets, and options. */
  constructor(
    code: "unreachable" | "auth_failed" | "database_not_found" | "connection_lost",
    message: string,
    options?: { hint?: string; cause?: unknown },
  ) {
    super(code, message, options);
  }

  /** A generic "The database is unavailable": the message may name a host. */
  override httpError(): HttpErrorBody {
    return { code: "database_unavailable", message: "The database is unavailable" };
  }
}

/** The hint given wherever the task table is missing. */
export const MIGRATE_HINT = "run `seedtask migrate` to create it";

/** The task table (or a column seedtask needs) does not exist. */
export class TableNotFoundError extends SeedtaskError {
  /** A missing table answers HTTP 503. */
  override readonly httpStatus: number = 503;
  /** Makes the error from a one-line message and the driver's error. */
  constructor(message: string, cause?: unknown) {
    super("table_not_found", message, { hint: MIGRATE_HINT, cause });
  }

  /** A generic message; the table's name stays in the server's log. */
  override httpError(): HttpErrorBody {
    return { code: this.code, message: "The task table does not exist; run `seedtask migrate`" };
  }
}

/** The table exists but does not have the task table's shape (e.g. its id is not a uuid). */
export class IncompatibleTableError extends SeedtaskError {
  /** A table of the wrong shape answers HTTP 503. */
  override readonly httpStatus: number = 503;
  /** Makes the error from a one-line message and the driver's error. */
  constructor(message: string, cause?: unknown) {
    super("incompatible_table", message, {
      hint: "point --table at a task table, or run `seedtask migrate` on an empty schema",
      cause,
    });
  }

  /** A generic message; the table's name stays in the server's log. */
  override httpError(): HttpErrorBody {
    return { code: this.code, message: "The task table does not have the shape seedtask needs" };
  }
}

/** The table has no lease columns (owner_id, lease_expires_at, last_heartbeat); dispatch needs them. */
export class LeaseColumnsMissingError extends SeedtaskError {
  /** A table without lease columns answers HTTP 503. */
  override readonly httpStatus: number = 503;
  /** Makes the error for the named table. */
  constructor(table: string) {
    super(
      "lease_columns_missing",
      `Table "${table}" has no lease columns (owner_id, lease_expires_at, last_heartbeat)`,
      { hint: "run `seedtask migrate` to add them; dispatch needs leases" },
    );
  }

  /** A generic message; the table's name stays in the server's log. */
  override httpError(): HttpErrorBody {
    return {
      code: this.code,
      message: "The task table has no lease columns; run `seedtask migrate`",
    };
  }
}

/** Any other database failure, already stripped of connection secrets. */
export class DatabaseError extends SeedtaskError {
  /** A database failure answers HTTP 503. */
  override readonly httpStatus: number = 503;
  /** The PostgreSQL SQLSTATE, when the server reported one. */
  readonly sqlState?: string;
  /** Makes the error from a message without secrets, the SQLSTATE, and options. */
  constructor(message: string, sqlState?: string, options?: { hint?: string; cause?: unknown }) {
    super("database_error", message, options);
    this.sqlState = sqlState;
  }

  /** "The query timed out" for a statement timeout, otherwise a generic "Database error". */
  override httpError(): HttpErrorBody {
    // 57014: query_canceled, which is what the statement timeout raises.
    return {
      code: this.code,
      message: this.sqlState === "57014" ? "The query timed out" : "Database error",
    };
  }
}
