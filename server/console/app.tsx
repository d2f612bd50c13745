/**
 * The web console: server-rendered pages over the same lib functions and shared computations
 * as the JSON API. `createApp` mounts it at `/ui` (and sends `/` there).
 *
 * Safety: a strict Content-Security-Policy (scripts, styles and images from this origin only;
 * no inline script or style anywhere), every value escaped by JSX, actions only with
 * `--allow-write`, behind a sign-in cookie, as POSTs checked against cross-site use (auth.ts).
 * Cost: every database computation goes through the API's single-flight cache and gate, so
 * many open tabs cost about one computation per TTL; each panel degrades alone (panels.ts).
 */
import { type Context, Hono } from "hono";
import { HTTPException } from "hono/http-exception";
import type { Child } from "hono/jsx";
import type { Db } from "../../lib/db.ts";
import { InvalidInputError, SeedtaskError } from "../../lib/errors.ts";
import { parseInput } from "../../lib/input/fields.ts";
import {
  ListFilterObject,
  pageSize,
  type ResolvedListFilter,
  toListFilter,
} from "../../lib/input/list_filter.ts";
import { resolveStatsOptions } from "../../lib/input/stats_options.ts";
import { TaskFilterSchema } from "../../lib/input/transition.ts";
import { PauseSchema, ResumeSchema } from "../../lib/input/queue_pause.ts";
import {
  countWaiting,
  listPauses,
  pauseQueue,
  type PauseTarget,
  resumeQueue,
} from "../../lib/ops/queue_pauses.ts";
import { type TaskFilter, transitionFrom, TRANSITIONS } from "../../lib/ops/task_transitions.ts";
import { getTask } from "../../lib/queries/get_task.ts";
import { reportKey, type Reports, type ReportTypes } from "../reports.ts";
import { OverviewOptionsSchema } from "../../lib/queries/overview.ts";
import { LatencyOptionsSchema, ThroughputOptionsSchema } from "../../lib/input/history_options.ts";
import { FailureGroupsSchema, LeasesSchema, WorkersSchema } from "../../lib/input/insight.ts";
import { FailuresPage, WorkersPage } from "./pages/insight.tsx";
import { listTasks } from "../../lib/queries/list_tasks.ts";
import { countListTotal, totalBesidePage } from "../../lib/queries/list_total.ts";
import { VERSION } from "../../lib/version.ts";
import { ShedError } from "../db_gate.ts";
import { ASSETS } from "./assets_embedded.ts";
import {
  ConsoleKeys,
  crossSiteReason,
  endSession,
  sameText,
  signedIn,
  startSession,
} from "./auth.ts";
import { panelMessage, type PanelResult, Panels } from "./panels.ts";
import { ConfirmPage, ResultPage } from "./pages/actions.tsx";
import { PauseConfirmPage, PauseResultPage, ResumeConfirmPage, scope } from "./pages/pauses.tsx";
import { ErrorPage, SignInPage } from "./pages/misc.tsx";
import { OverviewPage } from "./pages/overview.tsx";
import { type ListTotal, type TaskQuery, TasksPage } from "./pages/tasks.tsx";
import { TaskPage } from "./pages/task.tsx";
import { href, type View } from "./view.tsx";
import { hostName } from "../../lib/host.ts";

/** What the action middleware hands the handlers: the form it checked. */
export interface ConsoleEnv {
  Variables: { form: Record<string, unknown> };
}

/** Where the console is mounted inside the app. */
export const CONSOLE_PATH = "/ui";

/** Largest page the console lists. */
const MAX_CONSOLE_LIMIT = 200;

