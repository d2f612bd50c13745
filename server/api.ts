/**
 * The HTTP API described once: every route's parameters and body (the operation schemas of
 * lib/input/, which the CLI parses its flags with), its responses and whether it needs the
 * bearer token. server/app.ts implements these routes; `/openapi.json` is generated from them.
 */
import { createRoute, type RouteConfig } from "@hono/zod-openapi";
import type { MiddlewareHandler } from "hono";
import { z } from "zod";
import { InvalidInputError } from "../lib/errors.ts";
import { flag, parsed, shown, withDefault } from "../lib/input/fields.ts";
import {
  ListFilterObject,
  pageSize,
  type ResolvedListFilter,
  toListFilter,
} from "../lib/input/list_filter.ts";
import { NewTaskObject, NewTaskSchema } from "../lib/input/new_task.ts";
import { StatsOptionsSchema } from "../lib/input/stats_options.ts";
import { PauseSchema, ResumeSchema } from "../lib/input/queue_pause.ts";
import { CheckOptionsSchema } from "../lib/input/check_thresholds.ts";
import {
  FailureGroupParam,
  FailureGroupsSchema,
  GroupActionSchema,
  LeasesSchema,
  WorkersSchema,
} from "../lib/input/insight.ts";
import {
  CancelFilterSchema,
  FilterTransitionSchema,
  TransitionObject,
} from "../lib/input/transition.ts";
import { LatencyOptionsSchema, ThroughputOptionsSchema } from "../lib/input/history_options.ts";
import { OverviewOptionsSchema } from "../lib/queries/overview.ts";
import { TASK_STATUSES } from "../lib/table/contract.ts";

/** Largest page a client may ask for. */
export const MAX_HTTP_LIMIT = 1000;

/** Most tasks one `POST /tasks/batch` takes: one batch, so a request is all or nothing. */
export const MAX_HTTP_BATCH = 1000;

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

/** A transition of the tasks `what` selects: a dry run, or exactly what it changed. */
const dryRunOrChanged = (what: string) =>
  z.union([
    z.strictObject({
      dry_run: z.literal(true),
      count: z.number().int().meta({ description: `Tasks ${what} would change` }),
      sample: z.array(Task).meta({ description: "The 10 most recently updated of them" }),
    }),
    z.strictObject({
      dry_run: z.literal(false),
      changed: z.array(Task).meta({ description: "Exactly the rows this request changed" }),
      refused: z.array(Refused),
    }),
  ]);

const FilterResult = dryRunOrChanged("the filter")
  .meta({ id: "FilterTransitionResult", description: "A dry run, or what was changed" });

const Pause = z.strictObject({
  type: z.string(),
  domain: z.string().nullable().meta({ description: "null: every domain of the type" }),
  reason: z.string().nullable(),
  paused_by: z.string(),
  paused_at: instant,
  waiting: z.number().int().optional()
    .meta({ description: "Claimable tasks it holds back (counted up to 100,000)" }),
  waiting_capped: z.boolean().optional().meta({ description: "More than 100,000 wait" }),
}).meta({ id: "Pause" });

const counts = z.record(z.string(), z.number());

const Bucket = z.strictObject({
  start: instant,
  completed: z.number().int(),
  failed: z.number().int(),
  open: z.boolean().meta({ description: "The current minute or hour, still filling" }),
});

const Throughput = z.strictObject({
  type: z.string().nullable(),
  minutes: z.array(Bucket).meta({ description: "Per minute, oldest first; the last is open" }),
  hours: z.array(Bucket).meta({ description: "Per hour, oldest first; the last is open" }),
  generated_at: instant,
}).meta({ id: "Throughput", description: "Tasks completed and failed per minute and per hour" });

const Percentiles = z.strictObject({
  p50: z.number().nullable(),
  p95: z.number().nullable(),
  p99: z.number().nullable(),
  max: z.number().nullable(),
});

