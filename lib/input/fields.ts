/**
 * The building blocks of the operation schemas (lib/input/*.ts): one zod schema per kind of
 * field, each accepting what the CLI and HTTP query strings give (text; a repeated value as an
 * array) as well as typed JSON values, and producing the typed value the lib functions take.
 * Each field's rule is a lib function (parseDuration, checkText, …) that the schema calls, so
 * the rule exists once, and its message names the field by its schema key (`Invalid
 * long_running "…"`); {@link parseInput} lets a caller that knows the field by another name —
 * a CLI flag — say that name instead.
 *
 * A value PostgreSQL would refuse (a NUL byte, a lone surrogate, an index entry too large, a
 * date out of its range) is the client's mistake and is reported as one, naming the field,
 * before anything reaches the database.
 */
import { z } from "zod";
import { type DurationUse, parseDuration } from "../duration.ts";
import { InvalidInputError, OutOfRangeError, UsageError } from "../errors.ts";

/** OpenAPI hints for a field: what its parameter or property says in `/openapi.json`. */
type Doc = Record<string, unknown>;

/** A field's schema: takes what a caller gives (text or a JSON value), produces an `O`. */
export type Field<O> = z.ZodType<O, unknown>;

/**
 * A field whose value `parse` checks and converts. A {@link UsageError} it throws becomes the
 * field's issue (the error itself travels along, so its class and hint survive); anything else
 * it throws is a bug and propagates.
 */
export function parsed<I, O>(
  input: z.ZodType<I>,
  parse: (value: I) => O,
  doc: Doc = {},
): Field<O> {
  return input.transform((value, ctx) => ruled(ctx, value, () => parse(value))).meta(doc);
}

/**
 * Runs `rule` inside a transform: its {@link UsageError} becomes an issue of the field at
 * `path` (default: the field being transformed). For rules that need several fields, e.g. a
 * cursor checked against the sort it was made for.
 */
export function ruled<T>(
  ctx: z.core.$RefinementCtx,
  input: unknown,
  rule: () => T,
  path?: string[],
): T {
  try {
    return rule();
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    ctx.issues.push({
      code: "custom",
      message: err.message,
      input,
      params: { error: err },
      ...(path ? { path } : {}),
    });
    return z.NEVER;
  }
}

/** `schema` with `value` when the field is absent; the value goes through the schema too. */
export function withDefault<O>(schema: Field<O>, value: unknown): Field<O> {
  return schema.prefault(value).meta({ default: value });
}

/**
 * A whole number from `min` to `max`, given as a number or as decimal digits ("10", not
 * "10abc", "1e3" or "+5"). `what` names it in the message.
 */
export function parseWholeNumber(
  value: number | string,
  what: string,
  min: number,
  max: number,
): number {
  const text = typeof value === "string" ? value.trim() : String(value);
  const n = typeof value === "string" ? Number(text) : value;
  if (
    (typeof value === "string" && !/^\d+$/.test(text)) || !Number.isInteger(n) || n < min ||
    n > max
  ) {
    throw new InvalidInputError(
      `Invalid ${what} "${shown(String(value))}": expected a whole number from ${min} to ${max}`,
    );
  }
  return n;
}

/** A whole number from `min` to `max`: `12` or `"12"`. */
export function wholeNumber(key: string, min: number, max: number): Field<number> {
  return parsed(
    z.union([z.number(), z.string()]),
    (value) => parseWholeNumber(value, key, min, max),
    { type: "integer", minimum: min, maximum: max },
  );
}

/** Any finite number: `0.5` or `"0.5"`. */
export function decimal(key: string): Field<number> {
  return parsed(z.union([z.number(), z.string()]), (value) => {
    const n = typeof value === "string" && value.trim() !== "" ? Number(value) : value;
    if (typeof n !== "number" || !Number.isFinite(n)) {
      throw new InvalidInputError(`Invalid ${key} "${shown(String(value))}": expected a number`);
    }
    return n;
  }, { type: "number" });
}

