/** The insight pages: failure groups, and workers with their leases. */
import type { FailureGroup, FailureGroups } from "../../../lib/queries/failure_groups.ts";
import type { LeaseReport } from "../../../lib/queries/leases.ts";
import type { WorkerList } from "../../../lib/queries/workers.ts";
import type { PanelResult } from "../panels.ts";
import {
  Count,
  duration,
  href,
  type Html,
  LiveBar,
  mayOffer,
  Page,
  Panel,
  percent,
  Table,
  TaskLink,
  Time,
  type View,
} from "../view.tsx";

const WINDOWS = ["1h", "6h", "24h", "7d"];

function Trend(props: { g: FailureGroup }) {
  const { this_hour: now, previous_hour: before, complete } = props.g.trend;
  const arrow = now > before ? "↑" : now < before ? "↓" : "→";
  const cls = now > before ? "tag tag-bad" : now < before ? "tag tag-ok" : "tag";
  return (
    <span
      class={cls}
      title={`${now} in the last hour, ${before}${complete ? "" : "+"} in the hour before`}
    >
      {arrow} {now} / {before}
      {complete ? "" : "+"}
    </span>
  );
}

function GroupActions(props: { view: View; g: FailureGroup }) {
  const { view, g } = props;
  if (!mayOffer(view)) return null;
  return (
    <div class="actions">
      <a class="btn btn-small" href={href(view, "/actions/retry", { group: g.id })}>Retry…</a>
      <a class="btn btn-small btn-danger" href={href(view, "/actions/cancel", { group: g.id })}>
        Cancel…
      </a>
    </div>
  );
}

function Groups(props: { view: View; f: FailureGroups }) {
  const { view, f } = props;
  if (f.groups.length === 0) return <p class="empty">No failures in this window</p>;
  return (
    <>
      <p class="small muted">
        <Count n={f.total} /> failures in the window ({f.filter.statuses.join(", ")}), in{" "}
        <Count n={f.group_count} /> groups
        {f.sampled
          ? ` · grouped from the newest ${f.analyzed.toLocaleString("en-US")} (a sample: ` +
            "counts marked ≈ are scaled to the total)"
          : ""}
      </p>
      <Table
        columns={[
          { label: "Failures", class: "num" },
          { label: "Share", class: "num hide-sm" },
          "Type and error",
          "Trend",
          { label: "Last seen", class: "hide-sm" },
          { label: "Tasks", class: "hide-sm" },
          view.allowWrite && "Act",
        ]}
      >
        {f.groups.map((g) => (
          <tr>
            <td class="num">
              <Count n={f.sampled ? g.estimated_total : g.count} estimated={f.sampled} />
            </td>
            <td class="num hide-sm">{percent(g.share)}</td>
            <td class="wrap">
              <div>
                <a href={href(view, "/tasks", { type: g.type, status: "failed" })}>{g.type}</a>{" "}
                <span class="muted small mono">{g.id}</span>
              </div>
              <div class="err-text">{g.fingerprint}</div>
              {g.example_error !== null && g.example_error !== g.fingerprint && (
                <details>
                  <summary class="small muted">Newest error in full</summary>
                  <pre class="error-text">{g.example_error}</pre>
                </details>
              )}
              <div class="small muted">
                {g.domains.map((d) => `${d.domain ?? "(no domain)"} ${d.count}`).join(" · ")}
                {" · attempts "}
                {g.attempts.min === g.attempts.max
                  ? g.attempts.min
                  : `${g.attempts.min}–${g.attempts.max}`}
              </div>
            </td>
            <td>
              <Trend g={g} />
            </td>
            <td class="hide-sm">
              <Time at={g.last_seen} now={view.now} />
            </td>
            <td class="hide-sm">
              {g.sample_ids.slice(0, 3).map((id) => (
                <div>
                  <TaskLink view={view} id={id} />
                </div>
              ))}
            </td>
            {view.allowWrite && (
              <td>
                <GroupActions view={view} g={g} />
              </td>
            )}
          </tr>
        ))}
      </Table>
    </>
  );
}

/** The failures page: failure groups by error fingerprint, with trend and group actions. */
export function FailuresPage(
  props: { view: View; since: string; result?: PanelResult<FailureGroups>; invalid?: string },
): Html {
  const { view } = props;
  return (
    <Page view={view} title="Failures" section="failures">
      <h1>
        Failures <LiveBar view={view} />
      </h1>
      <nav class="actions mb" aria-label="Window">
        <span class="small muted">Window:</span>
        {WINDOWS.map((w) => (
          <a
            class={w === props.since ? "btn btn-small btn-primary" : "btn btn-small"}
            href={href(view, "/failures", { since: w })}
            aria-current={w === props.since ? "page" : undefined}
          >
            {w}
          </a>
        ))}
      </nav>
      {props.invalid !== undefined && (
        <div class="notice notice-bad" role="alert">{props.invalid}</div>
      )}
      {props.result && (
        <Panel
          id="p-failures"
          title="Failure groups"
          sub={`by type and error fingerprint, last ${props.since}`}
          result={props.result}
          now={view.now}
          render={(f) => <Groups view={view} f={f} />}
        />
      )}
    </Page>
  );
}

