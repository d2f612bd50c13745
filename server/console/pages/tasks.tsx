/** The task list: every filter of `seedtask list`, keyset pages, the total, errors inline. */
import { type Task, TASK_STATUSES } from "../../../lib/table/contract.ts";
import type { PanelResult } from "../panels.ts";
import {
  Count,
  ErrorCell,
  href,
  type Html,
  LiveBar,
  Page,
  Panel,
  Table,
  TaskCells,
  Time,
  type View,
} from "../view.tsx";

/** The filter as the page's query string spells it (what the form shows). */
export interface TaskQuery {
  status: string[];
  type?: string;
  domain?: string;
  /** `key=value` params filters. */
  param: string[];
  search?: string;
  sort?: string;
  limit?: string;
  after?: string;
}

/** The list's total: a count, whether it is an estimate, or why there is none. */
export interface ListTotal {
  n: number;
  estimated: boolean;
  /** Why it is an estimate. */
  note?: string | null;
}

/** What the tasks page shows. */
export interface TasksData {
  /** A bad filter's message (400): the form is shown, the list is not. */
  invalid?: string;
  page?: PanelResult<{ items: Task[]; next_cursor: string | null }>;
  total?: PanelResult<ListTotal | null>;
  /** Filter-wide actions, when allowed: what the filter selects for them. */
  groupFilter?: Record<string, string | string[] | undefined>;
}

function Filters(props: { view: View; q: TaskQuery }) {
  const { view, q } = props;
  return (
    <form class="card filters" method="get" action={href(view, "/tasks")} role="search">
      <fieldset>
        <legend>Status</legend>
        {TASK_STATUSES.map((s) => (
          <label>
            <input type="checkbox" name="status" value={s} checked={q.status.includes(s)} />
            {s}
          </label>
        ))}
      </fieldset>
      <label>
        Type
        <input type="text" name="type" value={q.type ?? ""} autocomplete="off" />
      </label>
      <label>
        Domain
        <input type="text" name="domain" value={q.domain ?? ""} autocomplete="off" />
      </label>
      <label>
        Params
        <input
          type="text"
          name="param"
          value={q.param.join(" ")}
          placeholder="key=value"
          autocomplete="off"
        />
      </label>
      <label>
        Search
        <input
          type="search"
          name="search"
          value={q.search ?? ""}
          placeholder="description or error"
        />
      </label>
      <label>
        Sort
        <select name="sort">
          <option value="updated" selected={q.sort !== "created"}>last updated</option>
          <option value="created" selected={q.sort === "created"}>created</option>
        </select>
      </label>
      <label>
        Per page
        <select name="limit">
          {["25", "50", "100", "200"].map((n) => (
            <option value={n} selected={(q.limit ?? "50") === n}>{n}</option>
          ))}
        </select>
      </label>
      <div class="actions">
        <button class="btn btn-primary" type="submit">Filter</button>
        <a class="btn" href={href(view, "/tasks")}>Clear</a>
      </div>
    </form>
  );
}

function TaskTable(props: { view: View; items: Task[] }) {
  const { view, items } = props;
  if (items.length === 0) return <p class="empty">No task matches</p>;
  return (
    <Table
      columns={[
        "Task",
        "Status",
        "Type",
        { label: "Domain", class: "hide-sm" },
        { label: "Att.", class: "num" },
        "Updated",
        { label: "Created", class: "hide-sm" },
        "Error / description",
      ]}
    >
      {items.map((t) => (
        <tr>
          <TaskCells view={view} task={t} />
          <td class="wrap">{t.type}</td>
          <td class="wrap hide-sm">{t.domain ?? ""}</td>
          <td class="num">{t.attempts}</td>
          <td>
            <Time at={t.updated_at} now={view.now} />
          </td>
          <td class="hide-sm">
            <Time at={t.created_at} now={view.now} />
          </td>
          {t.error ? <ErrorCell error={t.error} /> : (
            <td class="wrap muted">
              <span class="line">{t.description ?? ""}</span>
            </td>
          )}
        </tr>
      ))}
    </Table>
  );
}

function TotalText(props: { total?: PanelResult<ListTotal | null> }) {
  const t = props.total;
  if (!t) return null;
  if (!t.ok && t.value === undefined) return <>total unavailable ({t.error})</>;
  if (t.value === null || t.value === undefined) return null;
  return (
    <>
      <Count n={t.value.n} estimated={t.value.estimated} />
      {t.value.note ? <span class="muted">({t.value.note})</span> : null}{" "}
      {t.value.n === 1 && !t.value.estimated ? "task" : "tasks"} match
    </>
  );
}

/** The tasks page. */
export function TasksPage(props: { view: View; q: TaskQuery; data: TasksData }): Html {
  const { view, q, data } = props;
  const first = { ...q, after: undefined };
  return (
    <Page view={view} title="Tasks" section="tasks">
      <h1>
        Tasks <LiveBar view={view} />
      </h1>
      <Filters view={view} q={q} />
      {data.invalid !== undefined && (
        <div class="notice notice-bad" role="alert">{data.invalid}</div>
      )}
      {data.page && (
        <Panel
          id="p-tasks"
          title="Matching tasks"
          sub={<TotalText total={data.total} />}
          result={data.page}
          now={view.now}
          render={(page) => (
            <>
              <TaskTable view={view} items={page.items} />
              <div class="pager">
                <span class="small muted">
                  {q.after ? <a href={href(view, "/tasks", first)}>« First page</a> : "First page"}
                </span>
                {page.next_cursor
                  ? (
                    <a
                      class="btn"
                      rel="next"
                      href={href(view, "/tasks", { ...q, after: page.next_cursor })}
                    >
                      Next page »
                    </a>
                  )
                  : <span class="small muted">Last page</span>}
              </div>
            </>
          )}
        />
      )}
      {data.groupFilter && (
        <section class="card" aria-labelledby="group-title">
          <h2 id="group-title">Act on every matching task</h2>
          <p class="small muted">
            By status, type and domain (search is not applied). Each asks for confirmation and says
            how many tasks it will change.
          </p>
          <div class="actions">
            <a class="btn" href={href(view, "/actions/retry", data.groupFilter)}>
              Retry matching…
            </a>
            <a class="btn btn-danger" href={href(view, "/actions/cancel", data.groupFilter)}>
              Cancel matching…
            </a>
            <a class="btn" href={href(view, "/actions/release", data.groupFilter)}>
              Release matching…
            </a>
          </div>
        </section>
      )}
    </Page>
  );
}