const TypeLatency = z.strictObject({
  type: z.string().nullable().meta({ description: "null: every type together" }),
  finished: z.number().int(),
  completed: z.number().int(),
  failed: z.number().int(),
  wait_seconds: Percentiles.meta({ description: "Ready (created, or run_after) to claimed" }),
  run_seconds: Percentiles.meta({ description: "Claimed to finished" }),
});

const Latency = z.strictObject({
  window_seconds: z.number(),
  type: z.string().nullable(),
  sample_limit: z.number().int(),
  sampled: z.boolean().meta({ description: "More finishes than the limit: the newest measured" }),
  all: TypeLatency,
  types: z.array(TypeLatency),
  generated_at: instant,
}).meta({ id: "Latency", description: "Wait and run time percentiles of finished tasks" });

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
  paused: z.array(Pause).meta({ description: "Paused types; their work is not in `queue`" }),
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
  throughput_history: Throughput,
  latency: Latency,
}).meta({ id: "Statistics", description: "What `seedtask stats --json` prints" });

const TypeQueue = z.strictObject({
  type: z.string(),
  ready: z.number().int(),
  queued: z.number().int(),
  retry: z.number().int(),
  running: z.number().int(),
  oldest_ready_at: nullableInstant,
  lag_seconds: z.number().nullable(),
});

const Overview = z.strictObject({
  type: z.string().nullable(),
  status_counts: counts,
  estimated: z.array(z.enum(TASK_STATUSES))
    .meta({ description: "Statuses whose count is a planner estimate (a large table)" }),
  queue: z.array(TypeQueue).meta({ description: "Per type, worst lag first" }),
  queue_sample: z.number().int().nullable().meta({
    description: "null: every queued, retry and running task counted; else the queue per type " +
      "read only the oldest this many claimable and this many running tasks (a large backlog)",
  }),
  stuck: z.number().int().meta({
    description: "Stuck running tasks, counted up to 10,000 (see stuck_exact)",
  }),
  stuck_exact: z.boolean().meta({
    description: "false: more than 10,000 are stuck and stuck is that floor (seedtask leases " +
      "counts them all)",
  }),
  stuck_tasks: z.array(z.strictObject({
    id: z.string(),
    type: z.string(),
    locked_by: z.string().nullable(),
    locked_at: nullableInstant,
    lease_expires_at: nullableInstant,
    attempts: z.number().int(),
  })),
  throughput: Throughput,
  generated_at: instant,
}).meta({ id: "Overview", description: "What `seedtask top` shows in one frame" });

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
    paused: z.array(Pause).meta({ description: "Their work is left out of lag and queued" }),
  }),
}).meta({ id: "CheckResult", description: "What `seedtask check --json` prints" });

const Health = z.strictObject({
  status: z.enum(["ok", "error"]),
  database: z.enum(["ok", "unreachable"]),
  version: z.string(),
  error: ErrorBody.shape.error.optional(),
});

const FailureGroups = z.strictObject({
  groups: z.array(z.strictObject({
    id: z.string().meta({ description: "The group's id: what the group actions take" }),
    type: z.string(),
    fingerprint: z.string().meta({ description: "The error's first line, normalised" }),
    count: z.number().int().meta({ description: "Failures of the group among those grouped" }),
    share: z.number(),
    estimated_total: z.number().int()
      .meta({ description: "count scaled to the window's total when sampled" }),
    statuses: counts,
    first_seen: instant,
    last_seen: instant,
    trend: z.strictObject({
      this_hour: z.number().int(),
      previous_hour: z.number().int(),
      complete: z.boolean(),
    }),
    domains: z.array(z.strictObject({ domain: z.string().nullable(), count: z.number().int() })),
    attempts: z.strictObject({ min: z.number().int(), max: z.number().int() }),
    sample_ids: z.array(z.string()),
    example_error: z.string().nullable(),
  })),
  group_count: z.number().int(),
  total: z.number().int().meta({ description: "Failures in the window (exact)" }),
  analyzed: z.number().int().meta({ description: "Failures grouped" }),
  sampled: z.boolean().meta({ description: "Only the newest `sample_limit` were grouped" }),
  sample_limit: z.number().int().nullable(),
  analyzed_from: nullableInstant,
  window: z.strictObject({ since: instant, until: instant }),
  filter: z.strictObject({
    statuses: z.array(z.enum(TASK_STATUSES)),
    type: z.string().nullable(),
    domain: z.string().nullable(),
  }),
  generated_at: instant,
}).meta({ id: "FailureGroups", description: "What `seedtask failures --json` prints" });

