/** Confirmation before an action (with the dry run's count) and its result after. */
import type { Child } from "hono/jsx";
import type { RefusedTransition } from "../../../lib/ops/task_transitions.ts";
import type { Task } from "../../../lib/table/contract.ts";
import { Count, ErrorCell, type Html, Page, Table, TaskCells, Time, type View } from "../view.tsx";

function SmallTaskTable(props: { view: View; tasks: readonly Task[] }) {
  const { view, tasks } = props;
  if (tasks.length === 0) return null;
  return (
    <Table columns={["Task", "Status", "Type", "Updated", "Error"]}>
      {tasks.map((t) => (
        <tr>
          <TaskCells view={view} task={t} />
          <td class="wrap">{t.type}</td>
          <td>
            <Time at={t.updated_at} now={view.now} />
          </td>
          <ErrorCell error={t.error} />
        </tr>
      ))}
    </Table>
  );
}

/** Asks before changing anything; says how many tasks will change. */
export function ConfirmPage(props: {
  view: View;
  title: string;
  /** "Retry", "Cancel"…: the button's word. */
  verb: string;
  /** How many tasks the action would change now (the dry run). */
  count: number;
  /** What the count is out of, said to the person. */
  what: Child;
  /** A sample of the tasks that would change. */
  sample: readonly Task[];
  /** Why nothing would change, when count is 0. */
  reason?: string;
  action: string;
  hidden: Record<string, string>;
  back: string;
  danger?: boolean;
}): Html {
  const { view } = props;
  return (
    <Page view={view} title={props.title} section="tasks">
      <h1>{props.title}</h1>
      <section class="card" aria-labelledby="confirm-title">
        <h2 id="confirm-title">
          {props.count === 0 ? "Nothing to change" : (
            <>
              This will {props.verb.toLowerCase()} <Count n={props.count} />{" "}
              {props.count === 1 ? "task" : "tasks"}
            </>
          )}
        </h2>
        <p>{props.what}</p>
        {props.reason && <p class="notice notice-warn">{props.reason}</p>}
        {props.sample.length > 0 && (
          <>
            <p class="small muted">
              {props.sample.length < props.count
                ? `The ${props.sample.length} most recently updated of them:`
                : "The tasks:"}
            </p>
            <SmallTaskTable view={view} tasks={props.sample} />
          </>
        )}
        <div class="actions mt">
          {props.count > 0 && (
            <form method="post" action={props.action}>
              <input type="hidden" name="csrf" value={view.csrf ?? ""} />
              {Object.entries(props.hidden).map(([k, v]) => (
                <input type="hidden" name={k} value={v} />
              ))}
              <button
                class={props.danger ? "btn btn-danger" : "btn btn-primary"}
                type="submit"
                id="confirm"
              >
                {props.verb} {props.count} {props.count === 1 ? "task" : "tasks"}
              </button>
            </form>
          )}
          <a class="btn" href={props.back}>Back</a>
        </div>
      </section>
    </Page>
  );
}

/** What an action changed, and what it refused. */
export function ResultPage(props: {
  view: View;
  title: string;
  message: string;
  changed: readonly Task[];
  refused?: readonly RefusedTransition[];
  back: string;
  backLabel: string;
}): Html {
  const { view } = props;
  const refused = props.refused ?? [];
  return (
    <Page view={view} title={props.title} section="tasks">
      <h1>{props.title}</h1>
      <div
        class={`notice ${props.changed.length > 0 ? "notice-ok" : "notice-warn"}`}
        role="status"
        id="result"
      >
        {props.message}
      </div>
      {refused.length > 0 && (
        <div class="notice notice-bad" role="alert">
          {refused.map((r) => (
            <div>
              <span class="mono">{r.id.slice(0, 8)}</span>: {r.message}
            </div>
          ))}
        </div>
      )}
      {props.changed.length > 0 && (
        <section class="card">
          <h2>Changed</h2>
          <SmallTaskTable view={view} tasks={props.changed.slice(0, 100)} />
          {props.changed.length > 100 && (
            <p class="small muted">and {props.changed.length - 100} more</p>
          )}
        </section>
      )}
      <p>
        <a class="btn" href={props.back}>{props.backLabel}</a>
      </p>
    </Page>
  );
}
