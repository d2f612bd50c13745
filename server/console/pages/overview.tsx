/** The overview: counts by status, the queue's health, activity, types, long-running tasks. */
import type { TaskStatistics } from "../../../lib/queries/task_stats.ts";
import type { Latency } from "../../../lib/queries/latency.ts";
import type { Overview } from "../../../lib/queries/overview.ts";
import type { Throughput } from "../../../lib/queries/throughput.ts";
import type { WorkerList } from "../../../lib/queries/workers.ts";
import { TASK_STATUSES } from "../../../lib/table/contract.ts";
import { BarChart, Legend, type Series } from "../chart.tsx";
import type { PanelResult } from "../panels.ts";
import type { QueuePause } from "../../../lib/ops/queue_pauses.ts";
import { PausedList } from "./pauses.tsx";
import {
  Count,
  duration,
  ErrorCell,
  href,
  type Html,
  LiveBar,
  mayOffer,
  Page,
  Panel,
  percent,
  Table,
  TaskCells,
  TaskLink,
  Time,
  type View,
} from "../view.tsx";

/** What the overview shows: each its own shared computation, each degrading alone. */
export interface OverviewData {
  stats: PanelResult<TaskStatistics>;
  overview: PanelResult<Overview>;
  throughput: PanelResult<Throughput>;
  latency: PanelResult<Latency>;
  workers: PanelResult<WorkerList>;
}

const THROUGHPUT: Series[] = [
  { key: "completed", name: "completed", cls: "c-completed" },
  { key: "failed", name: "failed", cls: "c-failed" },
];

function clockLabel(d: Date, hours: boolean): string {
  const iso = new Date(d).toISOString();
  return hours ? `${iso.slice(11, 13)}h` : iso.slice(11, 16);
}

function ThroughputCharts(props: { t: Throughput }) {
  const bucket = (hours: boolean) => (b: Throughput["minutes"][number]) => ({
    label: clockLabel(b.start, hours),
    title: `${new Date(b.start).toISOString().slice(0, 16).replace("T", " ")} UTC${
      b.open ? " (so far)" : ""
    }`,
    values: { completed: b.completed, failed: b.failed },
  });
  const sum = (bs: Throughput["minutes"], k: "completed" | "failed") =>
    bs.reduce((n, b) => n + b[k], 0);
  const m = props.t.minutes;
  const h = props.t.hours;
  return (
    <>
      <h3 class="chart-title">
        Last hour, per minute{" "}
        <span class="muted small">
          {sum(m, "completed").toLocaleString("en-US")} completed ·{" "}
          {sum(m, "failed").toLocaleString("en-US")} failed
        </span>
      </h3>
      <BarChart
        buckets={m.map(bucket(false))}
        series={THROUGHPUT}
        label="Tasks completed and failed per minute, last hour"
      />
      {h.length > 0 && (
        <>
          <h3 class="chart-title">
            Last {h.length} hours, per hour{" "}
            <span class="muted small">
              {sum(h, "completed").toLocaleString("en-US")} completed ·{" "}
              {sum(h, "failed").toLocaleString("en-US")} failed
            </span>
          </h3>
          <BarChart
            buckets={h.map(bucket(true))}
            series={THROUGHPUT}
            label={`Tasks completed and failed per hour, last ${h.length} hours`}
          />
        </>
      )}
      <Legend series={THROUGHPUT} />
    </>
  );
}

function PausedTag(props: { pauses: readonly QueuePause[] }) {
  if (props.pauses.length === 0) return null;
  const all = props.pauses.some((p) => p.domain === null);
  const domains = props.pauses.filter((p) => p.domain !== null).map((p) => p.domain);
  return (
    <span
      class="tag tag-warn"
      title={all ? "Paused in every domain" : `Paused in domain ${domains.join(", ")}`}
    >
      {all
        ? "paused"
        : `paused in ${domains.length} ${domains.length === 1 ? "domain" : "domains"}`}
    </span>
  );
}

function TypeTable(
  props: { view: View; o: Overview; latency?: Latency; paused?: readonly QueuePause[] },
) {
  const { view, o } = props;
  const act = mayOffer(view);
  const pausesOf = (type: string) => (props.paused ?? []).filter((p) => p.type === type);
  const lat = new Map((props.latency?.types ?? []).map((t) => [t.type, t]));
  const types = [...o.queue.map((q) => q.type)];
  for (const t of lat.keys()) if (t !== null && !types.includes(t)) types.push(t);
  if (types.length === 0) return <p class="empty">Nothing queued, running or finished lately</p>;
  const queue = new Map(o.queue.map((q) => [q.type, q]));
  return (
    <Table
      after={props.latency && (
        <p class="small muted">
          Failed and percentiles: tasks that finished in the last{" "}
          {duration(props.latency.window_seconds)}
          {props.latency.sampled ? ` (the newest ${props.latency.sample_limit})` : ""}.
        </p>
      )}
      columns={[
        "Type",
        { label: "Ready", class: "num" },
        { label: "Queued", class: "num" },
        { label: "Running", class: "num" },
        { label: "Retry", class: "num" },
        { label: "Lag", class: "num" },
        { label: "Failed", class: "num", title: "Failed for good in the latency window" },
        { label: "p95 run", class: "num hide-sm" },
        { label: "p95 wait", class: "num hide-sm" },
        act && "Act",
      ]}
    >
      {types.map((type) => {
        const q = queue.get(type);
        const l = lat.get(type);
        return (
          <tr>
            <td class="wrap">
              <a href={href(view, "/tasks", { type })}>{type}</a>{" "}
              <PausedTag pauses={pausesOf(type)} />
            </td>
            <td class="num">{q ? <Count n={q.ready} /> : 0}</td>
            <td class="num">{q ? <Count n={q.queued} /> : 0}</td>
            <td class="num">{q ? <Count n={q.running} /> : 0}</td>
            <td class="num">{q ? <Count n={q.retry} /> : 0}</td>
            <td class="num">
              <span class={q?.lag_seconds && q.lag_seconds > 300 ? "tag tag-warn" : ""}>
                {duration(q?.lag_seconds)}
              </span>
            </td>
            <td class="num">
              {l && l.failed > 0
                ? (
                  <a class="err-text" href={href(view, "/tasks", { type, status: "failed" })}>
                    {l.failed}
                  </a>
                )
                : 0}
            </td>
            <td class="num hide-sm">{duration(l?.run_seconds.p95)}</td>
            <td class="num hide-sm">{duration(l?.wait_seconds.p95)}</td>
            {act && (
              <td>
                {pausesOf(type).some((p) => p.domain === null)
                  ? (
                    <a class="btn btn-small" href={href(view, "/resume", { type })}>
                      Resume…
                    </a>
                  )
                  : (
                    <a class="btn btn-small" href={href(view, "/pause", { type })}>
                      Pause…
                    </a>
                  )}
              </td>
            )}
          </tr>
        );
      })}
    </Table>
  );
}

