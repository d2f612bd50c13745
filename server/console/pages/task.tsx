/** One task: every column, params and result as JSON, the whole error, a timeline, actions. */
import type { Task } from "../../../lib/table/contract.ts";
import { href, type Html, mayOffer, Page, Status, Time, type View } from "../view.tsx";

/** Pretty JSON of a params or result value. */
function json(value: unknown): string {
  if (value === null || value === undefined) return "null";
  try {
    return JSON.stringify(value, null, 2);
  } catch {
    return String(value);
  }
}

function asDate(v: unknown): Date | null {
  if (v instanceof Date) return v;
  if (typeof v === "string" && !Number.isNaN(Date.parse(v))) return new Date(v);
  return null;
}

/** A cell of the "every column" table. */
function Value(props: { value: unknown; now: Date }) {
  const v = props.value;
  if (v === null || v === undefined) return <span class="muted">null</span>;
  if (v instanceof Date) {
    return (
      <>
        <span class="mono">{v.toISOString()}</span>{" "}
        <span class="muted small">
          (<Time at={v} now={props.now} />)
        </span>
      </>
    );
  }
  if (typeof v === "object") return <pre>{json(v)}</pre>;
  return <span class="mono wrap">{String(v)}</span>;
}

interface Step {
  label: string;
  at: Date;
  note?: string;
  cls?: string;
}

/** The task's life as far as its columns tell it, in time order. */
function timeline(t: Task, now: Date): Step[] {
  const steps: Step[] = [{ label: "Created", at: t.created_at }];
  const runAfter = asDate(t.run_after);
  if (runAfter) {
    steps.push({
      label: runAfter > now ? "Runs after" : "Run after",
      at: runAfter,
      note: t.status === "retry" ? "backed off before the next attempt" : "scheduled",
      cls: runAfter > now ? "tl-future" : undefined,
    });
  }
  const lockedAt = asDate(t.locked_at);
  if (lockedAt) {
    steps.push({
      label: "Claimed",
      at: lockedAt,
      note: `by ${t.locked_by ?? "?"}, attempt ${t.attempts}`,
    });
  }
  const beat = asDate(t.last_heartbeat);
  if (beat) steps.push({ label: "Last heartbeat", at: beat, note: t.owner_id ?? undefined });
  const lease = asDate(t.lease_expires_at);
  if (lease) {
    steps.push({
      label: lease > now ? "Lease expires" : "Lease expired",
      at: lease,
      cls: lease > now ? "tl-future" : "tl-bad",
    });
  }
  const finished: Record<string, [string, string]> = {
    completed: ["Completed", "tl-ok"],
    failed: ["Failed", "tl-bad"],
    cancelled: ["Cancelled", "tl-bad"],
  };
  const end = finished[t.status];
  steps.push(
    end
      ? { label: end[0], at: t.updated_at, cls: end[1] }
      : { label: `Last updated (${t.status})`, at: t.updated_at },
  );
  return steps.sort((a, b) => a.at.getTime() - b.at.getTime());
}

/** The lease, as a dispatcher sees it. */
function LeaseState(props: { task: Task; now: Date }) {
  const t = props.task;
  const hasLeaseColumns = "lease_expires_at" in t;
  if (t.status !== "running") {
    return <p class="small muted">Not running: no lease is held.</p>;
  }
  if (!hasLeaseColumns) {
    return (
      <p class="small">
        Running on <span class="mono">{t.locked_by ?? "?"}</span> since{" "}
        <Time at={t.locked_at} now={props.now} /> (this table has no lease columns).
      </p>
    );
  }
  const lease = asDate(t.lease_expires_at);
  const expired = lease !== null && lease <= props.now;
  return (
    <dl class="kv">
      <dt>Owner</dt>
      <dd class="mono">{t.owner_id ?? t.locked_by ?? "—"}</dd>
      <dt>Lease</dt>
      <dd>
        {lease === null ? <span class="muted">none</span> : expired
          ? (
            <span class="tag tag-bad">
              expired <Time at={lease} now={props.now} />
            </span>
          )
          : (
            <span class="tag tag-ok">
              valid, expires <Time at={lease} now={props.now} />
            </span>
          )}
      </dd>
      <dt>Heartbeat</dt>
      <dd>
        <Time at={asDate(t.last_heartbeat)} now={props.now} />
      </dd>
    </dl>
  );
}