function Workers(props: { view: View; w: WorkerList }) {
  const { view, w } = props;
  if (w.workers.length === 0) {
    return (
      <p class="empty">
        No dispatcher is registered or holds a running task
        {w.registry ? "" : " (the worker registry table is missing: run seedtask migrate)"}
      </p>
    );
  }
  return (
    <Table
      after={w.hidden > 0 && (
        <p class="small muted">
          {w.hidden} registered workers silent for more than a day are not shown
        </p>
      )}
      columns={[
        "Worker",
        "State",
        { label: "Running", class: "num" },
        { label: "Expired", class: "num" },
        "Last seen",
        { label: "Host / pid", class: "hide-sm" },
        { label: "Started", class: "hide-sm" },
        { label: "Done / failed", class: "hide-sm num" },
        { label: "Types", class: "hide-sm" },
      ]}
    >
      {w.workers.map((x) => (
        <tr>
          <td class="wrap mono">{x.name}</td>
          <td>
            {x.silent
              ? <span class="tag tag-bad">silent</span>
              : <span class="tag tag-ok">live</span>}{" "}
            {!x.registered && (
              <span class="tag" title="Not in the worker registry">unregistered</span>
            )}
          </td>
          <td class="num">{x.running}</td>
          <td class="num">
            {x.expired_leases > 0 ? <span class="tag tag-bad">{x.expired_leases}</span> : 0}
          </td>
          <td>
            <Time at={x.last_seen_at} now={view.now} />
          </td>
          <td class="hide-sm wrap mono">
            {x.host ?? "—"}
            {x.pid !== null ? ` / ${x.pid}` : ""}
          </td>
          <td class="hide-sm">
            <Time at={x.started_at} now={view.now} />
          </td>
          <td class="hide-sm num">
            {x.counts ? `${x.counts.completed} / ${x.counts.failed}` : "—"}
          </td>
          <td class="hide-sm wrap small">{x.types?.join(", ") ?? "every type"}</td>
        </tr>
      ))}
    </Table>
  );
}

const STATE_TEXT: Record<string, string> = {
  expired: "lease expired",
  heartbeat_stale: "no heartbeat",
  no_lease: "no lease, locked long",
};

function Leases(props: { view: View; l: LeaseReport }) {
  const { view, l } = props;
  const rq = l.requeue_stale;
  return (
    <>
      <p class={`notice ${rq.retry + rq.failed > 0 ? "notice-warn" : "notice-ok"}`}>
        <code>seedtask requeue-stale</code> would now return <strong>{rq.retry}</strong>{" "}
        {rq.retry === 1 ? "task" : "tasks"} to the queue and fail <strong>{rq.failed}</strong>{" "}
        (attempts at{" "}
        {l.thresholds.max_attempts}); a running dispatcher's reaper does the same on its own.
      </p>
      {l.owners.length > 0 && (
        <Table
          class="mb"
          columns={["Owner", { label: "Stuck", class: "num" }, { label: "Expired", class: "num" }, {
            label: "Running",
            class: "num",
          }, "Last heard"]}
        >
          {l.owners.map((o) => (
            <tr>
              <td class="wrap mono">{o.owner ?? "(no owner)"}</td>
              <td class="num">{o.stuck}</td>
              <td class="num">{o.expired}</td>
              <td class="num">{o.running}</td>
              <td>
                <Time at={o.last_heard_at} now={view.now} />
              </td>
            </tr>
          ))}
        </Table>
      )}
      {l.tasks.length === 0 ? <p class="empty">No running task looks stuck</p> : (
        <Table
          after={l.total > l.tasks.length && (
            <p class="small muted">
              {l.tasks.length} of {l.total} shown
            </p>
          )}
          columns={["Task", "Why", { label: "Type", class: "hide-sm" }, "Owner", "Lease", {
            label: "Heartbeat",
            class: "hide-sm",
          }, "requeue-stale"]}
        >
          {l.tasks.map((t) => (
            <tr>
              <td>
                <TaskLink view={view} id={t.id} />
              </td>
              <td>
                <span class="tag tag-bad">{STATE_TEXT[t.state] ?? t.state}</span>
              </td>
              <td class="hide-sm wrap">{t.type}</td>
              <td class="wrap mono">{t.owner ?? "—"}</td>
              <td>
                <Time at={t.lease_expires_at} now={view.now} />
              </td>
              <td class="hide-sm">
                <Time at={t.last_heartbeat} now={view.now} />
              </td>
              <td>{t.requeue ?? <span class="muted">not yet</span>}</td>
            </tr>
          ))}
        </Table>
      )}
    </>
  );
}

/** Workers and leases: who is working, and what is stuck. */
export function WorkersPage(
  props: { view: View; workers: PanelResult<WorkerList>; leases: PanelResult<LeaseReport> },
): Html {
  const { view } = props;
  return (
    <Page view={view} title="Workers & leases" section="workers">
      <h1>
        Workers &amp; leases <LiveBar view={view} />
      </h1>
      <Panel
        id="p-workers"
        title="Workers"
        sub="registered dispatchers and owners of running tasks"
        result={props.workers}
        now={view.now}
        render={(w) => <Workers view={view} w={w} />}
      />
      <Panel
        id="p-leases"
        title="Stuck tasks"
        sub={props.leases.value
          ? `expired leases, no heartbeat for ${
            duration(props.leases.value.thresholds.stale_after_seconds)
          }`
          : undefined}
        result={props.leases}
        now={view.now}
        render={(l) => <Leases view={view} l={l} />}
      />
    </Page>
  );
}