function WorkersSummary(props: { view: View; w: WorkerList }) {
  const { view, w } = props;
  const live = w.workers.filter((x) => !x.silent);
  const silent = w.workers.filter((x) => x.silent);
  if (w.workers.length === 0) return <p class="empty">No dispatcher is working</p>;
  return (
    <>
      <p>
        <strong>{live.length}</strong> live · <strong>{silent.length}</strong> silent ·{" "}
        <a href={href(view, "/workers")}>details</a>
      </p>
      <ul class="plain">
        {w.workers.slice(0, 8).map((x) => (
          <li>
            <span class={`dot ${x.silent ? "st-failed" : "st-completed"}`} aria-hidden="true">
            </span>{" "}
            <span class="mono">{x.name}</span>{" "}
            <span class="muted small">
              {x.running} running · seen <Time at={x.last_seen_at} now={view.now} />
            </span>
          </li>
        ))}
      </ul>
    </>
  );
}

const ACTIVITY: Series[] = [
  { key: "created", name: "created", cls: "c-created" },
  { key: "completed", name: "completed", cls: "c-completed" },
  { key: "failed", name: "failed", cls: "c-failed" },
];

function StatusTiles(props: { view: View; o: Overview }) {
  const { view, o } = props;
  const total = TASK_STATUSES.reduce((n, st) => n + (o.status_counts[st] ?? 0), 0);
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
              <Count n={o.status_counts[status] ?? 0} estimated={o.estimated.includes(status)} />
            </div>
          </a>
        ))}
      </div>
      <p class="small muted">
        <Count n={total} estimated={o.estimated.length > 0} /> tasks in all
        {o.estimated.length > 0
          ? ` · ≈ marks planner estimates (${o.estimated.join(", ")}: a large table)`
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

function LongRunning(props: { view: View; s: TaskStatistics }) {
  const { view, s } = props;
  if (s.long_running.length === 0) {
    return (
      <p class="empty">Nothing running longer than {duration(s.options.long_running_seconds)}</p>
    );
  }
  return (
    <Table columns={["Task", "Type", "Worker", { label: "Running for", class: "num" }]}>
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
    </Table>
  );
}

function HighAttempts(props: { view: View; s: TaskStatistics }) {
  const { view, s } = props;
  if (s.high_attempts.length === 0) {
    return <p class="empty">No task has {s.options.high_attempts} or more attempts</p>;
  }
  return (
    <Table columns={["Task", "Status", { label: "Attempts", class: "num" }, "Error"]}>
      {s.high_attempts.map((t) => (
        <tr>
          <TaskCells view={view} task={t} />
          <td class="num">{t.attempts}</td>
          <ErrorCell error={t.error} />
        </tr>
      ))}
    </Table>
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
        result={data.overview}
        now={now}
        render={(o) => <StatusTiles view={view} o={o} />}
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
          id="p-throughput"
          title="Throughput"
          sub="completed and failed, UTC"
          result={data.throughput}
          now={now}
          render={(t) => <ThroughputCharts t={t} />}
        />
      </div>
      <Panel
        id="p-paused"
        title="Paused"
        sub="types no dispatcher claims"
        result={data.stats}
        now={now}
        render={(s) => <PausedList view={view} paused={s.paused} />}
      />
      <Panel
        id="p-queues"
        title="Types"
        sub="queue, lag, failures and run time per type"
        result={data.overview}
        now={now}
        render={(o) => (
          <TypeTable
            view={view}
            o={o}
            latency={data.latency.value}
            paused={data.stats.value?.paused}
          />
        )}
      />
      <div class="grid-2">
        <Panel
          id="p-workers"
          title="Workers"
          result={data.workers}
          now={now}
          render={(w) => <WorkersSummary view={view} w={w} />}
        />
        <Panel
          id="p-long"
          title="Long running"
          result={data.stats}
          now={now}
          render={(s) => <LongRunning view={view} s={s} />}
        />
      </div>
      <div class="grid-2">
        <Panel
          id="p-activity"
          title="Activity"
          sub="created, completed and failed per day, UTC"
          result={data.stats}
          now={now}
          render={(s) => <Activity s={s} />}
        />
        <Panel
          id="p-attempts"
          title="Most attempts"
          result={data.stats}
          now={now}
          render={(s) => <HighAttempts view={view} s={s} />}
        />
      </div>
    </Page>
  );
}