/** What the console needs from the app. */
export interface ConsoleDeps {
  db: Db;
  allowWrite: boolean;
  token?: string;
  /** Pages need the sign-in too (a non-loopback bind). */
  requireTokenForReads: boolean;
  /** The path prefix a reverse proxy serves the app under ("" or e.g. "/seedtask"). */
  basePath: string;
  /** The API's shared computation: single-flight per key and TTL, through the gate. */
  cache: <T>(key: string, load: () => Promise<T>) => Promise<T>;
  /** The reports the API's routes answer, computed once for both (server/reports.ts). */
  reports: Reports;
  /** Runs uncached database work through the gate. */
  run: <T>(fn: () => Promise<T>) => Promise<T>;
  /** Drops cached answers (after an action changed the table). */
  invalidate: () => void;
  /** Seconds between live refreshes of a page (default 5). */
  refreshSeconds?: number;
  log?: (line: string) => void;
}

/** The Content-Security-Policy of every console answer: nothing inline, nothing foreign. */
export const CONSOLE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "form-action 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
].join("; ");

/** The list query as the page's form sends it, by the same schema as `GET /tasks`. */
const ListPageQuery = ListFilterObject.extend({ limit: pageSize(1, MAX_CONSOLE_LIMIT) })
  .transform((o, ctx): ResolvedListFilter => toListFilter(o, ctx));

const LIST_KEYS = Object.keys(ListFilterObject.shape);

/** A form's or query's values: repeated keys become arrays only where a list is expected. */
function queryObject(c: Context, lists: readonly string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const url = new URL(c.req.url);
  for (const key of new Set(url.searchParams.keys())) {
    const all = url.searchParams.getAll(key);
    if (lists.includes(key)) out[key] = all;
    else if (all.length > 1) {
      throw new InvalidInputError(`Query parameter "${key}" given more than once`);
    } else out[key] = all[0];
  }
  return out;
}

/** The filter fields of a group action, from a query string or a form. */
function groupFields(source: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of ["status", "type", "domain", "older_than", "group"]) {
    const v = source[key];
    if (v !== undefined && v !== "" && !(Array.isArray(v) && v.length === 0)) out[key] = v;
  }
  return out;
}

function parseGroupFilter(fields: Record<string, unknown>): TaskFilter {
  if (Object.keys(fields).length === 0) {
    throw new InvalidInputError("Give a filter (a status, type, domain or age) for a group action");
  }
  return parseInput(TaskFilterSchema, fields);
}

function describeFilter(f: Record<string, unknown>): string {
  const parts: string[] = [];
  const status = f.status;
  if (status !== undefined) parts.push(`status ${[status].flat().join(" or ")}`);
  if (f.type !== undefined) parts.push(`type "${f.type}"`);
  if (f.domain !== undefined) parts.push(`domain "${f.domain}"`);
  if (f.older_than !== undefined) parts.push(`not updated for ${f.older_than}`);
  return parts.join(", ");
}

