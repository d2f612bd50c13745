/**
 * The console's shared pieces: the page frame, status badges, counts, times and panels. Every
 * value from the database reaches the page as a JSX child or attribute, which Hono escapes.
 */
import type { Child } from "hono/jsx";
import type { HtmlEscapedString } from "hono/utils/html";
import { ASSETS } from "./assets_embedded.ts";
import type { PanelResult } from "./panels.ts";

/** What a component renders to. */
export type Html = HtmlEscapedString | Promise<HtmlEscapedString>;

/** What every page knows about the request: where the console lives and what it may show. */
export interface View {
  /** The console's root URL path, e.g. `/ui` or `/seedtask/ui`. */
  root: string;
  /** Whether actions are enabled (`--allow-write`). */
  allowWrite: boolean;
  /** Whether the server has a token (so signing in means something). */
  hasToken: boolean;
  /** Whether this browser is signed in. */
  signedIn: boolean;
  /** The CSRF field's value for forms (when signed in). */
  csrf?: string;
  /** Seconds between live refreshes. */
  refreshSeconds: number;
  /** The table and database, as `serve` logs them. */
  target: string;
  version: string;
  now: Date;
}

/** Whether this browser may be offered the actions (--allow-write, signed in when needed). */
export function mayOffer(view: View): boolean {
  return view.allowWrite && (view.signedIn || !view.hasToken);
}

/** A URL under the console, with a query string built from `query` (empty values left out). */
export function href(
  view: Pick<View, "root">,
  path: string,
  query: Record<string, string | string[] | number | undefined | null> = {},
): string {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (value === undefined || value === null || value === "") continue;
    for (const v of Array.isArray(value) ? value : [value]) params.append(key, String(v));
  }
  const qs = params.toString();
  // The overview is the console's root itself: `/ui`, not `/ui/`.
  return `${view.root}${path === "/" ? "" : path}${qs ? `?${qs}` : ""}`;
}

function asset(view: View, name: string): string {
  return `${view.root}/assets/${ASSETS[name]!.hash}/${name}`;
}

const NAV = [
  ["overview", "/", "Overview"],
  ["tasks", "/tasks", "Tasks"],
  ["failures", "/failures", "Failures"],
  ["workers", "/workers", "Workers & leases"],
] as const;

export type Section = typeof NAV[number][0] | "sign-in" | "error";

const Logo = () => (
  <svg viewBox="0 0 32 32" aria-hidden="true">
    <rect width="32" height="32" rx="7" fill="#2f5bd3" />
    <path
      d="M9 11h14M9 16h10M9 21h6"
      stroke="#fff"
      stroke-width="3"
      stroke-linecap="round"
    />
  </svg>
);

/** The page frame: head, navigation, theme toggle, sign-in state and footer. */
export function Page(
  props: { view: View; title: string; section: Section; children?: Child },
): Html {
  const { view } = props;
  return (
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <meta name="color-scheme" content="light dark" />
        <title>{`${props.title} · seedtask`}</title>
        <link rel="stylesheet" href={asset(view, "app.css")} />
        <link rel="icon" href={asset(view, "favicon.svg")} type="image/svg+xml" />
        <script src={asset(view, "app.js")}></script>
      </head>
      <body>
        <a class="skip" href="#main">Skip to content</a>
        <header class="top">
          <div class="top-inner">
            <a class="brand" href={href(view, "/")}>
              <Logo />
              seedtask
            </a>
            <nav aria-label="Sections">
              <ul class="nav">
                {NAV.map(([key, path, label]) => (
                  <li>
                    <a
                      href={href(view, path)}
                      aria-current={props.section === key ? "page" : undefined}
                    >
                      {label}
                    </a>
                  </li>
                ))}
              </ul>
            </nav>
            <div class="top-right">
              <span class="hide-sm mono" title="Table and database">{view.target}</span>
              <span class={`tag ${view.allowWrite ? "tag-warn" : ""}`}>
                {view.allowWrite ? "read-write" : "read-only"}
              </span>
              {view.hasToken && !view.signedIn && props.section !== "sign-in" && (
                <a href={href(view, "/sign-in")}>Sign in</a>
              )}
              {view.signedIn && (
                <form method="post" action={href(view, "/sign-out")}>
                  <input type="hidden" name="csrf" value={view.csrf} />
                  <button class="btn btn-small" type="submit">Sign out</button>
                </form>
              )}
              <button class="btn btn-small" type="button" id="theme-toggle" hidden>
                Theme
              </button>
            </div>
          </div>
        </header>
        <main id="main">{props.children}</main>
        <footer>
          seedtask {view.version} · rendered {view.now.toISOString().slice(0, 19).replace("T", " ")}
          {" "}
          UTC · <a href={href({ root: view.root.replace(/\/ui$/, "") }, "/openapi.json")}>API</a>
        </footer>
      </body>
    </html>
  );
}

/** The live-refresh control (shown by app.js; without it the page is simply static). */
export function LiveBar(props: { view: View }): Html {
  return (
    <span class="live" id="live" data-interval={String(props.view.refreshSeconds)} hidden>
      <span class="pulse" aria-hidden="true"></span>
      <span class="live-status" aria-live="polite">Live</span>
      <button class="btn btn-small" type="button" aria-pressed="false">Pause</button>
    </span>
  );
}

