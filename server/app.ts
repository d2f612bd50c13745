/**
 * The HTTP API: the same lib functions as the CLI, the same JSON as `--json`.
 * `createApp(deps)` builds a Hono app; `seedtask serve` owns Deno.serve and shutdown. The routes
 * are described in server/api.ts, with the operation schemas of lib/input/, from which
 * `/openapi.json` is generated.
 */
import { OpenAPIHono } from "@hono/zod-openapi";
import type { Context, MiddlewareHandler } from "hono";
import { bearerAuth } from "hono/bearer-auth";
import { bodyLimit } from "hono/body-limit";
import { HTTPException } from "hono/http-exception";
import { z } from "zod";
import { checkHealth } from "../lib/queries/check_health.ts";
import { type Db, guard } from "../lib/db.ts";
import { enqueueTask } from "../lib/ops/enqueue_task.ts";
import { BulkEnqueueError, enqueueTasks } from "../lib/ops/enqueue_tasks.ts";
import { listPauses, pauseQueue, resumeQueue } from "../lib/ops/queue_pauses.ts";
import { ConnectionError, InvalidInputError, oneLine, SeedtaskError } from "../lib/errors.ts";
import { shown, usageError } from "../lib/input/fields.ts";
import { type ResolvedStatsOptions, resolveStatsOptions } from "../lib/input/stats_options.ts";
import { getTask } from "../lib/queries/get_task.ts";
import { listTasks } from "../lib/queries/list_tasks.ts";
import { listTasksJson } from "../lib/queries/list_tasks_json.ts";
import { countListTotal, totalBesidePage } from "../lib/queries/list_total.ts";
import type { TaskStatistics } from "../lib/queries/task_stats.ts";
import {
  cancelTasks,
  type FilterPreview,
  releaseCreatedTasks,
  retryTasks,
  type TransitionReport,
  TRANSITIONS,
} from "../lib/ops/task_transitions.ts";
import type { Task } from "../lib/table/contract.ts";
import { VERSION } from "../lib/version.ts";
import { MAX_HTTP_BATCH, MAX_HTTP_LIMIT, ROUTES } from "./api.ts";
import { DbGate, type GateOptions, isUnavailable, ShedError } from "./db_gate.ts";
import type { LogCounters } from "./line_log.ts";
import { METRICS_TOP, TaskMetrics } from "./metrics.ts";
import { sharedReports } from "./reports.ts";
import { SingleFlightCache } from "./single_flight.ts";
import { CONSOLE_PATH, createConsole } from "./console/app.tsx";
import type { ThroughputCache } from "../lib/queries/throughput.ts";

/** Whether a path belongs to the web console, which checks its own sign-in (console/auth.ts). */
function isConsolePath(path: string): boolean {
  return path === "/" || path === CONSOLE_PATH || path.startsWith(`${CONSOLE_PATH}/`);
}

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
  /** The clock of that reuse, in ms (default Date.now; tests move their own). */
  cacheClock?: () => number;
  /** One line per request: method, path, status, ms. */
  log?: (line: string) => void;
  /** The log's dropped and pending line counts, for /metrics. */
  logCounters?: LogCounters;
  /** Limits of database work (server/db_gate.ts); the concurrency defaults to the pool size. */
  shedding?: Partial<Omit<GateOptions, "probe">>;
  /**
   * The path prefix a reverse proxy serves the app under (e.g. `/seedtask`), for the
   * console's links and cookie; requests reach the app with it already removed
   * (see server/base_path.ts). Default "".
   */
  basePath?: string;
  /** Seconds between the console's live refreshes (default 5). */
  consoleRefreshSeconds?: number;
  /** Told the key of every shared computation that runs (benchmarks count them per TTL). */
  onComputation?: (key: string) => void;
  /** Replaces getTaskStatistics (tests count the loads through it). */
  loadStats?: (
    db: Db,
    options: ResolvedStatsOptions,
    throughput: ThroughputCache,
  ) => Promise<TaskStatistics>;
}

export { MAX_HTTP_LIMIT };

/** An answer in the error shape, for refusals decided before any handler runs. */
function refusal(status: 403 | 413, code: string, message: string): HTTPException {
  return new HTTPException(status, {
    res: Response.json({ error: { code, message } }, { status }),
  });
}

