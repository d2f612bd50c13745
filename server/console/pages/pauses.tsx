/**
 * Paused types: the overview's list, and the pause and resume actions (their confirmation,
 * which says how many tasks wait, and their result).
 */
import type { QueuePause } from "../../../lib/ops/queue_pauses.ts";
import { pauseScope } from "../../../lib/format/pauses.ts";
import { Count, href, type Html, mayOffer, Page, Table, Time, type View } from "../view.tsx";

/** `graph_embed` or `graph_embed (domain user_1)`, as the CLI words it; no domain is every one. */
export function scope(p: { type: string; domain?: string | null }): string {
  return pauseScope({ type: p.type, domain: p.domain ?? null });
}

function Waiting(props: { p: QueuePause }) {
  const { p } = props;
  if (p.waiting === undefined) return <span class="muted">—</span>;
  return (
    <>
      <Count n={p.waiting} />
      {p.waiting_capped ? "+" : ""}
    </>
  );
}

/** The paused types: what, how many tasks wait, who, since when, why; resume when allowed. */
export function PausedList(props: { view: View; paused: readonly QueuePause[] }): Html {
  const { view, paused } = props;
  const act = mayOffer(view);
  if (paused.length === 0) {
    return (
      <p class="empty">
        No type is paused
        {act ? " · pause one from the Types table below" : ""}
      </p>
    );
  }
  return (
    <Table
      after={
        <p class="small muted">
          No seedtask dispatcher claims a paused type's tasks; they wait, and are left out of the
          ready count and lag above.
        </p>
      }
      columns={[
        "Type",
        "Domain",
        { label: "Waiting", class: "num" },
        "Paused by",
        "Since",
        "Reason",
        act && "Act",
      ]}
    >
      {paused.map((p) => (
        <tr>
          <td class="wrap">
            <a href={href(view, "/tasks", { type: p.type, domain: p.domain })}>{p.type}</a>
          </td>
          <td class="wrap">{p.domain ?? <span class="muted">every domain</span>}</td>
          <td class="num">
            <Waiting p={p} />
          </td>
          <td class="wrap mono">{p.paused_by}</td>
          <td>
            <Time at={p.paused_at} now={view.now} />
          </td>
          <td class="wrap">{p.reason ?? <span class="muted">none given</span>}</td>
          {act && (
            <td>
              <a
                class="btn btn-small"
                href={href(view, "/resume", { type: p.type, domain: p.domain })}
              >
                Resume…
              </a>
            </td>
          )}
        </tr>
      ))}
    </Table>
  );
}

/** Asks before pausing: what, how many tasks wait, and why (the reason is typed here). */
export function PauseConfirmPage(props: {
  view: View;
  type: string;
  domain?: string;
  waiting: number;
  capped: boolean;
  /** The pauses already covering this type. */
  existing: readonly QueuePause[];
}): Html {
  const { view, type, domain } = props;
  const what = scope({ type, domain });
  const already = props.existing.find((p) => (p.domain ?? undefined) === domain);
  return (
    <Page view={view} title={`Pause ${what}`} section="overview">
      <h1>Pause {what}</h1>
      <section class="card" aria-labelledby="confirm-title">
        <h2 id="confirm-title">
          {already ? "Already paused" : (
            <>
              This will pause <Count n={props.waiting} />
              {props.capped ? "+" : ""} waiting {props.waiting === 1 ? "task" : "tasks"}
            </>
          )}
        </h2>
        <p>
          Type <strong>{type}</strong>
          {domain === undefined ? ", in every domain" : (
            <>
              , in domain <strong>{domain}</strong>
            </>
          )}: <Count n={props.waiting} />
          {props.capped ? "+" : ""} {props.waiting === 1 ? "task is" : "tasks are"}{" "}
          queued or waiting to retry. No seedtask dispatcher claims them, or any new one, from its
          next poll until you resume; running tasks finish as usual.
        </p>
        {already && (
          <p class="notice notice-warn">
            Paused since <Time at={already.paused_at} now={view.now} /> by{" "}
            <span class="mono">{already.paused_by}</span>: pausing again updates the reason and who,
            and keeps when.
          </p>
        )}
        <form method="post" action={href(view, "/pause")} class="mt">
          <input type="hidden" name="csrf" value={view.csrf ?? ""} />
          <input type="hidden" name="type" value={type} />
          {domain !== undefined && <input type="hidden" name="domain" value={domain} />}
          <label class="field" for="pause-reason">
            Reason, shown with the pause (optional)
            <input
              id="pause-reason"
              class="wide"
              name="reason"
              type="text"
              maxlength={1000}
              value={already?.reason ?? ""}
              placeholder="e.g. embedding API down"
            />
          </label>
          <div class="actions mt">
            <button class="btn btn-danger" type="submit" id="confirm">Pause {what}</button>
            <a class="btn" href={href(view, "/")}>Back</a>
          </div>
        </form>
        {domain === undefined && (
          <form method="get" action={href(view, "/pause")} class="mt small">
            <input type="hidden" name="type" value={type} />
            <label class="field" for="pause-domain">Or pause one domain of it only</label>
            <div class="actions">
              <input id="pause-domain" name="domain" type="text" placeholder="domain" required />
              <button class="btn btn-small" type="submit">Count its tasks</button>
            </div>
          </form>
        )}
      </section>
    </Page>
  );
}

