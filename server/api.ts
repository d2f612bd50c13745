/**
 * The HTTP API described once: every route's parameters and body (the operation schemas of
 * lib/input/, which the CLI parses its flags with), its responses and whether it needs the
 * bearer token. server/app.ts implements these routes; `/openapi.json` is generated from them.
 */
import { createRoute } from "@hono/zod-openapi";
import type { MiddlewareHandler } from "hono";
import { z } from "zod";
import { InvalidInputError } from "../lib/errors.ts";
import { parsed, shown, withDefault } from "../lib/input/fields.ts";
import {
  ListFilterObject,
  pageSize,
  type ResolvedListFilter,
  toListFilter,
} from "../lib/input/list_filter.ts";
import { NewTaskSchema } from "../lib/input/new_task.ts";
import { StatsOptionsSchema } from "../lib/input/stats_options.ts";
import { CheckOptionsSchema } from "../lib/input/check_thresholds.ts";
import { TransitionObject } from "../lib/input/transition.ts";
import { TASK_STATUSES } from "../lib/table/contract.ts";

/** Largest page a client may ask for. */
export const MAX_HTTP_LIMIT = 1000;

// ---- responses ----------------------------------------------------------------------------

const instant = z.string().meta({ format: "date-time" });
const nullableInstant = instant.nullable();

const ErrorBody = z.strictObject({
  error: z.strictObject({
    code: z.string().meta({ description: "Stable machine-readable code, e.g. not_found" }),
    message: z.string().meta({ description: "One line for a human" }),
    candidates: z.array(z.string()).optional()
      .meta({ description: "The matching ids of an ambiguous prefix" }),
  }),
}).meta({ id: "Error", description: '`{"error": {"code", "message"}}`' });

const Task = z.object({
  id: z.string().meta({ format: "uuid" }),
  status: z.enum(TASK_STATUSES),
  type: z.string(),
  description: z.string().nullable(),
  domain: z.string().nullable(),
  drift_score: z.number(),
  attempts: z.number().int(),
  locked_by: z.string().nullable(),
  locked_at: nullableInstant,
  run_after: nullableInstant,
  params: z.unknown(),
  result: z.unknown(),
  error: z.string().nullable(),
  created_at: instant,
  updated_at: instant,
}).catchall(z.unknown()).meta({
  id: "Task",
  description: "A row of the task table; a SeedCore table's extra columns appear as extra keys",
});

const TaskPage = z.strictObject({
  items: z.array(Task),
  next_cursor: z.string().nullable().meta({ description: "Pass as `after` for the next page" }),
  total: z.number().int().optional()
    .meta({ description: "How many match (with total=true or total=auto)" }),
  total_exact: z.boolean().optional()
    .meta({ description: "The total was counted (false: the planner's estimate)" }),
  total_note: z.string().nullable().optional()
    .meta({ description: "Why the total is an estimate (null when counted)" }),
}).meta({ id: "TaskPage" });

const Refused = z.strictObject({
  id: z.string(),
  status: z.string(),
  message: z.string(),
});

const TransitionReport = z.strictObject({
  changed: z.array(Task),
  refused: z.array(Refused),
}).meta({ id: "TransitionReport" });

const RefusedTransition = ErrorBody.extend({
  changed: z.array(Task),
  refused: z.array(Refused),
}).meta({ id: "RefusedTransition", description: "The error, and what changed and what not" });

const counts = z.record(z.string(), z.number());

const Statistics = z.strictObject({
  status_counts: counts,
  type_counts: counts,
  domain_counts: counts,
  recent_activity: z.array(z.strictObject({
    date: z.string(),
    created_count: z.number().int(),
    completed_count: z.number().int(),
    failed_count: z.number().int(),
  })),
  long_running: z.array(z.strictObject({
    id: z.string(),
    type: z.string(),
    locked_by: z.string().nullable(),
    locked_at: instant,
    attempts: z.number().int(),
    running_seconds: z.number(),
  })),
  high_attempts: z.array(z.strictObject({
    id: z.string(),
    type: z.string(),
    status: z.enum(TASK_STATUSES),
    attempts: z.number().int(),
    error: z.string().nullable(),
    updated_at: instant,
  })),
  long_running_total: z.number().int()
    .meta({ description: "Every long-running task (long_running lists the first top)" }),
  high_attempts_total: z.number().int().meta({
    description: "Every task with at least high_attempts attempts (high_attempts lists the " +
      "first top); estimated when attempts_distribution is",
  }),
  total: z.number().int(),
  status_percentages: counts,
  queue: z.strictObject({
    ready: z.number().int(),
    lag_seconds: z.number().nullable(),
    oldest_ready_at: nullableInstant,
    overdue: z.number().int(),
  }),
  stuck_running: z.number().int(),
  throughput: counts,
  failure_rate: z.strictObject({
    last_hour: z.number().nullable(),
    last_day: z.number().nullable(),
  }),
  run_duration_seconds: z.strictObject({
    p50: z.number().nullable(),
    p95: z.number().nullable(),
    sample: z.number().int(),
  }),
  attempts_distribution: counts,
  drift_score: z.strictObject({ avg: z.number().nullable(), max: z.number().nullable() }),
  exact: z.boolean(),
  estimates: z.strictObject({
    fields: z.array(z.string()),
    analyzed_at: nullableInstant,
    rows: z.number(),
  }).nullable(),
  options: z.strictObject({
    top: z.number().int(),
    days: z.number().int(),
    long_running_seconds: z.number(),
    high_attempts: z.number().int(),
  }),
  version: z.string(),
  generated_at: instant,
}).meta({ id: "Statistics", description: "What `seedtask stats --json` prints" });

