/**
 * `seedtask top`: a live full-screen view of the queue, from the database or from a running
 * `seedtask serve` (`--url`). Plain ANSI: the alternate screen, a hidden cursor and raw key
 * input (Deno.stdin.setRaw) are all it needs — a handful of escape sequences, restored in one
 * `finally` — and the npm terminal UI libraries (blessed, ink, terminal-kit) are built on
 * Node's tty streams and, for ink, React: far more than redrawing lines of text needs, with
 * their own behaviour on resize and exit to work around under Deno. The frame itself is the
 * pure function lib/format/top_frame.ts.
 */
import type { Command } from "commander";
import { ConnectionError, InvalidInputError, oneLine, SeedtaskError } from "../lib/errors.ts";
import { type Db } from "../lib/db.ts";
import { parseDuration } from "../lib/duration.ts";
import {
  failuresPanel,
  type Panel,
  renderTopFrame,
  type TopView,
  workersPanel,
} from "../lib/format/top_frame.ts";
import { type FailureGroups, getFailureGroups } from "../lib/queries/failure_groups.ts";
import { listWorkers, type WorkerList } from "../lib/queries/workers.ts";
import {
  getOverview,
  type Overview,
  overviewFromJson,
  type OverviewOptions,
  OverviewOptionsSchema,
} from "../lib/queries/overview.ts";
import { ThroughputCache } from "../lib/queries/throughput.ts";
import { type Context, globals, useEmoji, withDb } from "./context.ts";
import { parseFlags } from "./options.ts";

/** The panels beside the overview, refreshed one per frame in turn. */
interface TopPanels {
  failures?: FailureGroups | null;
  workers?: WorkerList | null;
}

/** The panels in turn: a frame reads the overview and one of them. */
export const PANEL_TURNS = ["failures", "workers"] as const;

/** Failure groups as top shows them: the last hour, the ten largest, the newest 2,000 grouped. */
const FAILURES_IN_TOP = { sinceMs: 3_600_000, top: 10, sample: 2_000 };

/** Where frames come from: the database, or a serve's routes. */
export interface TopSource {
  /** Shown in the header; never holds a password or token. */
  label: string;
  overview(type: string | null): Promise<Overview>;
  /** One panel's data; null when the source does not provide it. */
  panel(
    kind: typeof PANEL_TURNS[number],
    type: string | null,
  ): Promise<FailureGroups | WorkerList | null>;
}

/**
 * Reads the database directly. A frame is at most 5 statements: the overview is one once
 * warm, the failure groups one, the workers three or four (see listWorkers).
 */
export function databaseSource(db: Db, options: OverviewOptions): TopSource {
  const cache = new ThroughputCache();
  return {
    label: `${db.target} ${db.table}`,
    overview: (type) => getOverview(db, { ...options, type: type ?? undefined }, cache),
    panel: (kind, type) =>
      kind === "failures"
        ? getFailureGroups(db, { ...FAILURES_IN_TOP, type: type ?? undefined })
        : listWorkers(db),
  };
}

/** Reads a running `seedtask serve`: GET /overview, and GET /failures or /workers in turn. */
export function httpSource(
  base: string,
  token: string | undefined,
  options: OverviewOptions,
): TopSource {
  const get = async (path: string, query: URLSearchParams): Promise<unknown> => {
    const url = `${base}${path}${query.size > 0 ? `?${query}` : ""}`;
    let res: Response;
    try {
      res = await fetch(url, {
        headers: token ? { authorization: `Bearer ${token}` } : {},
        signal: AbortSignal.timeout(10_000),
      });
    } catch (err) {
      throw new ConnectionError(
        "unreachable",
        `Cannot reach ${base}: ${oneLine((err as Error).message, 200)}`,
      );
    }
    const body = await res.json().catch(() => null);
    if (res.status === 404 && path !== "/overview") return null; // an older serve
    if (!res.ok) {
      const message = body?.error?.message ?? res.statusText;
      throw new ConnectionError("unreachable", `${base} answered ${res.status}: ${message}`);
    }
    return body;
  };
  return {
    label: base,
    overview: async (type) => {
      const query = new URLSearchParams();
      if (type !== null) query.set("type", type);
      if (options.longRunningMs !== undefined) {
        query.set("long_running", `${options.longRunningMs}ms`);
      }
      const body = await get("/overview", query);
      try {
        return overviewFromJson(body);
      } catch {
        throw new ConnectionError(
          "unreachable",
          `${base}/overview did not answer an overview (a seedtask serve of this version?)`,
        );
      }
    },
    panel: async (kind, type) => {
      if (kind === "workers") return await get("/workers", new URLSearchParams()) as WorkerList;
      const query = new URLSearchParams({
        since: `${FAILURES_IN_TOP.sinceMs}ms`,
        top: String(FAILURES_IN_TOP.top),
        sample: String(FAILURES_IN_TOP.sample),
      });
      if (type !== null) query.set("type", type);
      const body = await get("/failures", query) as FailureGroups | null;
      if (!body) return null;
      return {
        ...body,
        groups: body.groups.map((g) => ({
          ...g,
          first_seen: new Date(g.first_seen),
          last_seen: new Date(g.last_seen),
        })),
        window: { since: new Date(body.window.since), until: new Date(body.window.until) },
      };
    },
  };
}

