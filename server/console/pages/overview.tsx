/** The overview: counts by status, the queue's health, activity, types, long-running tasks. */
import type { TaskStatistics } from "../../../lib/queries/task_stats.ts";
import { TASK_STATUSES } from "../../../lib/table/contract.ts";
import { BarChart, Legend, type Series } from "../chart.tsx";
import type { PanelResult } from "../panels.ts";
import {
  Count,
  duration,
  href,
  type Html,
  LiveBar,
  Page,
  Panel,
  percent,
  Status,
  TaskLink,
  Time,
  type View,
} from "../view.tsx";

/** What the overview shows. */
export interface OverviewData {
  stats: PanelResult<TaskStatistics>;
}

const estimated = (s: TaskStatistics, field: string) =>
  s.estimates?.fields.includes(field) ?? false;

const ACTIVITY: Series[] = [
  { key: "created", name: "created", cls: "c-created" },
  { key: "completed", name: "completed", cls: "c-completed" },
  { key: "failed", name: "failed", cls: "c-failed" },
];

function StatusTiles(props: { view: View; s: TaskStatistics }) {
  const { view, s } = props;
  return (
    <>
      <div class="tiles">
        {TASK_STATUSES.map((status) => (
          <a class={`tile st-${status}`} href={href(view, "/tasks", { status })}>
            <div class="label">
              <span class="dot" aria-hidden="true"></span>
              {status}
            </div>
            <div class="value">
              <Count
                n={s.status_counts[status] ?? 0}
                estimated={estimated(s, `status_counts.${status}`)}
              />
            </div>
          </a>
        ))}
      </div>
      <p class="small muted">
        <Count n={s.total} estimated={estimated(s, "total")} /> tasks in all
        {s.estimates
          ? (
            <>
              {" "}· ≈ marks planner estimates (last ANALYZE{" "}
              <Time at={s.estimates.analyzed_at} now={view.now} />)
            </>
          )
          : " · every count exact"}
      </p>
    </>
  );
}