/** The actions a task's status allows (only with --allow-write). */
function TaskActions(props: { view: View; task: Task }) {
  const { view, task } = props;
  const base = `/tasks/${task.id}`;
  const links: [string, string, string][] = [];
  if (task.status === "failed" || task.status === "cancelled") {
    links.push(["retry", "Retry…", "btn btn-primary"]);
  }
  if (task.status === "retry") links.push(["retry", "Run now…", "btn btn-primary"]);
  if (task.status === "created") links.push(["release", "Release…", "btn btn-primary"]);
  if (["created", "queued", "retry"].includes(task.status)) {
    links.push(["cancel", "Cancel…", "btn btn-danger"]);
  }
  if (task.status === "running") links.push(["cancel?force=1", "Force cancel…", "btn btn-danger"]);
  if (links.length === 0) {
    return <p class="small muted">No action applies to a {task.status} task.</p>;
  }
  return (
    <div class="actions">
      {links.map(([path, label, cls]) => (
        <a class={cls} href={`${href(view, base)}/${path}`}>{label}</a>
      ))}
    </div>
  );
}

const MAIN_COLUMNS = ["id", "status", "type", "description", "domain", "attempts"];

/** The task page. */
export function TaskPage(props: { view: View; task: Task }): Html {
  const { view, task } = props;
  const now = view.now;
  const rest = Object.keys(task).filter((k) =>
    !["params", "result", "error"].includes(k) && !MAIN_COLUMNS.includes(k)
  );
  return (
    <Page view={view} title={`Task ${task.id.slice(0, 8)}`} section="tasks">
      <p class="small">
        <a href={href(view, "/tasks")}>« Tasks</a>
      </p>
      <h1>
        <span class="mono">{task.id.slice(0, 8)}</span>
        <Status status={task.status} />
        <span class="sub wrap">{task.type}</span>
      </h1>
      <div class="grid-2">
        <section class="card" aria-labelledby="t-summary">
          <h2 id="t-summary">Summary</h2>
          <dl class="kv">
            <dt>Id</dt>
            <dd class="mono">{task.id}</dd>
            <dt>Type</dt>
            <dd class="wrap">
              <a href={href(view, "/tasks", { type: task.type })}>{task.type}</a>
            </dd>
            <dt>Domain</dt>
            <dd class="wrap">
              {task.domain === null
                ? <span class="muted">none</span>
                : <a href={href(view, "/tasks", { domain: task.domain })}>{task.domain}</a>}
            </dd>
            <dt>Description</dt>
            <dd class="wrap">{task.description ?? <span class="muted">none</span>}</dd>
            <dt>Attempts</dt>
            <dd>{task.attempts}</dd>
          </dl>
          {view.allowWrite && (
            <>
              <h2 class="mt">Actions</h2>
              {mayOffer(view) ? <TaskActions view={view} task={task} /> : (
                <p class="small">
                  <a href={href(view, "/sign-in", { next: href(view, `/tasks/${task.id}`) })}>
                    Sign in
                  </a>{" "}
                  to retry or cancel.
                </p>
              )}
            </>
          )}
        </section>
        <section class="card" aria-labelledby="t-timeline">
          <h2 id="t-timeline">Timeline</h2>
          <ol class="timeline">
            {timeline(task, now).map((s) => (
              <li class={s.cls ?? ""}>
                <strong>{s.label}</strong> <Time at={s.at} now={now} />
                <div class="when mono">{s.at.toISOString()}</div>
                {s.note && <div class="small muted wrap">{s.note}</div>}
              </li>
            ))}
          </ol>
          <h2 class="mt">Lease</h2>
          <LeaseState task={task} now={now} />
        </section>
      </div>
      {task.error !== null && (
        <section class="card" aria-labelledby="t-error">
          <h2 id="t-error">Error</h2>
          <pre class="error-text">{task.error}</pre>
        </section>
      )}
      <div class="grid-2">
        <section class="card" aria-labelledby="t-params">
          <h2 id="t-params">Params</h2>
          <pre>{json(task.params)}</pre>
        </section>
        <section class="card" aria-labelledby="t-result">
          <h2 id="t-result">Result</h2>
          <pre>{json(task.result)}</pre>
        </section>
      </div>
      <section class="card" aria-labelledby="t-columns">
        <h2 id="t-columns">Every column</h2>
        <div class="table-wrap">
          <table>
            <tbody>
              {rest.map((k) => (
                <tr>
                  <th scope="row" class="mono">{k}</th>
                  <td>
                    <Value value={task[k]} now={now} />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      </section>
    </Page>
  );
}