const GroupAction = dryRunOrChanged("the action")
  .meta({ id: "GroupAction", description: "What the group action would change, or changed" });

const LeaseReport = z.strictObject({
  tasks: z.array(z.strictObject({
    id: z.string(),
    type: z.string(),
    domain: z.string().nullable(),
    owner: z.string().nullable(),
    attempts: z.number().int(),
    locked_at: nullableInstant,
    lease_expires_at: nullableInstant,
    last_heartbeat: nullableInstant,
    state: z.enum(["expired", "heartbeat_stale", "no_lease"]),
    requeue: z.enum(["retry", "failed"]).nullable()
      .meta({ description: "What requeue-stale would do to it now; null: nothing yet" }),
  })),
  total: z.number().int(),
  owners: z.array(z.strictObject({
    owner: z.string().nullable(),
    stuck: z.number().int(),
    expired: z.number().int(),
    running: z.number().int(),
    last_heard_at: nullableInstant,
    last_heard_seconds: z.number().nullable(),
    registered: z.boolean(),
  })),
  requeue_stale: z.strictObject({ retry: z.number().int(), failed: z.number().int() }),
  has_lease: z.boolean(),
  thresholds: z.strictObject({
    stale_after_seconds: z.number(),
    older_than_seconds: z.number(),
    max_attempts: z.number().int(),
  }),
  generated_at: instant,
}).meta({ id: "LeaseReport", description: "What `seedtask leases --json` prints" });

const WorkerList = z.strictObject({
  workers: z.array(z.strictObject({
    name: z.string(),
    registered: z.boolean(),
    host: z.string().nullable(),
    pid: z.number().int().nullable(),
    version: z.string().nullable(),
    started_at: nullableInstant,
    concurrency: z.number().int().nullable(),
    types: z.array(z.string()).nullable(),
    lease_ms: z.number().int().nullable(),
    last_seen_at: nullableInstant,
    last_seen_seconds: z.number().nullable(),
    silent: z.boolean(),
    running: z.number().int(),
    expired_leases: z.number().int(),
    counts: z.strictObject({
      claimed: z.number().int(),
      completed: z.number().int(),
      retried: z.number().int(),
      failed: z.number().int(),
    }).nullable(),
    in_flight: z.number().int().nullable(),
  })),
  registry: z.boolean(),
  hidden: z.number().int(),
  generated_at: instant,
}).meta({ id: "WorkerList", description: "What `seedtask workers --json` prints" });

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
const EnqueueResult = z.strictObject({
  enqueued: z.number().int().meta({ description: "Tasks written (valid, with dry_run)" }),
  batches: z.number().int(),
  dry_run: z.boolean(),
  ids: z.array(z.string().meta({ format: "uuid" })).optional()
    .meta({ description: "The new ids, in the order of the request's array" }),
}).meta({ id: "EnqueueResult", description: "What `seedtask enqueue --file --json` prints" });

const BatchError = ErrorBody.extend({
  error: ErrorBody.shape.error.extend({
    at: z.string().optional().meta({ description: "The bad element: [index]" }),
    enqueued: z.number().int().optional().meta({ description: "0: nothing was written" }),
  }),
}).meta({ id: "BatchError" });

// ---- requests -----------------------------------------------------------------------------

/** `POST /tasks/batch`'s body: an array of {@link NewTaskObject}. */
const NewTaskBatch = z.array(NewTaskObject).max(MAX_HTTP_BATCH).meta({
  description: `At most ${MAX_HTTP_BATCH} tasks, each as POST /tasks takes it`,
});