/** The panels of a frame from what the source gave. */
function topPanels(p: TopPanels, now: Date): Panel[] {
  return [
    ...(p.failures ? [failuresPanel(p.failures, now)] : []),
    ...(p.workers ? [workersPanel(p.workers)] : []),
  ];
}

function parseUrl(text: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new InvalidInputError(`Invalid --url "${text}": expected http://host:port`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new InvalidInputError(`Invalid --url "${text}": expected http:// or https://`);
  }
  if (url.username || url.password) {
    throw new InvalidInputError("Invalid --url: pass the token with --token, not in the URL");
  }
  return `${url.origin}${url.pathname.replace(/\/+$/, "")}`;
}

interface TopFlags {
  interval: string;
  url?: string;
  token?: string;
  once?: boolean;
  type?: string;
  longRunning?: string;
}

export function registerTop(program: Command, ctx: Context): void {
  program
    .command("top")
    .description(
      "Live view for incidents: counts, rates, lag per type, failure groups, stuck tasks, workers (q quits)",
    )
    .option("--interval <duration>", "refresh every", "2s")
    .option("--type <type>", "start with this type filter (t cycles it)")
    .option("--long-running <duration>", "a running task locked longer than this is stuck", "10m")
    .option("--url <url>", "watch a running `seedtask serve` instead of the database")
    .option("--token <token>", "the serve's bearer token (also SEEDTASK_TOKEN)")
    .option("--once", "print one frame without escape codes and exit (also when not a terminal)")
    .action(async (flags: TopFlags, cmd: Command) => {
      const options = parseFlags(
        OverviewOptionsSchema,
        flags as unknown as Record<string, unknown>,
      );
      const intervalMs = parseDuration(flags.interval, "--interval");
      if (intervalMs < 250 || intervalMs > 3_600_000) {
        throw new InvalidInputError(
          `Invalid --interval "${flags.interval}": expected 250ms to 1h`,
        );
      }
      const interactive = !flags.once && ctx.isTTY && Deno.stdin.isTerminal();
      const color = !ctx.env.NO_COLOR && globals(cmd).color !== false;
      const run = (source: TopSource) =>
        interactive
          ? interactiveTop(source, { intervalMs, color, type: options.type ?? null })
          : onceTop(ctx, source, {
            intervalMs,
            color: useEmoji(ctx, cmd) && !flags.once,
            type: options.type ?? null,
          });
      if (flags.url !== undefined) {
        const token = flags.token ?? ctx.env.SEEDTASK_TOKEN;
        await run(httpSource(parseUrl(flags.url), token || undefined, options));
      } else {
        if (flags.token !== undefined) {
          throw new InvalidInputError("--token goes with --url (the database needs none)");
        }
        await withDb(ctx, cmd, (db) => run(databaseSource(db, options)), { maxConnections: 3 });
      }
    });
}

interface RunOptions {
  intervalMs: number;
  color: boolean;
  type: string | null;
}

/** One frame as plain text: for a pipe, a file, or `--once`. */
async function onceTop(ctx: Context, source: TopSource, o: RunOptions): Promise<void> {
  const [overview, failures, workers] = await Promise.all([
    source.overview(o.type),
    source.panel("failures", o.type) as Promise<FailureGroups | null>,
    source.panel("workers", o.type) as Promise<WorkerList | null>,
  ]);
  const panels = topPanels({ failures, workers }, overview.generated_at);
  const columns = Number(ctx.env.COLUMNS);
  const lines = renderTopFrame({ overview, previous: null, panels }, {
    width: Number.isInteger(columns) && columns >= 40 ? columns : 100,
    height: 10_000,
    color: o.color,
    paused: false,
    help: false,
    intervalMs: o.intervalMs,
    source: source.label,
    type: o.type,
    error: null,
    now: overview.generated_at,
    pad: false,
  });
  await ctx.out(lines.map((l) => l.trimEnd()).join("\n") + "\n");
}

const ENTER = "\x1b[?1049h\x1b[?25l"; // alternate screen, cursor hidden
const LEAVE = "\x1b[?25h\x1b[?1049l"; // cursor shown, main screen back

function terminalSize(): { columns: number; rows: number } {
  try {
    return Deno.consoleSize();
  } catch {
    return { columns: 80, rows: 24 };
  }
}

/**
 * The live view: redraws on every refresh, key and resize until q, Ctrl-C, SIGTERM or SIGHUP.
 * The terminal is restored in `finally`, whatever ends the loop (an error included).
 */
