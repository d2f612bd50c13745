/**
 * A new task: the input of `seedtask enqueue`, `POST /tasks` and `enqueueTask()`, checked here
 * before anything reaches the database. What a task may hold is bounded so that PostgreSQL
 * always accepts it: names fit an index entry, text holds no NUL byte, params are JSON a jsonb
 * column can store, run_after a timestamp both PostgreSQL and JavaScript can hold.
 */
import { z } from "zod";
import { parseDuration } from "../duration.ts";
import { InvalidInputError } from "../errors.ts";
import {
  checkInstant,
  checkJson,
  checkText,
  decimal,
  parsed,
  parseInput,
  shown,
  text,
  type Transformed,
  withDefault,
} from "./fields.ts";

/**
 * Longest `type` and `domain`, in characters. Both are indexed (a btree entry holds at most
 * about 2.7 kB) and are names, not documents; 255 leaves room for any real one.
 */
export const MAX_NAME_LENGTH = 255;

/** Longest `description`, in characters: a line or a paragraph for humans, not a payload. */
export const MAX_DESCRIPTION_LENGTH = 65_536;

/** Largest `params`, as JSON text in bytes (the HTTP API's whole body limit). */
export const MAX_PARAMS_BYTES = 1_048_576;

/** Deepest nesting of `params` (objects and arrays). */
export const MAX_PARAMS_DEPTH = 100;

/** The statuses a task may be created in: `queued` (claimable) or `created` (staged). */
export const NEW_TASK_STATUSES = ["queued", "created"] as const;

/** A new task, as the library takes it. */
export interface NewTask {
  /** The task type, e.g. `graph_embed` (at most 255 characters). */
  type: string;
  /** JSON parameters. Default `{}`. */
  params?: unknown;
  /** A free-text description (at most 65536 characters). */
  description?: string;
  /** The domain, e.g. a user or organisation (at most 255 characters). */
  domain?: string;
  /** The task's drift score. Default 0. */
  driftScore?: number;
  /** Not claimable before this instant (scheduling). */
  runAfter?: Date;
  /** `queued` (default: claimable) or `created` (staged, not claimable yet). */
  status?: typeof NEW_TASK_STATUSES[number];
}

/** A {@link NewTask} checked, with its defaults. */
export type ResolvedNewTask = NewTask & Required<Pick<NewTask, "params" | "driftScore" | "status">>;

/**
 * `run_after` / `--run-after`: an ISO-8601 instant (`2030-01-01T00:00:00Z`, years 1 to 9999) or
 * a duration from `now` (`5m`, at most 100 years). `what` names the flag or field.
 */
export function parseRunAfter(value: string | Date, what: string, now: Date = new Date()): Date {
  if (value instanceof Date) {
    checkInstant(value, what);
    return value;
  }
  if (/^\d{4}-\d\d-\d\d/.test(value)) {
    const date = new Date(value);
    if (Number.isNaN(date.getTime())) {
      throw new InvalidInputError(`Invalid ${what} "${shown(value)}": not a valid ISO-8601 time`);
    }
    checkInstant(date, what);
    return date;
  }
  return new Date(now.getTime() + parseDuration(value, what, "age"));
}

/** The fields of a new task, by their JSON names (`POST /tasks`; the CLI's flags map to them). */
export const NewTaskObject = z.strictObject({
  type: parsed(z.string(), (value) => {
    // Surrounding blanks are never part of a type name (a CLI argument or a JSON value alike).
    const type = value.trim();
    if (type === "") {
      throw new InvalidInputError(
        `Invalid type "${value}": a task needs a type, e.g. graph_embed`,
      );
    }
    checkText(type, "type", MAX_NAME_LENGTH);
    return type;
  }, { type: "string", minLength: 1, maxLength: MAX_NAME_LENGTH })
    .meta({ description: "Task type, e.g. graph_embed (surrounding blanks are dropped)" }),
  params: withDefault(
    parsed(z.unknown(), (value) => {
      checkJson(value, "params", { depth: MAX_PARAMS_DEPTH, bytes: MAX_PARAMS_BYTES });
      return value ?? {}; // JSON null: no parameters
    }),
    {},
  ).meta({
    description: `Any JSON, at most ${MAX_PARAMS_BYTES} bytes and ${MAX_PARAMS_DEPTH} levels ` +
      "deep; no NUL (\\u0000) in strings or keys",
  }),
  description: text("description", MAX_DESCRIPTION_LENGTH).optional()
    .meta({ description: "Human-readable description" }),
  domain: text("domain", MAX_NAME_LENGTH).optional().meta({ description: "Domain, e.g. user_123" }),
  drift_score: withDefault(decimal("drift_score"), 0).meta({ description: "Drift score" }),
  run_after: parsed(
    z.union([z.string(), z.date()]),
    (value) => parseRunAfter(value, "run_after"),
    { type: "string" },
  ).optional().meta({
    description: "Not claimable before: an ISO-8601 time or a duration from now (5m)",
  }),
  status: withDefault(z.enum(NEW_TASK_STATUSES), "queued").meta({
    description: "queued (claimable) or created (staged, not claimable yet)",
  }),
});

/**
 * The type of {@link NewTaskObject}.
 *
 * @internal A zod type, another package's (denoland/deno#27364).
 */
export type NewTaskObjectType = typeof NewTaskObject;

/** {@link NewTaskObject} producing the library's {@link ResolvedNewTask}. */
export const NewTaskSchema: Transformed<NewTaskObjectType, ResolvedNewTask> = NewTaskObject
  .transform((o): ResolvedNewTask => ({
    type: o.type,
    params: o.params,
    description: o.description,
    domain: o.domain,
    driftScore: o.drift_score,
    runAfter: o.run_after,
    status: o.status,
  }));

/** Checks a library caller's {@link NewTask} by the same rules, and applies the defaults. */
export function resolveNewTask(task: NewTask): ResolvedNewTask {
  return parseInput(NewTaskSchema, {
    type: task.type,
    params: task.params,
    description: task.description,
    domain: task.domain,
    drift_score: task.driftScore,
    run_after: task.runAfter,
    status: task.status,
  });
}
