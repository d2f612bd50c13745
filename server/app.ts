/**
 * The HTTP API (DESIGN §7): the same lib functions as the CLI, the same JSON as `--json`.
 * `createApp(deps)` builds a Hono app; `seedtask serve` owns Deno.serve and shutdown.
 */
import { type Context, Hono, type MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import { timingSafeEqual } from "hono/utils/buffer";
import { z } from "zod";
import { type CheckThresholds, gradeHealth, parseThreshold } from "../lib/queries/check_health.ts";
import { type Db, guard } from "../lib/db.ts";
import { parseDuration } from "../lib/duration.ts";
import { enqueueTask } from "../lib/ops/enqueue_task.ts";
import {
  AmbiguousTaskIdError,
  ConnectionError,
  DatabaseError,
  IncompatibleTableError,
  InvalidInputError,
  isUsageError,
  oneLine,
  SeedtaskError,
  TableNotFoundError,
  TaskNotFoundError,
} from "../lib/errors.ts";
import { getTask } from "../lib/queries/get_task.ts";
import { type ListFilter, listTasks, listTasksQuery } from "../lib/queries/list_tasks.ts";
import { listTasksJson } from "../lib/queries/list_tasks_json.ts";
import { parseRunAfter } from "../lib/input/task_input.ts";
import { getQueueHealth, type QueueHealth } from "../lib/queries/queue_health.ts";
import {
  getTaskStatistics,
  type StatsOptions,
  type TaskStatistics,
} from "../lib/queries/task_stats.ts";
import { parseStatuses } from "../lib/table/contract.ts";
import { cancelTasks, retryTasks, type TransitionReport } from "../lib/ops/task_transitions.ts";
import { VERSION } from "../lib/version.ts";
import { DbGate, type GateOptions, isUnavailable, ShedError } from "./db_gate.ts";
import type { LogCounters } from "./line_log.ts";
import { TaskMetrics } from "./metrics.ts";
import { openApiDocument } from "./openapi.ts";
import { SingleFlightCache } from "./single_flight.ts";

/** What the app needs from its host. */
export interface AppDeps {
  db: Db;
  /** Enables POST /tasks, /tasks/:id/cancel and /tasks/:id/retry (which also need the token). */
  allowWrite?: boolean;
  /** The bearer token. Write routes always need it. */
  token?: string;
  /** Read routes need the token too (a non-loopback bind). */
  requireTokenForReads?: boolean;
  /** How long /stats, /metrics and /check answers are reused. Default 1s. */
  cacheTtlMs?: number;
  /** One line per request: method, path, status, ms. */
  log?: (line: string) => void;
  /** The log's dropped and pending line counts, for /metrics. */
  logCounters?: LogCounters;
  /** Limits of database work (server/db_gate.ts); the concurrency defaults to the pool size. */
  shedding?: Partial<Omit<GateOptions, "probe">>;
  /** Replaces getTaskStatistics (tests count the loads through it). */
  loadStats?: (db: Db, options: StatsOptions) => Promise<TaskStatistics>;
}

/** Largest page a client may ask for. */
export const MAX_HTTP_LIMIT = 1000;

class HttpError extends Error {
  constructor(
    readonly status: 400 | 401 | 403 | 404 | 409 | 413 | 503,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

type Query = Record<string, string[]>;

function only(query: Query, allowed: readonly string[]): void {
  const unknown = Object.keys(query).filter((k) => !allowed.includes(k));
  if (unknown.length > 0) {
    throw new InvalidInputError(
      `Unknown query parameter "${unknown[0]}": expected ${allowed.join(", ")}`,
    );
  }
}

function one(query: Query, name: string): string | undefined {
  const values = query[name];
  if (!values) return undefined;
  if (values.length > 1) {
    throw new InvalidInputError(`Query parameter "${name}" given more than once`);
  }
  return values[0];
}

function int(query: Query, name: string, min: number, max: number): number | undefined {
  const v = one(query, name);
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v) || Number(v) < min || Number(v) > max) {
    throw new InvalidInputError(
      `Invalid ${name} "${v}": expected a whole number from ${min} to ${max}`,
    );
  }
  return Number(v);
}

function bool(query: Query, name: string): boolean {
  const v = one(query, name);
  if (v === undefined) return false;
  if (["true", "1", ""].includes(v)) return true;
  if (["false", "0"].includes(v)) return false;
  throw new InvalidInputError(`Invalid ${name} "${v}": expected true or false`);
}

const NewTaskBody = z.strictObject({
  type: z.string().trim().min(1, "type must not be empty"),
  params: z.unknown().optional(),
  description: z.string().optional(),
  domain: z.string().optional(),
  drift_score: z.number().finite().optional(),
  run_after: z.string().optional(),
  status: z.enum(["queued", "created"]).optional(),
});

const CancelBody = z.strictObject({ force: z.boolean().optional() });

const utf8 = new TextDecoder("utf-8", { fatal: true });

async function readJson(req: Request): Promise<unknown> {
  let text: string;
  try {
    // Strict: a lossy decode would store U+FFFD in place of the bytes the client sent.
    text = utf8.decode(await req.arrayBuffer());
  } catch {
    throw new InvalidInputError("Request body is not valid UTF-8");
  }
  if (text.trim() === "") return {};
  try {
    return JSON.parse(text);
  } catch {
    throw new InvalidInputError("Request body is not valid JSON");
  }
}

function parseBody<T>(schema: z.ZodType<T>, body: unknown): T {
  const parsed = schema.safeParse(body);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const where = issue.path.length > 0 ? `"${issue.path.join(".")}": ` : "";
    throw new InvalidInputError(`Invalid body: ${where}${issue.message}`);
  }
  return parsed.data;
}