/** The `code` of an HTTPException that came without the project's error body. */
const HTTP_CODES: Record<number, string> = {
  400: "invalid_input",
  413: "body_too_large",
  415: "unsupported_media_type",
};

/** The query's names, for the message about an unknown one. */
function queryKeys(schema: z.ZodType | undefined): string[] {
  if (schema instanceof z.ZodPipe) return queryKeys(schema.in as z.ZodType);
  return schema instanceof z.ZodObject ? Object.keys(schema.shape) : [];
}

/** A route of ROUTES with a query schema. */
type QueryRoute = Parameters<OpenAPIHono["openapi"]>[0] & { request: { query: unknown } };

/** What a route's query schema parses to. */
type QueryOf<R extends QueryRoute> = z.output<R["request"]["query"] & z.ZodType>;

/**
 * How a request that fails its route's schema is answered: the first issue as a usage error
 * (400), naming the field as the client spelt it. A field's own rule words its message (the
 * same as the CLI's, with the flag's name); the issues zod finds itself are worded here.
 */
function requestHook(route: { request?: unknown }) {
  const known = queryKeys((route.request as { query?: z.ZodType } | undefined)?.query);
  return (
    result: { success: boolean; target: string; error?: z.ZodError },
    c: Context,
  ): undefined => {
    if (result.success) return undefined;
    const error = result.error!;
    const target = result.target;
    // A misspelt name explains the rest: it is reported first.
    const unknown = error.issues.find((i) => i.code === "unrecognized_keys") as
      | { keys: string[]; message: string }
      | undefined;
    if (unknown && target === "query") {
      throw new InvalidInputError(
        `Unknown query parameter "${shown(unknown.keys[0]!)}": expected ${known.join(", ")}`,
      );
    }
    if (unknown) throw new InvalidInputError(`Invalid body: ${unknown.message}`);
    throw usageError(error, undefined, {
      label: (key) => key,
      describe: (issue) => {
        const key = issue.path.join(".");
        if (target === "json") {
          return `Invalid body: ${key === "" ? "" : `"${key}": `}${issue.message}`;
        }
        if (target === "query" && (c.req.queries(key)?.length ?? 0) > 1) {
          return `Query parameter "${key}" given more than once`;
        }
        return `Invalid ${key}: ${issue.message}`;
      },
    });
  };
}

/**
 * `POST /tasks/batch`'s answer to a body that fails its schema: a bad element is named by its
 * index (`at`), as `enqueue --file` names a line; an array over the cap is a 413.
 */
