import { z } from "zod";
import { type DurationUse, parseDuration } from "../lib/duration.ts";
import { type Naming, parseInput, parseWholeNumber } from "../lib/input/fields.ts";

/** Parses a whole-number flag value strictly ("10", not "10abc" or "1e3"). */
export function parseIntFlag(value: string, flag: string, min: number, max: number): number {
  return parseWholeNumber(value, flag, min, max);
}

/**
 * Parses a duration flag value (`30s`, `10m`) into milliseconds. A `timer` (the default) is at
 * most about 24.8 days, an `age` at most 100 years (see lib/duration.ts).
 */
export function parseDurationFlag(value: string, flag: string, use?: DurationUse): number {
  return parseDuration(value, flag, use);
}

/** Collects a repeatable flag into an array. */
export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/** Fields named as flags: `long_running` is `--long-running`. */
const FLAGS: Naming = { label: (key) => `--${key.replaceAll("_", "-")}` };

function keysOf(schema: z.ZodType): Set<string> {
  if (schema instanceof z.ZodPipe) return keysOf(schema.in as z.ZodType);
  if (schema instanceof z.ZodObject) return new Set(Object.keys(schema.shape));
  throw new TypeError("parseFlags() needs an object schema");
}

/**
 * Parses a command's options with the operation's schema (lib/input/): commander's camelCase
 * names become the schema's snake_case keys (`longRunning` is `long_running`), options the
 * schema does not know (`json`, `format`) stay out, and an error names the flag
 * (`Invalid --long-running "…"`).
 */
export function parseFlags<S extends z.ZodType>(
  schema: S,
  options: Record<string, unknown>,
): z.output<S> {
  const keys = keysOf(schema);
  const input: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(options)) {
    const key = name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
    if (keys.has(key) && value !== undefined) input[key] = value;
  }
  return parseInput(schema, input, FLAGS);
}

/** What the help of a flag shows about its schema field. */
interface FieldDoc {
  default?: unknown;
  enum?: unknown[];
}

/**
 * The help text of the flag of `key`, a field of `object` (an operation schema of lib/input/):
 * `text`, then the values the field allows and its default, read from the schema — where they
 * are decided — in commander's words: `(choices: "updated", "created", default: "updated")`.
 * Only the field is converted to JSON Schema, not the whole object: every command's help is
 * built at every start, `--version` included.
 */
export function fieldHelp(object: z.ZodObject, key: string, text: string): string {
  const field = object.shape[key];
  if (!field) throw new TypeError(`fieldHelp(): the schema has no field "${key}"`);
  const doc = z.toJSONSchema(field, { io: "input", unrepresentable: "any" }) as FieldDoc;
  const extra = [
    doc.enum ? `choices: ${doc.enum.map((v) => JSON.stringify(v)).join(", ")}` : "",
    doc.default !== undefined && doc.default !== false
      ? `default: ${JSON.stringify(doc.default)}`
      : "",
  ].filter(Boolean).join(", ");
  return extra ? `${text} (${extra})` : text;
}
