/**
 * What a client may put in a task or a filter, checked in one place for the CLI, the HTTP API
 * and the library, before anything reaches the database. A value PostgreSQL would refuse (a NUL
 * byte, a lone surrogate, an index entry too large, a date out of its range) is the client's
 * mistake and is reported as one, naming the field.
 */
import { parseDuration } from "../duration.ts";
import { InvalidInputError, OutOfRangeError } from "../errors.ts";

/**
 * Longest `type` and `domain`, in characters. Both are indexed (a btree entry holds at most
 * about 2.7 kB) and are names, not documents; 255 leaves room for any real one.
 */
export const MAX_NAME_LENGTH = 255;

/** Longest `description`, in characters: a line or a paragraph for humans, not a payload. */
export const MAX_DESCRIPTION_LENGTH = 65_536;

/** Longest `--search` / `search` text, in characters. */
export const MAX_SEARCH_LENGTH = 1_000;

/** Largest `params`, as JSON text in bytes (the HTTP API's whole body limit). */
export const MAX_PARAMS_BYTES = 1_048_576;

/** Deepest nesting of `params` (objects and arrays). */
export const MAX_PARAMS_DEPTH = 100;

/**
 * Checks one text value: no NUL byte (PostgreSQL text cannot hold one), well-formed Unicode
 * (a lone surrogate has no UTF-8 form), at most `max` characters. `field` names it in the
 * message (`type`, `params.a[2]`).
 */
export function checkText(value: string, field: string, max: number): void {
  const why = textProblem(value);
  if (why) throw new InvalidInputError(`Invalid value for "${field}": it ${why}`);
  if (value.length > max) {
    const length = [...value].length;
    if (length > max) {
      throw new OutOfRangeError(
        `Invalid value for "${field}": ${length} characters, at most ${max}`,
      );
    }
  }
}

function textProblem(value: string): string | undefined {
  if (value.includes("\u0000")) {
    return "contains a NUL byte (\\u0000), which PostgreSQL cannot store";
  }
  if (!value.isWellFormed()) return "is not valid Unicode (a lone surrogate)";
  return undefined;
}

function jsonPath(parent: string, key: string | number): string {
  if (typeof key === "number") return `${parent}[${key}]`;
  return /^[A-Za-z_][A-Za-z0-9_]*$/.test(key)
    ? `${parent}.${key}`
    : `${parent}[${JSON.stringify(key.length > 40 ? `${key.slice(0, 40)}…` : key)}]`;
}

/**
 * Checks a JSON value for a jsonb column: every string and key storable (see
 * {@link checkText}), every number finite, at most {@link MAX_PARAMS_DEPTH} levels deep and
 * {@link MAX_PARAMS_BYTES} as JSON. Walks without recursion, so any depth is safe to check.
 */
export function checkJson(value: unknown, field: string): void {
  const stack: Array<[unknown, string, number]> = [[value, field, 0]];
  while (stack.length > 0) {
    const [v, path, depth] = stack.pop()!;
    if (typeof v === "string") {
      const why = textProblem(v);
      if (why) throw new InvalidInputError(`Invalid value for "${path}": it ${why}`);
    } else if (typeof v === "number") {
      if (!Number.isFinite(v)) {
        throw new OutOfRangeError(`Invalid value for "${path}": a number too large for JSON`);
      }
    } else if (v !== null && typeof v === "object") {
      if (depth >= MAX_PARAMS_DEPTH) {
        throw new OutOfRangeError(
          `Invalid value for "${field}": nested deeper than ${MAX_PARAMS_DEPTH} levels`,
        );
      }
      if (Array.isArray(v)) {
        v.forEach((item, i) => stack.push([item, jsonPath(path, i), depth + 1]));
      } else {
        for (const [key, item] of Object.entries(v)) {
          const why = textProblem(key);
          if (why) throw new InvalidInputError(`Invalid value for "${path}": a key ${why}`);
          stack.push([item, jsonPath(path, key), depth + 1]);
        }
      }
    } else if (v !== undefined && typeof v !== "boolean") {
      throw new InvalidInputError(`Invalid value for "${path}": ${typeof v} is not JSON`);
    }
  }
  const bytes = new TextEncoder().encode(JSON.stringify(value ?? null)).length;
  if (bytes > MAX_PARAMS_BYTES) {
    throw new OutOfRangeError(
      `Invalid value for "${field}": ${bytes} bytes of JSON, at most ${MAX_PARAMS_BYTES}`,
    );
  }
}

/** The text filters of `list`, `cancel`/`retry` and `GET /tasks`, checked like stored values. */
export function checkFilterText(filter: { type?: string; domain?: string; search?: string }): void {
  if (filter.type !== undefined) checkText(filter.type, "type", MAX_NAME_LENGTH);
  if (filter.domain !== undefined) checkText(filter.domain, "domain", MAX_NAME_LENGTH);
  if (filter.search !== undefined) checkText(filter.search, "search", MAX_SEARCH_LENGTH);
}

/**
 * `run_after` / `--run-after`: an ISO-8601 instant (`2030-01-01T00:00:00Z`, years 1 to 9999) or
 * a duration from `now` (`5m`, at most 100 years). `what` names the flag or field.
 */
export function parseRunAfter(value: string, what: string, now: Date = new Date()): Date {
  if (/^\d{4}-\d\d-\d\d/.test(value)) {
    const date = new Date(value);
    if (Number.isNaN(date.getTime())) {
      throw new InvalidInputError(`Invalid ${what} "${value}": not a valid ISO-8601 time`);
    }
    checkInstant(date, what);
    return date;
  }
  return new Date(now.getTime() + parseDuration(value, what, "age"));
}

/** An instant PostgreSQL and every client can store and print: years 1 to 9999 (UTC). */
export function checkInstant(date: Date, what: string): void {
  const year = date.getUTCFullYear();
  if (Number.isNaN(year) || year < 1 || year > 9999) {
    throw new OutOfRangeError(`Invalid ${what}: the year must be from 1 to 9999`);
  }
}