const BatchQuery = z.strictObject({
  dry_run: withDefault(flag("dry_run"), false)
    .meta({ description: "Check every task, write nothing" }),
});

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

/** `POST /tasks/{verb}`: a transition of every task a filter selects, a dry run by default. */
function filterRoute<S extends typeof FilterTransitionSchema | typeof CancelFilterSchema>(
  verb: "cancel" | "retry" | "release",
  schema: S,
) {
  return createRoute({
    method: "post",
    path: `/tasks/${verb}`,
    summary: `${verb[0]!.toUpperCase()}${verb.slice(1)} every task a filter selects ` +
      `(seedtask ${verb} with a filter, --json)`,
    description: 'A dry run unless the body says `"yes": true`' +
      (verb === "cancel" ? '; `"force": true` also cancels running tasks' : "") +
      (verb === "retry" ? "; failed and cancelled tasks unless `status` names retry" : ""),
    security: write,
    middleware: [jsonBody] as const,
    request: {
      body: { required: true, content: { "application/json": { schema } } },
    },
    responses: {
      200: json(FilterResult, "The dry run, or exactly the rows changed"),
      ...errors(400, 401, 403, 413, 503),
    },
  });
}

type RouteQuery = NonNullable<NonNullable<RouteConfig["request"]>["query"]>;

/**
 * `GET path`: the query validated by `query` (the operation's schema), a JSON answer, and the
 * errors every such route shares.
 */
function queryRoute<Q extends RouteQuery, A extends ReturnType<typeof json>>(
  route: { path: string; summary: string; query: Q; answer: A },
) {
  return createRoute({
    method: "get",
    path: route.path,
    summary: route.summary,
    request: { query: route.query },
    responses: { 200: route.answer, ...errors(400, 401, 503) },
  });
}

/** `POST /failures/{group}/{verb}`: a failure group's action, a dry run unless told. */
function groupRoute(verb: "retry" | "cancel", summary: string) {
  return createRoute({
    method: "post",
    path: `/failures/{group}/${verb}`,
    summary: `${summary}; a dry run unless the body says {"dry_run": false}`,
    security: write,
    middleware: [jsonBody] as const,
    request: {
      params: FailureGroupParam,
      body: { required: false, content: { "application/json": { schema: GroupActionSchema } } },
    },
    responses: {
      200: json(GroupAction, "What would change (dry run) or what changed"),
      ...errors(400, 401, 403, 413, 503),
    },
  });
}