/** true or false: a JSON boolean, or `true`/`1`/`` (present) and `false`/`0` in a query. */
export function flag(key: string): Field<boolean> {
  return parsed(z.union([z.boolean(), z.string()]), (value) => {
    if (typeof value === "boolean") return value;
    if (["true", "1", ""].includes(value)) return true;
    if (["false", "0"].includes(value)) return false;
    throw new InvalidInputError(`Invalid ${key} "${shown(value)}": expected true or false`);
  }, { type: "boolean" });
}

/** A duration such as `30s`, `10m`, `1h30m` (see lib/duration.ts), in milliseconds. */
export function duration(
  key: string,
  use: DurationUse,
  options: { positive?: boolean } = {},
): Field<number> {
  return parsed(z.string(), (value) => {
    const ms = parseDuration(value, key, use);
    if (options.positive && ms <= 0) {
      throw new OutOfRangeError(`Invalid ${key} "${shown(value)}": it must be greater than 0`);
    }
    return ms;
  }, {
    type: "string",
    description: `A duration such as 30s, 10m, 2h or 1d, at most ${
      use === "age" ? "36500d" : "about 24.8 days"
    }`,
  });
}

/** One of `values`, e.g. a sort key. */
export function oneOf<const V extends readonly [string, ...string[]]>(
  key: string,
  values: V,
): Field<V[number]> {
  return parsed(z.string(), (value) => {
    if (!(values as readonly string[]).includes(value)) {
      throw new InvalidInputError(
        `Invalid ${key} "${shown(value)}": expected ${values.slice(0, -1).join(", ")}${
          values.length > 1 ? " or " : ""
        }${values.at(-1)}`,
      );
    }
    return value as V[number];
  }, { type: "string", enum: [...values] });
}

/** A text PostgreSQL can store and index: see {@link checkText}. */
export function text(key: string, max: number): Field<string> {
  return parsed(z.string(), (value) => {
    checkText(value, key, max);
    return value;
  }, { type: "string", maxLength: max });
}

/** At most this many characters of a value are quoted back in a message. */
const SHOWN = 40;

/** `value` as quoted in a message: cut after {@link SHOWN} characters. */
export function shown(value: string): string {
  return value.length > SHOWN ? `${value.slice(0, SHOWN)}…` : value;
}

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
    : `${parent}[${JSON.stringify(key.length > SHOWN ? `${key.slice(0, SHOWN)}…` : key)}]`;
}

/**
 * Checks a JSON value for a jsonb column: every string and key storable (see
 * {@link checkText}), every number finite, at most `limits.depth` levels deep and
 * `limits.bytes` as JSON. Walks without recursion, so any depth is safe to check.
 */
export function checkJson(
  value: unknown,
  field: string,
  limits: { depth: number; bytes: number },
): void {
  // A bulk enqueue checks every task's params: the walk that names the bad value's path
  // (building a path string for every value) runs only once the quick one has found one.
  if (!storableJson(value, limits.depth)) reportJson(value, field, limits.depth);
  const json = JSON.stringify(value ?? null);
  // A UTF-16 code unit is at most 3 bytes of UTF-8: most values need no encoding to be sized.
  const bytes = json.length * 3 <= limits.bytes ? 0 : new TextEncoder().encode(json).length;
  if (bytes > limits.bytes) {
    throw new OutOfRangeError(
      `Invalid value for "${field}": ${bytes} bytes of JSON, at most ${limits.bytes}`,
    );
  }
}

/** Whether {@link reportJson} would find nothing: the same rules, no paths. */
function storableJson(value: unknown, maxDepth: number): boolean {
  const values: unknown[] = [value];
  const depths: number[] = [0];
  while (values.length > 0) {
    const v = values.pop();
    const depth = depths.pop()!;
    switch (typeof v) {
      case "string":
        if (textProblem(v)) return false;
        break;
      case "number":
        if (!Number.isFinite(v)) return false;
        break;
      case "boolean":
      case "undefined":
        break;
      case "object":
        if (v === null) break;
        if (depth >= maxDepth) return false;
        if (Array.isArray(v)) {
          for (const item of v) {
            values.push(item);
            depths.push(depth + 1);
          }
        } else {
          for (const key of Object.keys(v)) {
            if (textProblem(key)) return false;
            values.push((v as Record<string, unknown>)[key]);
            depths.push(depth + 1);
          }
        }
        break;
      default:
        return false;
    }
  }
  return true;
}