async function interactiveTop(source: TopSource, o: RunOptions): Promise<void> {
  const encoder = new TextEncoder();
  const write = (s: string) => {
    let bytes = encoder.encode(s);
    while (bytes.length > 0) bytes = bytes.subarray(Deno.stdout.writeSync(bytes));
  };
  const state = {
    overview: null as Overview | null,
    previous: null as Overview | null,
    extras: {} as TopPanels,
    turn: 0,
    paused: false,
    help: false,
    type: o.type,
    error: null as string | null,
    quit: false,
    fetching: false,
    refetch: false,
  };
  const types = new Set<string>(o.type ? [o.type] : []);
  let timer: ReturnType<typeof setTimeout> | undefined;
  let wake: () => void = () => {};

  const render = () => {
    const { columns, rows } = terminalSize();
    const view: TopView = {
      width: columns,
      height: rows,
      color: o.color,
      paused: state.paused,
      help: state.help,
      intervalMs: o.intervalMs,
      source: source.label,
      type: state.type,
      error: state.error,
      now: new Date(),
    };
    const panels = topPanels(state.extras, state.overview?.generated_at ?? new Date());
    const lines = renderTopFrame(
      { overview: state.overview, previous: state.previous, panels },
      view,
    );
    write("\x1b[H" + lines.map((l) => `${l}\x1b[K`).join("\r\n") + "\x1b[J");
  };

  const refresh = async () => {
    clearTimeout(timer);
    if (state.fetching) {
      state.refetch = true;
      return;
    }
    state.fetching = true;
    const asked = state.type;
    const kind = PANEL_TURNS[state.turn++ % PANEL_TURNS.length]!;
    try {
      const [next, panel] = await Promise.all([
        source.overview(asked),
        source.panel(kind, asked),
      ]);
      if (asked === state.type) {
        // The change of each count is measured against the previous frame of the same filter.
        state.previous = state.overview?.type === next.type ? state.overview : null;
        state.overview = next;
        state.extras = { ...state.extras, [kind]: panel };
        state.error = null;
        if (asked === null) { for (const q of next.queue) types.add(q.type); }
      }
    } catch (err) {
      if (!(err instanceof SeedtaskError)) throw err;
      state.error = oneLine(err.message, 300);
    } finally {
      state.fetching = false;
    }
    if (state.quit) return;
    render();
    if (state.refetch) {
      state.refetch = false;
      void refresh().catch(fail);
    } else if (!state.paused) {
      timer = setTimeout(() => void refresh().catch(fail), o.intervalMs);
    }
  };

  let failure: unknown;
  const fail = (err: unknown) => {
    failure = err;
    state.quit = true;
    wake();
  };
  const quit = () => {
    state.quit = true;
    wake();
  };

  const onKey = (key: string) => {
    if (key === "q" || key === "Q" || key === "\x03" || key === "\x04") return quit();
    if (state.help) {
      state.help = false;
    } else if (key === "?" || key === "h") {
      state.help = true;
    } else if (key === "p" || key === " ") {
      state.paused = !state.paused;
      if (!state.paused) void refresh().catch(fail);
      else clearTimeout(timer);
    } else if (key === "t") {
      const list = [...types].sort();
      const i = state.type === null ? -1 : list.indexOf(state.type);
      state.type = i + 1 < list.length ? list[i + 1]! : null;
      state.previous = null;
      state.extras = { workers: state.extras.workers }; // failure groups are per type
      void refresh().catch(fail);
    } else if (key === "r") {
      void refresh().catch(fail);
    }
    render();
  };

  const signals: Array<[Deno.Signal, () => void]> = [
    ["SIGWINCH", () => render()],
    ["SIGINT", quit],
    ["SIGTERM", quit],
    ["SIGHUP", quit],
  ];
  const stdin = Deno.stdin;
  const reader = stdin.readable.getReader();
  stdin.setRaw(true);
  write(ENTER);
  try {
    for (const [sig, fn] of signals) {
      try {
        Deno.addSignalListener(sig, fn);
      } catch {
        // Windows has no SIGWINCH, SIGTERM or SIGHUP: resizes are seen at the next refresh
      }
    }
    render();
    void refresh().catch(fail);
    const ended = new Promise<void>((resolve) => (wake = resolve));
    const decoder = new TextDecoder();
    const keys = (async () => {
      while (!state.quit) {
        const { value, done } = await reader.read();
        if (done) return quit();
        for (const ch of decoder.decode(value)) {
          // Escape sequences (arrow keys) are ignored, not read as letters.
          if (ch === "\x1b") break;
          onKey(ch);
          if (state.quit) break;
        }
      }
    })().catch((err) => {
      if (!state.quit) fail(err);
    });
    await ended;
    void keys;
  } finally {
    clearTimeout(timer);
    for (const [sig, fn] of signals) {
      try {
        Deno.removeSignalListener(sig, fn);
      } catch {
        // never added (see above)
      }
    }
    write(LEAVE);
    try {
      stdin.setRaw(false);
    } catch {
      // the terminal is gone (SIGHUP): nothing to restore
    }
    reader.releaseLock();
  }
  if (failure) throw failure;
}