/** The routes of the API, by name; server/app.ts gives each its handler. */
export const ROUTES = {
  listTasks: queryRoute({
    path: "/tasks",
    summary: "List tasks, newest first (seedtask list --json)",
    query: ListQuery,
    answer: json(TaskPage, "A page of tasks"),
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
  enqueueTasks: createRoute({
    method: "post",
    path: "/tasks/batch",
    summary: "Enqueue many tasks at once, all or none (seedtask enqueue --file --json)",
    description: `One INSERT and one NOTIFY for the whole array (at most ${MAX_HTTP_BATCH} ` +
      "tasks): a bad element, named by its index in `at`, means nothing was written.",
    security: write,
    middleware: [jsonBody] as const,
    request: {
      query: BatchQuery,
      body: { required: true, content: { "application/json": { schema: NewTaskBatch } } },
    },
    responses: {
      201: json(EnqueueResult, "Enqueued (or, with dry_run, all valid)"),
      400: json(BatchError, "A bad element (`at` names it) or a bad query value"),
      ...errors(401, 403, 503),
      413: json(ErrorBody, `Body larger than 1 MiB, or more than ${MAX_HTTP_BATCH} tasks`),
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
    summary: "Put a failed or cancelled task back in the queue, or run a retry task waiting on " +
      "its backoff now (seedtask retry --json)",
    security: write,
    request: { params: TaskIdParam },
    responses: {
      200: json(TransitionReport, "Requeued"),
      ...errors(400, 401, 403, 404, 503),
      409: refused("Not failed, cancelled or retry, or an ambiguous prefix"),
    },
  }),
  releaseTask: createRoute({
    method: "post",
    path: "/tasks/{id}/release",
    summary: "Move a staged (created) task to queued (seedtask release --json)",
    security: write,
    request: { params: TaskIdParam },
    responses: {
      200: json(TransitionReport, "Released"),
      ...errors(400, 401, 403, 404, 503),
      409: refused("Not created, or an ambiguous prefix"),
    },
  }),
  cancelWhere: filterRoute("cancel", CancelFilterSchema),
  retryWhere: filterRoute("retry", FilterTransitionSchema),
  releaseWhere: filterRoute("release", FilterTransitionSchema),
  pause: createRoute({
    method: "post",
    path: "/pause",
    summary: "Pause a task type, or one domain of it: no seedtask dispatcher claims its tasks " +
      "(seedtask pause --json)",
    security: write,
    middleware: [jsonBody] as const,
    request: { body: { required: true, content: { "application/json": { schema: PauseSchema } } } },
    responses: {
      200: json(
        z.strictObject({ pause: Pause, created: z.boolean() }),
        "Paused (`created` false: it already was; reason and who updated)",
      ),
      ...errors(400, 401, 403, 413, 503),
    },
  }),
  resume: createRoute({
    method: "post",
    path: "/resume",
    summary: "Resume a task type (every pause of it), or one domain (seedtask resume --json)",
    security: write,
    middleware: [jsonBody] as const,
    request: {
      body: { required: true, content: { "application/json": { schema: ResumeSchema } } },
    },
    responses: {
      200: json(
        z.strictObject({ resumed: z.array(Pause) }),
        "The pauses removed (none when nothing was paused)",
      ),
      ...errors(400, 401, 403, 413, 503),
    },
  }),
  paused: createRoute({
    method: "get",
    path: "/paused",
    summary:
      "The paused types: who paused them, when, why, and what waits (seedtask paused --json)",
    responses: {
      200: json(z.strictObject({ paused: z.array(Pause) }), "The pauses, oldest first"),
      ...errors(401, 503),
    },
  }),
  stats: queryRoute({
    path: "/stats",
    summary: "Statistics and health (seedtask stats --json)",
    query: StatsOptionsSchema,
    answer: json(Statistics, "Statistics"),
  }),
  throughput: queryRoute({
    path: "/throughput",
    summary: "Completed and failed per minute and per hour; closed buckets are counted once",
    query: ThroughputOptionsSchema,
    answer: json(Throughput, "Throughput history"),
  }),
  latency: queryRoute({
    path: "/latency",
    summary: "Wait and run time percentiles per type of the tasks finished in a window",
    query: LatencyOptionsSchema,
    answer: json(Latency, "Latency percentiles"),
  }),
  overview: queryRoute({
    path: "/overview",
    summary: "Counts, queue lag per type, stuck tasks and throughput: one frame of seedtask top",
    query: OverviewOptionsSchema,
    answer: json(Overview, "The overview"),
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
  failures: queryRoute({
    path: "/failures",
    summary: "Failures grouped by type and error fingerprint (seedtask failures --json)",
    query: FailureGroupsSchema,
    answer: json(FailureGroups, "Failure groups"),
  }),
  retryFailureGroup: groupRoute(
    "retry",
    "Retry the failed and cancelled tasks of a failure group (retry --group)",
  ),
  cancelFailureGroup: groupRoute(
    "cancel",
    "Cancel the tasks of a failure group still waiting to retry (cancel --group)",
  ),
  leases: queryRoute({
    path: "/leases",
    summary:
      "Stuck running tasks by owner, and what requeue-stale would do (seedtask leases --json)",
    query: LeasesSchema,
    answer: json(LeaseReport, "Stuck tasks"),
  }),
  workers: queryRoute({
    path: "/workers",
    summary: "Dispatchers, live and silent, with their running tasks (seedtask workers --json)",
    query: WorkersSchema,
    answer: json(WorkerList, "Workers"),
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