function QueueHealth(props: { view: View; s: TaskStatistics }) {
  const { view, s } = props;
  const lag = s.queue.lag_seconds;
  return (
    <dl class="kv">
      <dt>Ready to run</dt>
      <dd>
        <a href={href(view, "/tasks", { status: ["queued", "retry"] })}>
          <Count n={s.queue.ready} />
        </a>
      </dd>
      <dt>Lag</dt>
      <dd>
        <span class={lag !== null && lag > 300 ? "tag tag-warn" : ""}>{duration(lag)}</span>
        <span class="muted small">(oldest ready task's wait)</span>
      </dd>
      <dt>Oldest ready</dt>
      <dd>
        <Time at={s.queue.oldest_ready_at} now={view.now} />
      </dd>
      <dt>Now due</dt>
      <dd>
        <Count n={s.queue.overdue} />{" "}
        <span class="muted small">scheduled or backed-off tasks whose time has come</span>
      </dd>
      <dt>Stuck running</dt>
      <dd>
        {s.stuck_running > 0
          ? (
            <a class="tag tag-bad" href={href(view, "/workers")}>
              {s.stuck_running} stuck
            </a>
          )
          : <span class="tag tag-ok">none</span>}
      </dd>
      <dt>Failure rate</dt>
      <dd>
        {percent(s.failure_rate.last_hour)} <span class="muted small">last hour</span> ·{" "}
        {percent(s.failure_rate.last_day)} <span class="muted small">last 24 h</span>
      </dd>
      <dt>Throughput</dt>
      <dd>
        <Count n={s.throughput.completed_last_hour} /> completed,{" "}
        <Count n={s.throughput.failed_last_hour} /> failed{" "}
        <span class="muted small">last hour</span>
      </dd>
      <dt>Run time</dt>
      <dd>
        p50 {duration(s.run_duration_seconds.p50)} · p95 {duration(s.run_duration_seconds.p95)}{" "}
        <span class="muted small">
          ({s.run_duration_seconds.sample} recent completions)
        </span>
      </dd>
    </dl>
  );
}

function Activity(props: { s: TaskStatistics }) {
  // Oldest on the left.
  const days = [...props.s.recent_activity].sort((a, b) => a.date.localeCompare(b.date));
  const buckets = days.map((d) => ({
    label: d.date.slice(5),
    title: d.date,
    values: { created: d.created_count, completed: d.completed_count, failed: d.failed_count },
  }));
  return (
    <>
      <BarChart
        buckets={buckets}
        series={ACTIVITY}
        label={`Tasks created, completed and failed per day, last ${buckets.length} days`}
      />
      <Legend series={ACTIVITY} />
    </>
  );
}

function Types(props: { view: View; s: TaskStatistics }) {
  const { view, s } = props;
  const rows = Object.entries(s.type_counts);
  if (rows.length === 0) return <p class="empty">No tasks yet</p>;
  const est = estimated(s, "type_counts");
  return (
    <div class="table-wrap">
      <table>
        <thead>
          <tr>
            <th>Type</th>
            <th class="num">Tasks</th>
            <th class="num">Show</th>
          </tr>
        </thead>
        <tbody>
          {rows.map(([type, n]) => (
            <tr>
              <td class="wrap">
                <a href={href(view, "/tasks", { type })}>{type}</a>
              </td>
              <td class="num">
                <Count n={n} estimated={est} />
              </td>
              <td class="num">
                <a href={href(view, "/tasks", { type, status: "failed" })}>failed</a>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function LongRunning(props: { view: View; s: TaskStatistics }) {
  const { view, s } = props;
  if (s.long_running.length === 0) {
    return (
      <p class="empty">Nothing running longer than {duration(s.options.long_running_seconds)}</p>
    );
  }
  return (
    <div class="table-wrap">
      <table>
        <thead>
          <tr>
            <th>Task</th>
            <th>Type</th>
            <th>Worker</th>
            <th class="num">Running for</th>
          </tr>
        </thead>
        <tbody>
          {s.long_running.map((t) => (
            <tr>
              <td>
                <TaskLink view={view} id={t.id} />
              </td>
              <td class="wrap">{t.type}</td>
              <td class="wrap mono">{t.locked_by ?? "—"}</td>
              <td class="num">{duration(t.running_seconds)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function HighAttempts(props: { view: View; s: TaskStatistics }) {
  const { view, s } = props;
  if (s.high_attempts.length === 0) {
    return <p class="empty">No task has {s.options.high_attempts} or more attempts</p>;
  }
  return (
    <div class="table-wrap">
      <table>
        <thead>
          <tr>
            <th>Task</th>
            <th>Status</th>
            <th class="num">Attempts</th>
            <th>Error</th>
          </tr>
        </thead>
        <tbody>
          {s.high_attempts.map((t) => (
            <tr>
              <td>
                <TaskLink view={view} id={t.id} />
              </td>
              <td>
                <Status status={t.status} />
              </td>
              <td class="num">{t.attempts}</td>
              <td class="err">
                <span class="line">{t.error ?? ""}</span>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

/** The overview page. */
export function OverviewPage(props: { view: View; data: OverviewData }): Html {
  const { view, data } = props;
  const now = view.now;
  return (
    <Page view={view} title="Overview" section="overview">
      <h1>
        Overview <LiveBar view={view} />
      </h1>
      <Panel
        id="p-status"
        title="Tasks by status"
        result={data.stats}
        now={now}
        render={(s) => <StatusTiles view={view} s={s} />}
      />
      <div class="grid-2">
        <Panel
          id="p-queue"
          title="Queue health"
          result={data.stats}
          now={now}
          render={(s) => <QueueHealth view={view} s={s} />}
        />
        <Panel
          id="p-activity"
          title="Activity"
          sub="per day, UTC"
          result={data.stats}
          now={now}
          render={(s) => <Activity s={s} />}
        />
      </div>
      <div class="grid-2">
        <Panel
          id="p-types"
          title="Types"
          sub="most common"
          result={data.stats}
          now={now}
          render={(s) => <Types view={view} s={s} />}
        />
        <Panel
          id="p-long"
          title="Long running"
          result={data.stats}
          now={now}
          render={(s) => <LongRunning view={view} s={s} />}
        />
      </div>
      <Panel
        id="p-attempts"
        title="Most attempts"
        result={data.stats}
        now={now}
        render={(s) => <HighAttempts view={view} s={s} />}
      />
    </Page>
  );
}