/** Asks before resuming: the pauses it removes and how many tasks become claimable. */
export function ResumeConfirmPage(props: {
  view: View;
  type: string;
  domain?: string;
  /** The pauses the resume removes (with waiting counts). */
  pauses: readonly QueuePause[];
}): Html {
  const { view, type, domain, pauses } = props;
  const what = scope({ type, domain });
  const waiting = pauses.reduce((n, p) => n + (p.waiting ?? 0), 0);
  return (
    <Page view={view} title={`Resume ${what}`} section="overview">
      <h1>Resume {what}</h1>
      <section class="card" aria-labelledby="confirm-title">
        <h2 id="confirm-title">
          {pauses.length === 0 ? "Nothing to resume" : (
            <>
              This will release <Count n={waiting} />
              {pauses.some((p) => p.waiting_capped) ? "+" : ""} waiting{" "}
              {waiting === 1 ? "task" : "tasks"}
            </>
          )}
        </h2>
        {pauses.length === 0 ? <p class="notice notice-warn">{what} is not paused.</p> : (
          <>
            <p>
              {domain === undefined
                ? `Every pause of type ${type} is removed`
                : `The pause of type ${type} in domain ${domain} is removed`}; dispatchers claim its
              tasks at once (listening ones) or at their next poll.
            </p>
            <PausedList view={{ ...view, allowWrite: false }} paused={pauses} />
          </>
        )}
        <div class="actions mt">
          {pauses.length > 0 && (
            <form method="post" action={href(view, "/resume")}>
              <input type="hidden" name="csrf" value={view.csrf ?? ""} />
              <input type="hidden" name="type" value={type} />
              {domain !== undefined && <input type="hidden" name="domain" value={domain} />}
              <button class="btn btn-primary" type="submit" id="confirm">Resume {what}</button>
            </form>
          )}
          <a class="btn" href={href(view, "/")}>Back</a>
        </div>
      </section>
    </Page>
  );
}

/** What a pause or resume did. */
export function PauseResultPage(props: {
  view: View;
  title: string;
  message: string;
  ok: boolean;
  pauses: readonly QueuePause[];
}): Html {
  const { view } = props;
  return (
    <Page view={view} title={props.title} section="overview">
      <h1>{props.title}</h1>
      <div class={`notice ${props.ok ? "notice-ok" : "notice-warn"}`} role="status" id="result">
        {props.message}
      </div>
      {props.pauses.length > 0 && (
        <section class="card">
          <PausedList view={{ ...view, allowWrite: false }} paused={props.pauses} />
        </section>
      )}
      <p>
        <a class="btn" href={href(view, "/")}>Back to the overview</a>
      </p>
    </Page>
  );
}