/** Throws the error for the first value of `value` that a jsonb column cannot store. */
function reportJson(value: unknown, field: string, maxDepth: number): void {
  const limits = { depth: maxDepth };
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
      if (depth >= limits.depth) {
        throw new OutOfRangeError(
          `Invalid value for "${field}": nested deeper than ${limits.depth} levels`,
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
    } else if (v !== undefined && v !== null && typeof v !== "boolean") {
      throw new InvalidInputError(`Invalid value for "${path}": ${typeof v} is not JSON`);
    }
  }
}

/** An instant PostgreSQL and every client can store and print: years 1 to 9999 (UTC). */
export function checkInstant(date: Date, what: string): void {
  const year = date.getUTCFullYear();
  if (Number.isNaN(year) || year < 1 || year > 9999) {
    throw new OutOfRangeError(`Invalid ${what}: the year must be from 1 to 9999`);
  }
}

/**
 * A zod schema (`z.ZodType` of the npm package `zod`); every operation schema is one.
 *
 * @internal An alias of another package's type, which `deno doc --lint` cannot see as public
 * (denoland/deno#27364).
 */
export type Schema = z.ZodType;

/**
 * What a zod schema `S` parses into (`z.output<S>`).
 *
 * @internal An alias of another package's type (denoland/deno#27364).
 */
export type Output<S extends Schema> = z.output<S>;

/**
 * An issue zod found while parsing (`z.core.$ZodIssue`).
 *
 * @internal An alias of another package's type (denoland/deno#27364).
 */
export type SchemaIssue = z.core.$ZodIssue;

/**
 * The type of `object.transform(fn)`: the object schema `S` whose output `fn` turns into `O`.
 * The operation schemas are declared with it.
 *
 * @internal An alias of another package's type (denoland/deno#27364).
 */
export type Transformed<S extends Schema, O> = z.ZodPipe<S, z.ZodTransform<O, z.output<S>>>;

/** How a caller names the fields of a schema, and words the issues only it can. */
export interface Naming {
  /** The field as the caller's user knows it: `--long-running` on the command line. */
  label(key: string): string;
  /**
   * The message of an issue zod itself found (a JSON value of the wrong type, an unknown
   * key), as opposed to a field's rule; `input` is what was parsed.
   */
  describe?(issue: SchemaIssue, input: unknown): string;
}

/** Fields named by their schema keys: HTTP query and body fields, and the library's options. */
export const BY_KEY: Naming = { label: (key) => key };

/**
 * The first issue of a failed parse as the error to report. A field rule's error keeps its
 * class and hint, with the field named as `naming` says: its message starts `Invalid <key> `
 * or `Invalid <key>:` when it names the field.
 */
export function usageError(error: z.ZodError, input: unknown, naming: Naming = BY_KEY): UsageError {
  const issue = error.issues[0]!;
  const cause = (issue as { params?: { error?: unknown } }).params?.error;
  if (cause instanceof UsageError) {
    const key = String(issue.path[0] ?? "");
    const named = key !== "" &&
      [" ", ":"].some((after) => cause.message.startsWith(`Invalid ${key}${after}`));
    const message = named
      ? `Invalid ${naming.label(key)}${cause.message.slice(`Invalid ${key}`.length)}`
      : cause.message;
    if (message === cause.message) return cause;
    return cause instanceof OutOfRangeError
      ? new OutOfRangeError(message, cause.hint)
      : new InvalidInputError(message, cause.hint);
  }
  if (naming.describe) return new InvalidInputError(naming.describe(issue, input));
  const where = issue.path.length > 0 ? `${naming.label(issue.path.join("."))}: ` : "";
  return new InvalidInputError(`Invalid ${where}${issue.message}`);
}

/**
 * Parses `input` with `schema`, or throws the {@link UsageError} of its first issue.
 *
 * @example
 * const options = parseInput(StatsOptionsSchema, { top: "5", long_running: "15m" });
 */
export function parseInput<S extends Schema>(
  schema: S,
  input: unknown,
  naming: Naming = BY_KEY,
): Output<S> {
  const result = schema.safeParse(input);
  if (!result.success) throw usageError(result.error, input, naming);
  return result.data;
}