function batchHook(route: { request?: unknown }) {
  const general = requestHook(route);
  return (
    result: { success: boolean; target: string; error?: z.ZodError },
    c: Context,
  ): undefined => {
    if (result.success || result.target !== "json") return general(result, c);
    const issue = result.error!.issues[0]!;
    if (issue.path.length === 0 && issue.code === "too_big") {
      throw refusal(
        413,
        "too_many_tasks",
        `Too many tasks: at most ${MAX_HTTP_BATCH} per request (split the array)`,
      );
    }
    const index = issue.path[0];
    if (typeof index !== "number") return general(result, c);
    const err = usageError(result.error!, undefined, {
      label: (key) => key,
      describe: (i) => {
        const field = i.path.slice(1).join(".");
        return `Invalid ${field === "" ? "task" : `"${field}"`}: ${i.message}`;
      },
    });
    const reason = /^[A-Z][a-z]/.test(err.message)
      ? err.message[0]!.toLowerCase() + err.message.slice(1)
      : err.message;
    throw new BulkEnqueueError(`[${index}]`, reason, {
      enqueued: 0,
      writtenThrough: null,
      dryRun: false,
    });
  };
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
export function createApp(deps: AppDeps): OpenAPIHono {
  const db = deps.db;
  const gate = new DbGate({
    concurrency: db.config.maxConnections,
    ...deps.shedding,
    probe: () => ping(db),
  });
  const singleFlight = new SingleFlightCache<unknown>(deps.cacheTtlMs ?? 1000, deps.cacheClock);
  // A computation shared by many requests is one unit of database work, not one per request.
  const cache = <T>(key: string, load: () => Promise<T>) =>
    singleFlight.get(key, () => {
      deps.onComputation?.(key);
      return gate.run(load);
    }) as Promise<T>;
  const metrics = new TaskMetrics({ log: deps.logCounters, gate });
  // What the routes and the console share: one computation per report, options and TTL.
  const reports = sharedReports(db, cache, deps.loadStats);

  const app = new OpenAPIHono();

  app.use("*", async (c, next) => {
    const started = performance.now();
    await next();
    deps.log?.(
      `${new Date().toISOString()} ${c.req.method} ${c.req.path} ${c.res.status} ${
        Math.round(performance.now() - started)
      }ms`,
    );
  });

  // Hono's bearer auth: the scheme in any case (RFC 7235 §2.1), the token compared in constant
  // time, WWW-Authenticate on every 401; the answer in the project's error shape.
  const unauthorized = () =>
    Response.json(
      { error: { code: "unauthorized", message: "Missing or wrong bearer token" } },
      { status: 401 },
    );
  const bearer = bearerAuth({
    ...(deps.token ? { token: deps.token } : { verifyToken: () => false }),
    realm: "seedtask",
    noAuthenticationHeader: { message: unauthorized },
    invalidAuthenticationHeader: { message: unauthorized },
    invalidToken: { message: unauthorized },
  });
  app.use("*", async (c, next) => {
    if (isConsolePath(c.req.path)) return await next();
    const write = c.req.method !== "GET" && c.req.method !== "HEAD";
    if (write && !deps.allowWrite) {
      throw refusal(403, "read_only", "This server is read-only: start it with --allow-write");
    }
    const needsToken = write || (deps.requireTokenForReads && c.req.path !== "/health");
    if (needsToken) return await bearer(c, next);
    await next();
  });
  app.use(
    "*",
    bodyLimit({
      maxSize: 1024 * 1024,
      onError: () => {
        throw refusal(413, "body_too_large", "Request body larger than 1 MiB");
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
  for (const path of ["/pause", "/resume", "/paused"]) app.use(path, gated(true));
  app.use("/failures/*", gated(true)); // the group actions
  for (
    const path of [
      "/stats",
      "/metrics",
      "/check",
      "/failures",
      "/leases",
      "/workers",
      "/throughput",
      "/latency",
      "/overview",
    ]
  ) {
    app.use(path, gated(false));
  }

  // Every route validates its query and body with its operation's schema (server/api.ts) and
  // calls the same lib function as the CLI command, answering with the same JSON as --json.
  const { listTasks: listRoute, enqueueTask: enqueueRoute, cancelTask: cancelRoute } = ROUTES;
  app.openapi(listRoute, async (c) => {
    const { filter, total } = c.req.valid("query");
    // The page as JSON rendered by PostgreSQL (see listTasksJson); a table with a column type
    // it has no rule for takes the parse-and-serialise path.
    // The total is read beside the page, on another connection (as `seedtask list` does).
    const [text, count] = await Promise.all([
      listTasksJson(db, filter),
      total === "none" ? null : countListTotal(db, filter, { exact: total === "exact" }),
    ]);
    const page = text === null ? JSON.stringify(await listTasks(db, filter)) : text;
    let body = page;
    if (count !== null) {
      const counted = total === "exact" ? count : totalBesidePage(JSON.parse(page), count, filter);
      body = `${page.slice(0, -1)},"total":${counted.total},"total_exact":${counted.exact},` +
        `"total_note":${JSON.stringify(counted.note)}}`;
    }
    // Already JSON text, of the documented TaskPage shape: sent as it is.
    return c.body(body, 200, { "content-type": "application/json" }) as never;
  }, requestHook(listRoute));

  app.openapi(
    ROUTES.getTask,
    async (c) => c.json(await getTask(db, c.req.valid("param").id), 200),
    requestHook(ROUTES.getTask),
  );

  app.openapi(
    enqueueRoute,
    async (c) => c.json(await enqueueTask(db, c.req.valid("json")), 201),
    requestHook(enqueueRoute),
  );

  app.openapi(ROUTES.enqueueTasks, async (c) => {
    const tasks = c.req.valid("json").map((task, i) => ({ at: `[${i}]`, task }));
    const result = await enqueueTasks(db, tasks, {
      batchSize: MAX_HTTP_BATCH,
      dryRun: c.req.valid("query").dry_run,
      returnIds: true,
    });
    return c.json(result, 201);
  }, batchHook(ROUTES.enqueueTasks));

  const transitionAnswer = (c: Context, report: TransitionReport, forced?: boolean) => {
    const first = report.refused[0];
    if (!first) return c.json(report, 200);
    // The way to force is this API's body field, not the CLI's flag.
    const hint = forced === false && first.status === "running"
      ? ' (send {"force": true} to cancel a running task)'
      : "";
    return c.json({
      error: { code: "invalid_transition", message: first.message + hint },
      ...report,
    }, 409);
  };
  app.openapi(cancelRoute, async (c) => {
    const { force } = c.req.valid("json");
    return transitionAnswer(
      c,
      await cancelTasks(db, [c.req.valid("param").id], { force }),
      force,
    );
  }, requestHook(cancelRoute));
  app.openapi(
    ROUTES.retryTask,
    async (c) => transitionAnswer(c, await retryTasks(db, [c.req.valid("param").id])),
    requestHook(ROUTES.retryTask),
  );

  app.openapi(
    ROUTES.releaseTask,
    async (c) => transitionAnswer(c, await releaseCreatedTasks(db, [c.req.valid("param").id])),
    requestHook(ROUTES.releaseTask),
  );

  // The filter forms (and the group actions below): a dry run (count and sample) unless
  // `yes`, as the CLI without --yes.
  const filterAnswer = async (
    c: Context,
    apply: boolean,
    preview: () => Promise<FilterPreview>,
    change: () => Promise<Task[]>,
  ) =>
    c.json(
      apply
        ? { dry_run: false, changed: await change(), refused: [] }
        : { dry_run: true, ...(await preview()) },
      200,
    );
  const filterRoutes = {
    cancel: ROUTES.cancelWhere,
    retry: ROUTES.retryWhere,
    release: ROUTES.releaseWhere,
  } as const;
  for (const [verb, route] of Object.entries(filterRoutes)) {
    const forms = TRANSITIONS[verb as keyof typeof filterRoutes];
    app.openapi(route, async (c) => {
      const { filter, force, apply } = c.req.valid("json");
      return await filterAnswer(
        c,
        apply,
        () => forms.preview(db, filter, { force }),
        () => forms.where(db, filter, { force }),
      ) as never;
    }, requestHook(route));
  }

  app.openapi(ROUTES.pause, async (c) => {
    const { by, ...request } = c.req.valid("json");
    return c.json(await pauseQueue(db, { ...request, by: by ?? "http" }), 200);
  }, requestHook(ROUTES.pause));
  app.openapi(
    ROUTES.resume,
    async (c) => c.json({ resumed: await resumeQueue(db, c.req.valid("json")) }, 200),
    requestHook(ROUTES.resume),
  );
  app.openapi(
    ROUTES.paused,
    async (c) => c.json({ paused: await listPauses(db, { waiting: true }) }, 200),
  );

  /** `GET route`: the shared report for the route's query. */
  const reportRoute = <R extends QueryRoute>(
    route: R,
    report: (options: QueryOf<R>) => Promise<unknown>,
  ) =>
    app.openapi(
      route,
      async (c: Context) => c.json(await report(c.req.valid("query" as never) as QueryOf<R>), 200),
      requestHook(route),
    );
  reportRoute(ROUTES.stats, reports.stats);

  reportRoute(ROUTES.throughput, reports.throughput);
  reportRoute(ROUTES.latency, reports.latency);
  // Every viewer's top refreshes through here: one computation per TTL, however many.
  reportRoute(ROUTES.overview, reports.overview);

  app.openapi(ROUTES.check, async (c) => {
    const options = c.req.valid("query");
    // Shared by identical requests (single-flight, TTL), like /stats.
    const result = await cache(
      `check:${JSON.stringify(options)}`,
      () => checkHealth(db, options.thresholds, { longRunningMs: options.longRunningMs }),
    );
    return c.json(result, result.state === "CRITICAL" ? 503 : 200);
  }, requestHook(ROUTES.check));

  // The incident questions.
  reportRoute(ROUTES.failures, reports.failures);
  reportRoute(ROUTES.leases, reports.leases);
  reportRoute(ROUTES.workers, reports.workers);
  // The group actions: the same filter transitions as `retry|cancel --group`, dry run first.
  const groupRoutes = { retry: ROUTES.retryFailureGroup, cancel: ROUTES.cancelFailureGroup };
  for (const [verb, route] of Object.entries(groupRoutes)) {
    const forms = TRANSITIONS[verb as keyof typeof groupRoutes];
    app.openapi(route, async (c) => {
      const filter = { group: c.req.valid("param").group };
      return await filterAnswer(
        c,
        !c.req.valid("json").dry_run,
        () => forms.preview(db, filter),
        () => forms.where(db, filter),
      ) as never;
    }, requestHook(route));
  }

  app.openapi(ROUTES.health, async (c) => {
    // Always a real ping, whatever the gate believes; its answer also informs the gate (a ping
    // that merely waited behind busy connections is no sign of an outage).
    try {
      await ping(db);
      gate.reachable();
      return c.json({ status: "ok", database: "ok", version: VERSION } as const, 200);
    } catch (err) {
      if (!(err instanceof PingTimeout)) gate.observe(err);
      return c.json(
        {
          status: "error",
          database: "unreachable",
          version: VERSION,
          error: { code: "database_unavailable", message: "The database is unreachable" },
        } as const,
        503,
      );
    }
  });

  app.openapi(ROUTES.metrics, async (c) => {
    const text = await metrics.render(
      await reports.stats(resolveStatsOptions({ top: METRICS_TOP })),
    );
    return c.text(text, 200, { "content-type": metrics.contentType });
  });

  app.openAPIRegistry.registerComponent("securitySchemes", "bearer", {
    type: "http",
    scheme: "bearer",
  });
  let document: ReturnType<typeof app.getOpenAPIDocument> | undefined;
  app.openapi(ROUTES.openapi, (c) => {
    document ??= app.getOpenAPIDocument({
      openapi: "3.0.3",
      info: {
        title: "seedtask",
        version: VERSION,
        description: "The task table operations of the seedtask CLI over HTTP; bodies equal " +
          "the CLI's --json output. Query values and bodies are checked by the same schemas " +
          "as the CLI's flags.",
      },
    });
    return c.json(document, 200);
  });

  // The web console (server/console/): pages over the same computations as the routes above.
  const basePath = deps.basePath ?? "";
  app.get("/", (c) => c.redirect(`${basePath}${CONSOLE_PATH}`, 302));
  app.get(`${CONSOLE_PATH}/`, (c) => c.redirect(`${basePath}${CONSOLE_PATH}`, 301));
  app.route(
    CONSOLE_PATH,
    createConsole({
      db,
      allowWrite: !!deps.allowWrite,
      token: deps.token,
      requireTokenForReads: !!deps.requireTokenForReads,
      basePath,
      cache,
      reports,
      run: (fn) => gate.run(fn),
      invalidate: () => singleFlight.clear(),
      refreshSeconds: deps.consoleRefreshSeconds,
      log: deps.log,
    }),
  );

  app.notFound((c) =>
    c.json({ error: { code: "not_found", message: `No route ${c.req.method} ${c.req.path}` } }, 404)
  );

  app.onError((err, c) => {
    if (err instanceof HTTPException) {
      if (err.res) return err.getResponse();
      // One a library threw without a body of ours (an unsupported media type, say).
      const code = HTTP_CODES[err.status] ?? "http_error";
      return c.json({ error: { code, message: oneLine(err.message) } }, err.status);
    }
    if (!(err instanceof SeedtaskError)) {
      deps.log?.(`error: ${(err as Error).stack ?? err}`);
      return c.json({ error: { code: "internal_error", message: "Internal error" } }, 500);
    }
    // The class decides the status and what the client is told (lib/errors.ts); a server-side
    // failure's own message, which may name a host or a table, goes to the log only.
    if (err.httpStatus >= 500) deps.log?.(`error: ${err.message}`);
    const { message, ...rest } = err.httpError();
    return c.json({ error: { ...rest, message: oneLine(message) } }, err.httpStatus as 400);
  });

  return app;
}
