/**
 * Domain errors. lib/ throws these; main.ts (and later the HTTP app) maps them to exit codes
 * and status codes. Messages are sentence case, without a trailing period, values quoted.
 */

/** Base class of every error seedtask reports as a runtime failure (exit 1). */
export class SeedtaskError extends Error {
  /** A stable machine-readable code, used in JSON error bodies. */
  readonly code: string;
  /** A short suggestion printed after the message, e.g. "run seedtask migrate". */
  readonly hint?: string;

  constructor(code: string, message: string, options?: { hint?: string; cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.hint = options?.hint;
  }
}

/** Bad user input (flag value, id, JSON). Maps to exit code 2 / HTTP 400. */
export class InvalidInputError extends TypeError {
  readonly code = "invalid_input";
  readonly hint?: string;
  constructor(message: string, hint?: string) {
    super(message);
    this.name = "InvalidInputError";
    this.hint = hint;
  }
}

/** A numeric input outside its allowed range. Maps to exit code 2 / HTTP 400. */
export class OutOfRangeError extends RangeError {
  readonly code = "out_of_range";
  readonly hint?: string;
  constructor(message: string, hint?: string) {
    super(message);
    this.name = "OutOfRangeError";
    this.hint = hint;
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
  constructor(message: string, sqlState: string) {
    super(message);
    this.name = "RejectedValueError";
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
export function isUsageError(err: unknown): err is InvalidInputError | OutOfRangeError {
  return err instanceof InvalidInputError || err instanceof OutOfRangeError;
}

export class TaskNotFoundError extends SeedtaskError {
  readonly id: string;
  constructor(id: string) {
    super("not_found", `Task "${id}" not found`);
    this.id = id;
  }
}

export class AmbiguousTaskIdError extends SeedtaskError {
  readonly prefix: string;
  /** Full ids of (up to ten of) the matching tasks. */
  readonly candidates: string[];
  readonly more: boolean;
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
}

export class InvalidTransitionError extends SeedtaskError {
  readonly id: string;
  readonly status: string;
  constructor(message: string, id: string, status: string) {
    super("invalid_transition", message);
    this.id = id;
    this.status = status;
  }
}

/** The server cannot be reached, refused the login, or the database does not exist. */
export class ConnectionError extends SeedtaskError {
  constructor(
    code: "unreachable" | "auth_failed" | "database_not_found" | "connection_lost",
    message: string,
    options?: { hint?: string; cause?: unknown },
  ) {
    super(code, message, options);
  }
}

/** The hint given wherever the task table is missing. */
export const MIGRATE_HINT = "run `seedtask migrate` to create it";

/** The task table (or a column seedtask needs) does not exist. */
export class TableNotFoundError extends SeedtaskError {
  constructor(message: string, cause?: unknown) {
    super("table_not_found", message, { hint: MIGRATE_HINT, cause });
  }
}

/** The table exists but does not have the task table's shape (e.g. its id is not a uuid). */
export class IncompatibleTableError extends SeedtaskError {
  constructor(message: string, cause?: unknown) {
    super("incompatible_table", message, {
      hint: "point --table at a task table, or run `seedtask migrate` on an empty schema",
      cause,
    });
  }
}

/** Any other database failure, already stripped of connection secrets. */
export class DatabaseError extends SeedtaskError {
  /** The PostgreSQL SQLSTATE, when the server reported one. */
  readonly sqlState?: string;
  constructor(message: string, sqlState?: string, options?: { hint?: string; cause?: unknown }) {
    super("database_error", message, options);
    this.sqlState = sqlState;
  }
}