const CHECK_STATES = ["OK", "WARNING", "CRITICAL", "UNKNOWN"] as const;

const CheckResult = z.strictObject({
  state: z.enum(CHECK_STATES),
  exit_code: z.number().int(),
  metrics: z.array(z.strictObject({
    name: z.enum(["lag", "stuck", "failure_rate", "queued"]),
    value: z.number(),
    warn: z.number().nullable(),
    crit: z.number().nullable(),
    state: z.enum(CHECK_STATES),
  })),
  health: z.strictObject({
    ready: z.number().int(),
    lag_seconds: z.number().nullable(),
    oldest_ready_at: nullableInstant,
    overdue: z.number().int(),
    queued: z.number().int().nullable(),
    stuck: z.number().int(),
    completed_last_hour: z.number().int(),
    failed_last_hour: z.number().int(),
    completed_last_day: z.number().int(),
    failed_last_day: z.number().int(),
    failure_rate_last_hour: z.number().nullable(),
    failure_rate_last_day: z.number().nullable(),
  }),
}).meta({ id: "CheckResult", description: "What `seedtask check --json` prints" });

const Health = z.strictObject({
  status: z.enum(["ok", "error"]),
  database: z.enum(["ok", "unreachable"]),
  version: z.string(),
  error: ErrorBody.shape.error.optional(),
});

// ---- requests -----------------------------------------------------------------------------

/** How `GET /tasks` counts its total: not at all, every match, or as `seedtask list` does. */
export type TotalMode = "none" | "exact" | "auto";

/** `total`: `true` counts every match (as before), `auto` as `seedtask list`, `false` none. */
const totalMode = parsed(z.union([z.boolean(), z.string()]), (value): TotalMode => {
  if (value === "auto") return "auto";
  if (value === true || ["true", "1", "", "exact"].includes(value as string)) return "exact";
  if (value === false || ["false", "0"].includes(value as string)) return "none";
  throw new InvalidInputError(
    `Invalid total "${shown(String(value))}": expected true (count every match), auto ` +
      `(counted when cheap, else estimated) or false`,
  );
}, { anyOf: [{ type: "boolean" }, { type: "string", enum: ["true", "false", "auto"] }] });

/** `GET /tasks`: the list filter with the server's page-size cap, and `total`. */
const ListQuery = ListFilterObject.extend({
  limit: pageSize(1, MAX_HTTP_LIMIT),
  total: withDefault(totalMode, false).meta({
    description: "Also say how many match: true counts every match; auto counts when cheap " +
      "and otherwise gives the planner's estimate (as seedtask list)",
  }),
}).transform((o, ctx): { filter: ResolvedListFilter; total: TotalMode } => {
  const { total, ...fields } = o;
  return { filter: toListFilter(fields, ctx), total };
});

const TaskIdParam = z.object({
  id: z.string().meta({ description: "Full task id or a unique prefix", example: "1a2b3c4d" }),
});

/** `POST /tasks/{id}/cancel`'s body: the transition's `force`. */
const CancelBody = TransitionObject.pick({ force: true });

const utf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * Reads a JSON body for the route's schema, whatever its content type (`curl -d` sends
 * form-urlencoded): strictly UTF-8 — a lossy decode would store U+FFFD in place of the bytes
 * the client sent — and an empty body as `{}`. The request handed on carries the same JSON
 * text, so a value JSON.parse reads as Infinity (`1e400`) still reaches the schema as such.
 */
const jsonBody: MiddlewareHandler = async (c, next) => {
  let text: string;
  try {
    text = utf8.decode(await c.req.arrayBuffer());
  } catch {
    throw new InvalidInputError("Request body is not valid UTF-8");
  }
  if (text.trim() === "") text = "{}";
  try {
    JSON.parse(text);
  } catch {
    throw new InvalidInputError("Request body is not valid JSON");
  }
  const headers = new Headers(c.req.raw.headers);
  headers.set("content-type", "application/json");
  c.req.raw = new Request(c.req.raw.url, { method: c.req.method, headers, body: text });
  c.req.bodyCache = {}; // what was read above is the old request's
  await next();
};