/** Builds the console's routes (mounted by server/app.ts at {@link CONSOLE_PATH}). */
export function createConsole(deps: ConsoleDeps): Hono<ConsoleEnv> {
  const { db } = deps;
  const root = `${deps.basePath}${CONSOLE_PATH}`;
  const keys = deps.token ? ConsoleKeys.derive(deps.token) : Promise.resolve(undefined);
  const panels = new Panels(200, (err) => {
    if (!(err instanceof SeedtaskError) || err.httpStatus >= 500) {
      deps.log?.(`console: ${err instanceof Error ? err.message : String(err)}`);
    }
  });
  const defaultStats = resolveStatsOptions({});
  const app = new Hono<ConsoleEnv>();

  const viewOf = async (c: Context): Promise<View> => {
    const k = await keys;
    const isIn = signedIn(c, k);
    return {
      root,
      allowWrite: deps.allowWrite,
      hasToken: k !== undefined,
      signedIn: isIn,
      csrf: isIn ? k!.csrf : undefined,
      refreshSeconds: deps.refreshSeconds ?? 5,
      target: `${db.table} on ${db.target}`,
      version: VERSION,
      now: new Date(),
    };
  };
  const page = (c: Context, body: Child, status = 200) =>
    c.html(`<!doctype html>${body}`, status as 200);
  const fail = async (c: Context, status: number, message: string) =>
    page(c, <ErrorPage view={await viewOf(c)} status={status} message={message} />, status);

  app.use("*", async (c, next) => {
    await next();
    const h = c.res.headers;
    h.set("content-security-policy", CONSOLE_CSP);
    h.set("x-content-type-options", "nosniff");
    h.set("referrer-policy", "same-origin");
    h.set("x-frame-options", "DENY");
    if (!h.has("cache-control")) h.set("cache-control", "no-store");
  });

  // Assets: embedded in the program, named by their hash so they can be cached for good.
  app.get("/assets/:hash/:name", (c) => {
    const asset = ASSETS[c.req.param("name")];
    if (!asset) return c.text("Not found", 404);
    const current = asset.hash === c.req.param("hash");
    return c.body(asset.body, 200, {
      "content-type": asset.type,
      "cache-control": current ? "public, max-age=31536000, immutable" : "no-cache",
    });
  });

  // Sign-in: reachable signed out; a POST here must still come from this site.
  const safeNext = (next: unknown) =>
    typeof next === "string" && (next === root || next.startsWith(`${root}/`)) &&
      !next.startsWith("//") && !/[\\\r\n]/.test(next)
      ? next
      : root;
  app.get("/sign-in", async (c) => {
    return page(c, <SignInPage view={await viewOf(c)} next={safeNext(c.req.query("next"))} />);
  });
  app.post("/sign-in", async (c) => {
    const reason = crossSiteReason(c);
    if (reason) return fail(c, 403, `Refused a cross-site request: ${reason}`);
    const k = await keys;
    const form = await c.req.parseBody();
    const next = safeNext(form.next);
    if (!k) return c.redirect(next, 303);
    const given = typeof form.token === "string" ? await ConsoleKeys.derive(form.token) : null;
    if (!given || !sameText(given.session, k.session)) {
      return page(
        c,
        <SignInPage view={await viewOf(c)} next={next} error="Wrong token" />,
        401,
      );
    }
    startSession(c, k, root);
    return c.redirect(next, 303);
  });

  // Everything else: signed in when reads need the token; POSTs are actions.
  app.use("*", async (c, next) => {
    const k = await keys;
    const isIn = signedIn(c, k);
    if (c.req.method === "POST") {
      const reason = crossSiteReason(c);
      if (reason) return fail(c, 403, `Refused a cross-site request: ${reason}`);
      if (c.req.path.endsWith("/sign-out")) {
        // Signing out needs no write permission, only proof it came from this console.
        const form = await c.req.parseBody();
        if (k && isIn && !sameText(String(form.csrf ?? ""), k.csrf)) {
          return fail(c, 403, "Refused: the form's CSRF token is missing or wrong");
        }
        endSession(c, root);
        return c.redirect(`${root}/sign-in`, 303);
      }
      if (!deps.allowWrite) {
        return fail(c, 403, "This server is read-only: start it with --allow-write");
      }
      if (!isIn) return fail(c, 401, "Sign in first: actions need the server's token");
      const form = await c.req.parseBody({ all: true });
      if (!sameText(String(form.csrf ?? ""), k!.csrf)) {
        return fail(c, 403, "Refused: the form's CSRF token is missing or wrong");
      }
      c.set("form", form);
      return await next();
    }
    if (deps.requireTokenForReads && !isIn) {
      return page(
        c,
        <SignInPage
          view={await viewOf(c)}
          next={safeNext(`${root}${c.req.path.slice(CONSOLE_PATH.length)}`)}
        />,
        401,
      );
    }
    await next();
  });

  // ---- overview --------------------------------------------------------------------------
  // The same options, hence the same keys and shared computations, as the API's routes with
  // no query: /stats, /overview (and `top --url`), /throughput, /latency, /workers.
  const overviewOptions = parseInput(OverviewOptionsSchema, {});
  const throughputOptions = parseInput(ThroughputOptionsSchema, {});
  const latencyOptions = parseInput(LatencyOptionsSchema, {});
  const workersOptions = parseInput(WorkersSchema, {});
  /** A panel of the shared report `name`, remembered under the report's own key. */
  const report = <N extends keyof ReportTypes>(name: N, options: ReportTypes[N][0]) =>
    panels.load(reportKey(name, options), () => deps.reports[name](options));
  app.get("/", async (c) => {
    const [stats, overview, throughput, latency, workers] = await Promise.all([
      report("stats", defaultStats),
      report("overview", overviewOptions),
      report("throughput", throughputOptions),
      report("latency", latencyOptions),
      report("workers", workersOptions),
    ]);
    return page(
      c,
      <OverviewPage
        view={await viewOf(c)}
        data={{ stats, overview, throughput, latency, workers }}
      />,
    );
  });

  // ---- tasks -----------------------------------------------------------------------------
  app.get("/tasks", async (c) => {
    const view = await viewOf(c);
    const raw = queryObject(c, ["status", "type", "domain", "param"]);
    const joined = (key: string) => {
      const v = (raw[key] as string[] | undefined ?? []).filter((x) => x.trim() !== "");
      return v.length ? v.join(",") : undefined;
    };
    const q: TaskQuery = {
      status: ((raw.status as string[] | undefined) ?? []).flatMap((s) => s.split(","))
        .map((s) => s.trim()).filter((s) => s !== ""),
      type: joined("type"),
      domain: joined("domain"),
      param: (raw.param as string[] | undefined ?? []).filter((p) => p.trim() !== ""),
      search: raw.search as string | undefined,
      sort: raw.sort as string | undefined,
      limit: raw.limit as string | undefined,
      after: raw.after as string | undefined,
    };
    // An empty text box is no filter (the form always sends every field).
    const given = Object.fromEntries(
      Object.entries<unknown>({
        ...raw,
        status: q.status.length ? q.status : undefined,
        type: q.type,
        domain: q.domain,
        param: q.param.length ? q.param : undefined,
      })
        .filter(([, v]) => v !== undefined && v !== ""),
    );
    let filter: ResolvedListFilter;
    try {
      const unknown = Object.keys(raw).find((k) => !LIST_KEYS.includes(k));
      if (unknown !== undefined) {
        throw new InvalidInputError(
          `Unknown query parameter "${unknown.slice(0, 40)}": expected ${LIST_KEYS.join(", ")}`,
        );
      }
      filter = parseInput(ListPageQuery, given);
    } catch (err) {
      if (!(err instanceof SeedtaskError) || err.httpStatus !== 400) throw err;
      return page(c, <TasksPage view={view} q={q} data={{ invalid: err.message }} />, 400);
    }
    const key = JSON.stringify(filter);
    // The page and the total `seedtask list` shows (counted when cheap, else the planner's
    // estimate, marked), read side by side as the CLI does; the total is shown beside a page.
    const [list, count] = await Promise.all([
      panels.load(`list:${key}`, () => deps.cache(`list:${key}`, () => listTasks(db, filter))),
      panels.load(
        `count:${key}`,
        () => deps.cache(`count:${key}`, () => countListTotal(db, filter)),
      ),
    ]);
    let total: PanelResult<ListTotal | null> | undefined;
    if (list.value !== undefined) {
      const t = count.value && totalBesidePage(list.value, count.value, filter);
      const value = t && { n: t.total, estimated: !t.exact, note: t.note };
      total = count.ok
        ? { ok: true, value: value!, at: count.at }
        : { ok: false, error: count.error, value, at: count.at };
    }
    // Acting on every match needs a filter the transitions take: statuses, one type, one domain.
    const single = (v: string[] | undefined) => v === undefined || v.length === 1;
    const groupFilter = view.allowWrite && !filter.search && !filter.params &&
        single(filter.types) && single(filter.domains) &&
        (filter.statuses || filter.types || filter.domains)
      ? {
        status: filter.statuses as string[] | undefined,
        type: filter.types?.[0],
        domain: filter.domains?.[0],
      }
      : undefined;
    return page(c, <TasksPage view={view} q={q} data={{ page: list, total, groupFilter }} />);
  });

  // ---- one task --------------------------------------------------------------------------
  const loadTask = (id: string) => deps.cache(`task:${id}`, () => getTask(db, id));

  app.get("/tasks/:id", async (c) => {
    const task = await loadTask(c.req.param("id"));
    return page(c, <TaskPage view={await viewOf(c)} task={task} />);
  });

  /** What each action is called (its lib functions: TRANSITIONS; its statuses: transitionFrom). */
  const VERBS = {
    retry: {
      verb: "Retry",
      done: "Retried",
      past: "retried",
      danger: false,
      groupWhat: " that are failed or cancelled go back to the queue, attempts reset.",
    },
    cancel: {
      verb: "Cancel",
      done: "Cancelled",
      past: "cancelled",
      danger: true,
      groupWhat: " that are created, queued or waiting to retry are cancelled " +
        "(running ones are left alone).",
    },
    release: {
      verb: "Release",
      done: "Released",
      past: "released",
      danger: false,
      groupWhat: " that are created (staged) join the queue.",
    },
  };
  type Verb = keyof typeof VERBS;
  const verbOf = (c: Context): Verb => {
    const v = c.req.param("verb");
    if (v !== "retry" && v !== "cancel" && v !== "release") throw new HTTPException(404);
    return v;
  };
  /**
   * Actions need --allow-write and a signed-in browser even to be offered: the page's view
   * when they may be, else the answer refusing them.
   */
  const mayAct = async (c: Context): Promise<View | Response> => {
    if (!deps.allowWrite) {
      return await fail(c, 403, "This server is read-only: start it with --allow-write");
    }
    const view = await viewOf(c);
    if (view.hasToken && !view.signedIn) {
      const url = new URL(c.req.url);
      const next = safeNext(`${root}${url.pathname.slice(CONSOLE_PATH.length)}${url.search}`);
      return page(c, <SignInPage view={view} next={next} />, 401);
    }
    return view;
  };

  app.get("/tasks/:id/:verb", async (c) => {
    const verb = verbOf(c);
    const view = await mayAct(c);
    if (view instanceof Response) return view;
    const force = c.req.query("force") === "1";
    const task = await deps.run(() => getTask(db, c.req.param("id")));
    const ok = transitionFrom(verb, force).includes(task.status);
    const taskUrl = href(view, `/tasks/${task.id}`);
    return page(
      c,
      <ConfirmPage
        view={view}
        title={`${VERBS[verb].verb} task ${task.id.slice(0, 8)}`}
        verb={VERBS[verb].verb}
        count={ok ? 1 : 0}
        what={
          <>
            Task <span class="mono">{task.id}</span> ({task.type}) is {task.status}.
            {verb === "retry" && ok && (task.status === "retry"
              ? " It runs now instead of after its backoff, keeping its attempts."
              : " It goes back to the queue with its attempts reset.")}
            {verb === "release" && ok && " It joins the queue."}
            {verb === "cancel" && force && ok &&
              " It is running: its dispatcher's result will be refused."}
          </>
        }
        sample={ok ? [task] : []}
        reason={ok
          ? undefined
          : `A ${task.status} task cannot be ${VERBS[verb].past}${
            verb === "cancel" && task.status === "running" ? " without force" : ""
          }`}
        action={`${taskUrl}/${verb}`}
        hidden={force ? { force: "1" } : {}}
        back={taskUrl}
        danger={VERBS[verb].danger}
      />,
    );
  });

  app.post("/tasks/:id/:verb", async (c) => {
    const verb = verbOf(c);
    const form = c.get("form");
    const id = c.req.param("id");
    const report = await deps.run(() =>
      TRANSITIONS[verb].byIds(db, [id], { force: form.force === "1" })
    );
    deps.invalidate();
    const view = await viewOf(c);
    const n = report.changed.length;
    const fullId = report.changed[0]?.id ?? report.refused[0]?.id ?? id;
    return page(
      c,
      <ResultPage
        view={view}
        title={`${VERBS[verb].verb} task ${fullId.slice(0, 8)}`}
        message={n > 0
          ? `${VERBS[verb].done} task ${fullId.slice(0, 8)}: it is now ${report.changed[0]!.status}`
          : `Nothing ${VERBS[verb].past}`}
        changed={report.changed}
        refused={report.refused}
        back={href(view, `/tasks/${fullId}`)}
        backLabel="Back to the task"
      />,
      report.refused.length > 0 ? 409 : 200,
    );
  });

  // ---- group actions (by filter) ---------------------------------------------------------
  app.get("/actions/:verb", async (c) => {
    const verb = verbOf(c);
    const view = await mayAct(c);
    if (view instanceof Response) return view;
    const fields = groupFields(queryObject(c, ["status"]));
    const filter = parseGroupFilter(fields);
    const preview = await deps.run(() => TRANSITIONS[verb].preview(db, filter));
    const hidden: Record<string, string> = {};
    for (const [k, v] of Object.entries(fields)) hidden[k] = [v].flat().join(",");
    hidden.expected = String(preview.count);
    return page(
      c,
      <ConfirmPage
        view={view}
        title={`${VERBS[verb].verb} every matching task`}
        verb={VERBS[verb].verb}
        count={preview.count}
        what={
          <>
            Tasks with {describeFilter(fields)}
            {VERBS[verb].groupWhat}
          </>
        }
        sample={preview.sample}
        action={href(view, `/actions/${verb}`)}
        hidden={hidden}
        back={href(view, "/tasks", fields as Record<string, string>)}
        danger={VERBS[verb].danger}
      />,
    );
  });

  app.post("/actions/:verb", async (c) => {
    const verb = verbOf(c);
    const form = c.get("form");
    const fields = groupFields(form);
    const filter = parseGroupFilter(fields);
    const changed = await deps.run(() => TRANSITIONS[verb].where(db, filter));
    deps.invalidate();
    const view = await viewOf(c);
    const expected = Number(form.expected);
    const differs = Number.isInteger(expected) && expected !== changed.length
      ? ` (the preview said ${expected}: the table changed in between)`
      : "";
    return page(
      c,
      <ResultPage
        view={view}
        title={`${VERBS[verb].verb} every matching task`}
        message={`${VERBS[verb].done} ${changed.length} ${
          changed.length === 1 ? "task" : "tasks"
        }${differs}`}
        changed={changed}
        back={href(view, "/tasks", fields as Record<string, string>)}
        backLabel="Back to the list"
      />,
    );
  });

  // ---- pause and resume a type ----------------------------------------------------------
  /** The type and domain of a pause form or query, by the same schema as `POST /resume`. */
  const pauseTarget = (source: Record<string, unknown>): PauseTarget => {
    const fields: Record<string, unknown> = {};
    for (const key of ["type", "domain"]) {
      if (typeof source[key] === "string" && source[key] !== "") fields[key] = source[key];
    }
    return parseInput(ResumeSchema, fields);
  };
  /**
   * Who pauses from the console: `console@<address of the browser>` when the server knows it
   * (Deno.serve's remote address), else `console@<this host>`.
   */
  const pausedBy = (c: Context): string => {
    const remote = (c.env as { remoteAddr?: { hostname?: string } } | undefined)?.remoteAddr;
    return `console@${remote?.hostname || hostName() || "localhost"}`.slice(0, 200);
  };

  app.get("/pause", async (c) => {
    const view = await mayAct(c);
    if (view instanceof Response) return view;
    const target = pauseTarget(queryObject(c, []));
    const [count, existing] = await Promise.all([
      deps.run(() => countWaiting(db, target)),
      deps.run(() => listPauses(db)),
    ]);
    return page(
      c,
      <PauseConfirmPage
        view={view}
        type={target.type}
        domain={target.domain}
        waiting={count.waiting}
        capped={count.capped}
        existing={existing.filter((p) => p.type === target.type)}
      />,
    );
  });

  app.post("/pause", async (c) => {
    const form = c.get("form");
    const fields: Record<string, unknown> = { by: pausedBy(c) };
    for (const key of ["type", "domain", "reason"]) {
      const v = form[key];
      if (typeof v === "string" && v.trim() !== "") fields[key] = v.trim();
    }
    const request = parseInput(PauseSchema, fields);
    const { pause, created } = await deps.run(() =>
      pauseQueue(db, { ...request, by: request.by! })
    );
    deps.invalidate();
    const [now] = await deps.run(() => listPauses(db, { waiting: true })).then((all) =>
      all.filter((p) => p.type === pause.type && p.domain === pause.domain)
    );
    const waiting = now?.waiting ?? 0;
    return page(
      c,
      <PauseResultPage
        view={await viewOf(c)}
        title={`Pause ${scope(pause)}`}
        ok
        message={created
          ? `Paused ${scope(pause)}: dispatchers claim none of its ${
            waiting.toLocaleString("en-US")
          }${now?.waiting_capped ? "+" : ""} waiting ${
            waiting === 1 ? "task" : "tasks"
          } until it is resumed`
          : `${scope(pause)} was already paused: reason and who updated, paused since kept`}
        pauses={now ? [now] : [pause]}
      />,
    );
  });

  app.get("/resume", async (c) => {
    const view = await mayAct(c);
    if (view instanceof Response) return view;
    const target = pauseTarget(queryObject(c, []));
    const pauses = (await deps.run(() => listPauses(db, { waiting: true }))).filter((p) =>
      p.type === target.type && (target.domain === undefined || p.domain === target.domain)
    );
    return page(
      c,
      <ResumeConfirmPage
        view={view}
        type={target.type}
        domain={target.domain}
        pauses={pauses}
      />,
    );
  });

  app.post("/resume", async (c) => {
    const target = pauseTarget(c.get("form"));
    const resumed = await deps.run(() => resumeQueue(db, target));
    deps.invalidate();
    const what = scope(target);
    return page(
      c,
      <PauseResultPage
        view={await viewOf(c)}
        title={`Resume ${what}`}
        ok={resumed.length > 0}
        message={resumed.length > 0
          ? `Resumed ${resumed.map(scope).join(", ")}: dispatchers claim its tasks again`
          : `Nothing resumed: ${what} was not paused`}
        pauses={resumed}
      />,
    );
  });

  // ---- failures, workers and leases -----------------------------------------------------
  app.get("/failures", async (c) => {
    const view = await viewOf(c);
    const raw = queryObject(c, ["status"]);
    const since = typeof raw.since === "string" && raw.since !== "" ? raw.since : "24h";
    let options;
    try {
      // The API's schema, so the key, and the computation, are the API's too.
      options = parseInput(FailureGroupsSchema, { ...raw, since });
    } catch (err) {
      if (!(err instanceof SeedtaskError) || err.httpStatus !== 400) throw err;
      return page(c, <FailuresPage view={view} since={since} invalid={err.message} />, 400);
    }
    const result = await report("failures", options);
    return page(c, <FailuresPage view={view} since={since} result={result} />);
  });

  const leasesOptions = parseInput(LeasesSchema, {});
  app.get("/workers", async (c) => {
    const [workers, leases] = await Promise.all([
      report("workers", workersOptions),
      report("leases", leasesOptions),
    ]);
    return page(c, <WorkersPage view={await viewOf(c)} workers={workers} leases={leases} />);
  });

  app.all("*", (c) => fail(c, 404, `No page ${c.req.path.slice(0, 200)}`));

  app.onError(async (err, c) => {
    if (err instanceof HTTPException) return await fail(c, err.status, "No such page");
    if (err instanceof ShedError) {
      c.header("retry-after", String(err.retryAfterS));
      return await fail(c, 503, err.message);
    }
    if (err instanceof SeedtaskError) {
      if (err.httpStatus >= 500) deps.log?.(`console: ${err.message}`);
      return await fail(c, err.httpStatus, panelMessage(err));
    }
    deps.log?.(`console error: ${(err as Error).stack ?? err}`);
    return await fail(c, 500, "Internal error");
  });

  return app;
}