/** A status with its colour dot. */
export function Status(props: { status: string }): Html {
  return (
    <span class={`badge st-${props.status}`}>
      <span class="dot" aria-hidden="true"></span>
      {props.status}
    </span>
  );
}

const numberFormat = new Intl.NumberFormat("en-US");

/** A count, with thousands separators; `≈` and a tooltip when it is an estimate. */
export function Count(props: { n: number | null | undefined; estimated?: boolean }): Html {
  if (props.n === null || props.n === undefined) return <span class="muted">—</span>;
  const text = numberFormat.format(Math.round(props.n));
  return props.estimated
    ? (
      <span class="est" title="Estimated from the planner's statistics (ANALYZE)">
        ≈{text}
      </span>
    )
    : <>{text}</>;
}

/** A number of seconds as a short duration: 850 ms, 12.3 s, 4m 12s, 3h 5m, 2d 4h. */
export function duration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "—";
  const s = Math.abs(seconds);
  if (s < 1) return `${Math.round(s * 1000)} ms`;
  if (s < 60) return `${s < 10 ? s.toFixed(1) : Math.round(s)} s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${Math.floor(s % 60)}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
}

/** A percentage of a 0..1 rate. */
export function percent(rate: number | null | undefined): string {
  if (rate === null || rate === undefined) return "—";
  return `${(rate * 100).toFixed(rate < 0.1 && rate > 0 ? 1 : 0)}%`;
}

/** A time as "4m 12s ago" / "in 5s", with the exact UTC time as its tooltip. */
export function Time(props: { at: Date | string | null | undefined; now: Date }): Html {
  if (props.at === null || props.at === undefined) return <span class="muted">—</span>;
  const at = props.at instanceof Date ? props.at : new Date(props.at);
  const delta = (props.now.getTime() - at.getTime()) / 1000;
  const text = Math.abs(delta) < 1
    ? "now"
    : delta > 0
    ? `${duration(delta)} ago`
    : `in ${duration(-delta)}`;
  const iso = at.toISOString();
  return <time datetime={iso} title={iso.replace("T", " ").replace("Z", " UTC")}>{text}</time>;
}

/** An 8-character short id linking to the task. */
export function TaskLink(props: { view: View; id: string }): Html {
  return (
    <a class="mono" href={href(props.view, `/tasks/${props.id}`)} title={props.id}>
      {props.id.slice(0, 8)}
    </a>
  );
}

/** A task row's first two cells: its short id, linking to it, and its status. */
export function TaskCells(props: { view: View; task: { id: string; status: string } }): Html {
  return (
    <>
      <td>
        <TaskLink view={props.view} id={props.task.id} />
      </td>
      <td>
        <Status status={props.task.status} />
      </td>
    </>
  );
}

/** A cell with a task's error on one line (the whole of it in the cell's overflow). */
export function ErrorCell(props: { error: string | null | undefined }): Html {
  return (
    <td class="err">
      <span class="line">{props.error ?? ""}</span>
    </td>
  );
}

/** A table's column: its heading, or the heading with the `<th>`'s class and title. */
export type Column = string | { label: string; class?: string; title?: string };

function heading(c: Column | false) {
  if (c === false) return null;
  if (typeof c === "string") return <th>{c}</th>;
  // Only the attributes given: Hono writes an undefined one as a stray space.
  if (c.title === undefined) return <th class={c.class}>{c.label}</th>;
  return <th class={c.class} title={c.title}>{c.label}</th>;
}

/**
 * A table in its scrolling wrapper: one heading per column (a `false` column, e.g. `act &&
 * "Act"`, is left out), and the rows, its children. `class` adds to the wrapper's.
 */
export function Table(props: {
  columns: readonly (Column | false)[];
  class?: string;
  /** What follows the table inside its wrapper: a note on its columns. */
  after?: Child;
  children: Child;
}): Html {
  return (
    <div class={props.class ? `table-wrap ${props.class}` : "table-wrap"}>
      <table>
        <thead>
          <tr>
            {props.columns.map(heading)}
          </tr>
        </thead>
        <tbody>{props.children}</tbody>
      </table>
      {props.after}
    </div>
  );
}

/** An error message of a failed panel (the panel keeps its last data below it). */
function PanelError(props: { result: PanelResult<unknown>; now: Date }) {
  const { result } = props;
  if (result.ok) return null;
  return (
    <p class="panel-error" role="alert">
      Could not load: {result.error}
      {result.at
        ? (
          <>
            {" "}— showing data from <Time at={result.at} now={props.now} />
          </>
        )
        : null}
    </p>
  );
}

/**
 * A card that refreshes on its own (`id` must be stable), showing its data or, when its
 * computation failed, the error above the last data it had.
 */
export function Panel<T>(props: {
  id: string;
  title: Child;
  sub?: Child;
  result: PanelResult<T>;
  now: Date;
  class?: string;
  render: (value: T) => Child;
}): Html {
  const { result } = props;
  return (
    <section
      class={`card ${props.class ?? ""}`}
      id={props.id}
      data-panel=""
      aria-labelledby={`${props.id}-title`}
    >
      <h2 id={`${props.id}-title`}>
        {props.title}
        {props.sub ? <span class="sub">{props.sub}</span> : null}
      </h2>
      <p class="stale-note">Not refreshed: showing earlier data</p>
      <PanelError result={result} now={props.now} />
      {result.value !== undefined ? props.render(result.value) : null}
    </section>
  );
}