// ---- routes -------------------------------------------------------------------------------

const json = <S extends z.ZodType>(schema: S, description: string) => ({
  description,
  content: { "application/json": { schema } },
});

const ERROR_TEXT = {
  400: "Invalid query value, path parameter or body",
  401: "Missing or wrong bearer token (write routes; every route but /health off loopback)",
  403: "Write routes are disabled (start serve with --allow-write)",
  404: "No task matches the id or prefix",
  409: "The prefix matches several tasks (`candidates` lists them)",
  413: "Request body larger than 1 MiB",
  503: "Database unavailable, too busy, or the query timed out: try again after Retry-After",
} as const;

function errors<C extends keyof typeof ERROR_TEXT>(...codes: C[]) {
  return Object.fromEntries(codes.map((c) => [c, json(ErrorBody, ERROR_TEXT[c])])) as {
    [K in C]: ReturnType<typeof json<typeof ErrorBody>>;
  };
}

/** A transition's 409: refused in the task's status (with the report), or an ambiguous prefix. */
const refused = (description: string) => json(z.union([RefusedTransition, ErrorBody]), description);

const write = [{ bearer: [] as string[] }];

/** The routes of the API, by name; server/app.ts gives each its handler. */
export const ROUTES = {
  listTasks: createRoute({
    method: "get",
    path: "/tasks",
    summary: "List tasks, newest first (seedtask list --json)",
    request: { query: ListQuery },
    responses: { 200: json(TaskPage, "A page of tasks"), ...errors(400, 401, 503) },
  }),
  getTask: createRoute({
    method: "get",
    path: "/tasks/{id}",
    summary: "One task by id or unique prefix (seedtask show --json)",
    request: { params: TaskIdParam },
    responses: { 200: json(Task, "The task"), ...errors(400, 401, 404, 409, 503) },
  }),
  enqueueTask: createRoute({
    method: "post",
    path: "/tasks",
    summary: "Enqueue a task (seedtask enqueue --json)",
    security: write,
    middleware: [jsonBody] as const,
    request: {
      body: { required: true, content: { "application/json": { schema: NewTaskSchema } } },
    },
    responses: {
      201: json(Task, "The new task"),
      ...errors(400, 401, 403, 413, 503),
    },
  }),
  cancelTask: createRoute({
    method: "post",
    path: "/tasks/{id}/cancel",
    summary: 'Cancel a task (seedtask cancel --json); body {"force": true} for a running one',
    security: write,
    middleware: [jsonBody] as const,
    request: {
      params: TaskIdParam,
      body: { required: false, content: { "application/json": { schema: CancelBody } } },
    },
    responses: {
      200: json(TransitionReport, "Cancelled"),
      ...errors(400, 401, 403, 404, 413, 503),
      409: refused("Not cancellable in its status, or an ambiguous prefix"),
    },
  }),
  retryTask: createRoute({
    method: "post",
    path: "/tasks/{id}/retry",
    summary: "Put a failed or cancelled task back in the queue (seedtask retry --json)",
    security: write,
    request: { params: TaskIdParam },
    responses: {
      200: json(TransitionReport, "Requeued"),
      ...errors(400, 401, 403, 404, 503),
      409: refused("Not failed or cancelled, or an ambiguous prefix"),
    },
  }),
  stats: createRoute({
    method: "get",
    path: "/stats",
    summary: "Statistics and health (seedtask stats --json)",
    request: { query: StatsOptionsSchema },
    responses: { 200: json(Statistics, "Statistics"), ...errors(400, 401, 503) },
  }),
  check: createRoute({
    method: "get",
    path: "/check",
    summary: "Graded health (seedtask check --json): 200 OK or WARNING, 503 CRITICAL",
    request: { query: CheckOptionsSchema },
    responses: {
      200: json(CheckResult, "OK or WARNING"),
      ...errors(400, 401),
      503: json(
        z.union([CheckResult, ErrorBody]),
        "CRITICAL (the check's result), or the database is unavailable (an error)",
      ),
    },
  }),
  health: createRoute({
    method: "get",
    path: "/health",
    summary: "Liveness and a database ping (never needs the token)",
    responses: {
      200: json(Health, "Up, database reachable"),
      503: json(Health, "Database unreachable"),
    },
  }),
  metrics: createRoute({
    method: "get",
    path: "/metrics",
    summary: "Prometheus metrics (text exposition format)",
    responses: {
      200: { description: "Metrics", content: { "text/plain": { schema: z.string() } } },
      ...errors(401, 503),
    },
  }),
  openapi: createRoute({
    method: "get",
    path: "/openapi.json",
    summary: "This document",
    responses: {
      200: json(z.object({ openapi: z.string() }).catchall(z.unknown()), "OpenAPI 3"),
      ...errors(401),
    },
  }),
};