/** /health's database check: `select 1`, at most 2 s. */
const PING_TIMEOUT_MS = 2000;

class PingTimeout extends ConnectionError {
  constructor() {
    super("unreachable", "Database ping timed out");
  }
}

/** Resolves when the database answers `select 1`; rejects after {@link PING_TIMEOUT_MS}. */
async function ping(db: Db): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new PingTimeout()), PING_TIMEOUT_MS);
  });
  try {
    await Promise.race([guard(db, () => db.sql`select 1`), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Builds the Hono app over `deps.db`. */
export function createApp(deps: AppDeps): Hono {
  const db = deps.db;
  const gate = new DbGate({
    concurrency: db.config.maxConnections,
    ...deps.shedding,
    probe: () => ping(db),
  });
  const singleFlight = new SingleFlightCache<unknown>(deps.cacheTtlMs ?? 1000);
  // A computation shared by many requests is one unit of database work, not one per request.
  const cache = {
    get: (key: string, load: () => Promise<unknown>) => singleFlight.get(key, () => gate.run(load)),
  };
  const loadStats = deps.loadStats ?? getTaskStatistics;
  const metrics = new TaskMetrics({ log: deps.logCounters, gate });
  const stats = (options: StatsOptions) =>
    cache.get(`stats:${JSON.stringify(options)}`, () => loadStats(db, options)) as Promise<
      TaskStatistics
    >;

  const app = new Hono();

  app.use("*", async (c, next) => {
    const started = performance.now();
    await next();
    deps.log?.(
      `${new Date().toISOString()} ${c.req.method} ${c.req.path} ${c.res.status} ${
        Math.round(performance.now() - started)
      }ms`,
    );
  });

  const authorized = async (header: string | undefined): Promise<boolean> => {
    if (!deps.token) return false;
    // The scheme is case-insensitive and followed by one or more spaces (RFC 7235 §2.1).
    const m = /^bearer +(\S+)$/i.exec(header ?? "");
    return !!m && await timingSafeEqual(m[1]!, deps.token);
  };
  app.use("*", async (c, next) => {
    const write = c.req.method !== "GET" && c.req.method !== "HEAD";
    if (write && !deps.allowWrite) {
      throw new HttpError(
        403,
        "read_only",
        "This server is read-only: start it with --allow-write",
      );
    }
    const needsToken = write || (deps.requireTokenForReads && c.req.path !== "/health");
    if (needsToken && !(await authorized(c.req.header("authorization")))) {
      c.header("www-authenticate", 'Bearer realm="seedtask"');
      throw new HttpError(401, "unauthorized", "Missing or wrong bearer token");
    }
    await next();
  });
  app.use(
    "*",
    bodyLimit({
      maxSize: 1024 * 1024,
      onError: () => {
        throw new HttpError(413, "body_too_large", "Request body larger than 1 MiB");
      },
    }),
  );
  app.use("*", async (c, next) => {
    // Hono keeps an undecodable query value as its raw text ("%FF"), which would then be used
    // as a filter; a client that sends bytes that are not UTF-8 gets told instead.
    const search = new URL(c.req.url).search.slice(1);
    for (const part of search === "" ? [] : search.split("&")) {
      try {
        decodeURIComponent(part.replaceAll("+", " "));
      } catch {
        const name = part.split("=")[0]!.slice(0, 40);
        throw new InvalidInputError(
          `Invalid query parameter "${name}": not percent-encoded UTF-8`,
        );
      }
    }
    await next();
  });

  // Database work goes through the gate (server/db_gate.ts): a request on /tasks holds a unit
  // for its whole handler; /stats, /metrics and /check only pass the circuit here, and their
  // shared computations take a unit each (the cache above). A refused request is a 503 with
  // Retry-After; so is a database failure that says the database is down.
  const shed = (c: Context, err: ShedError) =>
    c.json({ error: { code: err.code, message: err.message } }, 503, {
      "retry-after": String(err.retryAfterS),
    });
  const gated = (perRequest: boolean): MiddlewareHandler => async (c, next) => {
    let release = () => {};
    try {
      if (perRequest) release = await gate.acquire();
      else await gate.pass();
    } catch (err) {
      if (err instanceof ShedError) return shed(c, err);
      throw err;
    }
    try {
      await next();
    } finally {
      release();
    }
    if (c.error instanceof ShedError) {
      c.res = shed(c, c.error);
    } else if (c.error) {
      gate.observe(c.error);
      if (c.res.status === 503 && isUnavailable(c.error)) {
        c.res.headers.set("retry-after", String(gate.retryAfterS));
      }
    }
    return undefined;
  };
  app.use("/tasks/*", gated(true)); // also matches /tasks itself
  for (const path of ["/stats", "/metrics", "/check"]) app.use(path, gated(false));

  const tasks = new Hono();
  tasks.get("/", async (c) => {
    const q = c.req.queries() as Query;
    only(q, ["status", "type", "domain", "search", "limit", "sort", "after", "total"]);
    const sort = one(q, "sort") ?? "updated";
    if (sort !== "updated" && sort !== "created") {
      throw new InvalidInputError(`Invalid sort "${sort}": expected updated or created`);
    }
    const filter: ListFilter = {
      statuses: q.status ? parseStatuses(q.status) : undefined,
      type: one(q, "type"),
      domain: one(q, "domain"),
      search: one(q, "search"),
      sort,
      after: one(q, "after"),
      limit: int(q, "limit", 1, MAX_HTTP_LIMIT) ?? 50,
    };
    const total = bool(q, "total");
    // The page as JSON rendered by PostgreSQL (see listTasksJson); a table with a column type
    // it has no rule for takes the parse-and-serialise path.
    const text = await listTasksJson(db, filter);
    const page = text === null ? JSON.stringify(await listTasks(db, filter)) : text;
    if (!total) return c.body(page, 200, { "content-type": "application/json" });
    const { after: _, ...all } = filter;
    const [{ n }] = await guard(
      db,
      () => db.sql`select count(*)::int as n from (${listTasksQuery(db, all, { limit: null })}) t`,
    ) as unknown as [{ n: number }];
    return c.body(`${page.slice(0, -1)},"total":${n}}`, 200, {
      "content-type": "application/json",
    });
  });
  tasks.get("/:id", async (c) => c.json(await getTask(db, c.req.param("id"))));
  tasks.post("/", async (c) => {
    const body = parseBody(NewTaskBody, await readJson(c.req.raw));
    const runAfter = body.run_after === undefined
      ? undefined
      : parseRunAfter(body.run_after, "run_after");
    const task = await enqueueTask(db, {
      type: body.type,
      params: body.params,
      description: body.description,
      domain: body.domain,
      driftScore: body.drift_score,
      runAfter,
      status: body.status,
    });
    return c.json(task, 201);
  });
  const transition =
    (run: (id: string, force: boolean) => Promise<TransitionReport>, withForce: boolean) =>
    async (
      c: {
        req: { param(n: string): string; raw: Request };
        json(v: unknown, s?: number): Response;
      },
    ) => {
      const body = withForce ? parseBody(CancelBody, await readJson(c.req.raw)) : {};
      const report = await run(c.req.param("id"), !!(body as { force?: boolean }).force);
      if (report.refused.length > 0) {
        return c.json({
          error: { code: "invalid_transition", message: report.refused[0]!.message },
          ...report,
        }, 409);
      }
      return c.json(report);
    };
  tasks.post("/:id/cancel", transition((id, force) => cancelTasks(db, [id], { force }), true));
  tasks.post("/:id/retry", transition((id) => retryTasks(db, [id]), false));
  app.route("/tasks", tasks);

  app.get("/stats", async (c) => {
    const q = c.req.queries() as Query;
    only(q, ["top", "days", "long_running", "high_attempts", "exact"]);
    const lr = one(q, "long_running");
    const options: StatsOptions = {
      top: int(q, "top", 1, 1000),
      days: int(q, "days", 1, 3650),
      longRunningMs: lr === undefined ? undefined : parseDuration(lr, "long_running", "age"),
      highAttempts: int(q, "high_attempts", 1, 1_000_000),
      exact: bool(q, "exact"),
    };
    return c.json(await stats(options));
  });

  app.get("/check", async (c) => {
    const q = c.req.queries() as Query;
    only(q, ["max_lag", "max_stuck", "max_failure_rate", "max_queued", "long_running"]);
    const t = (name: string, kind: "duration" | "count" | "rate") => {
      const v = one(q, name);
      return v === undefined ? undefined : parseThreshold(v, kind, name);
    };
    const thresholds: CheckThresholds = {
      lag: t("max_lag", "duration"),
      stuck: t("max_stuck", "count"),
      failure_rate: t("max_failure_rate", "rate"),
      queued: t("max_queued", "count"),
    };
    const lr = one(q, "long_running");
    const longRunningMs = lr === undefined ? undefined : parseDuration(lr, "long_running", "age");
    // The health numbers are shared (single-flight, TTL); grading is per request.
    const health = await cache.get(
      `health:${longRunningMs}`,
      () => getQueueHealth(db, { longRunningMs }),
    );
    const result = gradeHealth(health as QueueHealth, thresholds);
    return c.json({
      state: result.state,
      exit_code: result.exit_code,
      metrics: result.metrics,
      health: result.health,
    }, result.state === "CRITICAL" ? 503 : 200);
  });

  app.get("/health", async (c) => {
    // Always a real ping, whatever the gate believes; its answer also informs the gate (a ping
    // that merely waited behind busy connections is no sign of an outage).
    try {
      await ping(db);
      gate.reachable();
      return c.json({ status: "ok", database: "ok", version: VERSION });
    } catch (err) {
      if (!(err instanceof PingTimeout)) gate.observe(err);
      return c.json({
        status: "error",
        database: "unreachable",
        version: VERSION,
        error: { code: "database_unavailable", message: "The database is unreachable" },
      }, 503);
    }
  });

  app.get("/metrics", async (c) => {
    const text = await metrics.render(await stats({ top: 50 }));
    return c.body(text, 200, { "content-type": metrics.contentType });
  });

  app.get("/openapi.json", (c) => c.json(openApiDocument()));

  app.notFound((c) =>
    c.json({ error: { code: "not_found", message: `No route ${c.req.method} ${c.req.path}` } }, 404)
  );

  app.onError((err, c) => {
    const body = (
      status: number,
      code: string,
      message: string,
      extra: Record<string, unknown> = {},
    ) => c.json({ error: { code, message: oneLine(message), ...extra } }, status as 400);
    if (err instanceof HttpError) return body(err.status, err.code, err.message);
    if (isUsageError(err)) return body(400, err.code, err.message);
    if (err instanceof TaskNotFoundError) return body(404, err.code, err.message);
    if (err instanceof AmbiguousTaskIdError) {
      return body(409, err.code, err.message, { candidates: err.candidates });
    }
    // Database trouble: a generic message (never the server's address or DSN); details to the log.
    if (err instanceof ConnectionError) {
      deps.log?.(`error: ${err.message}`);
      return body(503, "database_unavailable", "The database is unavailable");
    }
    if (err instanceof IncompatibleTableError) {
      deps.log?.(`error: ${err.message}`);
      return body(503, err.code, "The task table does not have the shape seedtask needs");
    }
    if (err instanceof TableNotFoundError) {
      deps.log?.(`error: ${err.message}`);
      return body(503, err.code, "The task table does not exist; run `seedtask migrate`");
    }
    if (err instanceof DatabaseError) {
      deps.log?.(`error: ${err.message}`);
      return body(
        503,
        err.code,
        err.sqlState === "57014" ? "The query timed out" : "Database error",
      );
    }
    if (err instanceof SeedtaskError) return body(409, err.code, err.message);
    deps.log?.(`error: ${(err as Error).stack ?? err}`);
    return body(500, "internal_error", "Internal error");
  });

  return app;
}
