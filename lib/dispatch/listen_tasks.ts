import { type Db, guard, mapDbError } from "../db.ts";
import { formatDuration } from "../duration.ts";
import type { DispatchEvent } from "./events.ts";
import { NOTIFY_CHANNEL } from "../ops/enqueue_task.ts";
import type { RunScope } from "./run_scope.ts";

/** What {@link listenForTasks} needs from its dispatcher. */
export interface ListenOptions {
  db: Db;
  /** Where to LISTEN, when not `db` (which goes through a transaction pooler). */
  listenDb?: Db;
  dispatcher: string;
  pollMs: number;
  /** How long the self-test waits for its own notification. */
  checkMs: number;
  scope: RunScope;
  emit(event: DispatchEvent): void;
  /** A task was enqueued. */
  onNotify(): void;
}

/**
 * LISTENs on NOTIFY_CHANNEL (on `listenDb` when given) and returns what undoes it, or null
 * when the dispatcher has to rely on polling — which it then says, once.
 *
 * Through a transaction pooler LISTEN "succeeds" on whichever server connection runs it,
 * which then goes back to the pool: notifications reach another client or no one. So in
 * pooler mode it is not tried at all. Elsewhere a self-test tells: a NOTIFY on a private
 * channel, sent through `db` as enqueue sends its own, must come back within `checkMs`.
 * Until then (and regardless) the dispatcher polls every `pollMs`.
 */
export async function listenForTasks(o: ListenOptions): Promise<(() => Promise<void>) | null> {
  const target = o.listenDb ?? o.db;
  const unavailable = (reason: string) =>
    o.emit({
      event: "listen_unavailable",
      dispatcher: o.dispatcher,
      channel: NOTIFY_CHANNEL,
      target: target.target,
      reason,
      poll_ms: o.pollMs,
      hint: target.config.dsnSource === "embedded"
        ? undefined
        : "pass --listen-dsn with a direct connection to PostgreSQL to wake at once",
    });
  if (target.config.pooler) {
    unavailable("a transaction pooler gives LISTEN's server connection to other clients");
    return null;
  }
  const subs: Array<{ unlisten(): Promise<void> }> = [];
  let cancelCheck = () => {};
  const unlistenAll = async () => {
    cancelCheck();
    for (const sub of subs.splice(0)) await sub.unlisten().catch(() => {});
  };
  try {
    subs.push(await target.sql.listen(NOTIFY_CHANNEL, () => o.onNotify()));
    const probe = `seedtask_probe_${crypto.randomUUID().replaceAll("-", "")}`;
    let arrived!: () => void;
    const arrival = new Promise<boolean>((r) => (arrived = () => r(true)));
    const probeSub = await target.sql.listen(probe, () => arrived());
    subs.push(probeSub);
    await guard(o.db, () => o.db.sql`select pg_notify(${probe}, 'self-test')`);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const verdict = Promise.race([
      arrival,
      new Promise<boolean | null>((r) => {
        timer = o.scope.timeout(() => r(false), o.checkMs);
        cancelCheck = () => r(null);
      }),
    ]);
    o.scope.spawn(async () => {
      const ok = await verdict;
      o.scope.clear(timer);
      if (ok === true) {
        const i = subs.indexOf(probeSub);
        if (i < 0) return; // already unlistened: the dispatcher stopped
        subs.splice(i, 1);
        await probeSub.unlisten().catch(() => {});
        o.emit({
          event: "listening",
          dispatcher: o.dispatcher,
          channel: NOTIFY_CHANNEL,
          target: target.target,
        });
      } else if (ok === false) {
        unavailable(`a test notification did not come back within ${o.checkMs / 1000}s`);
        await unlistenAll();
      }
    });
  } catch (err) {
    await unlistenAll();
    o.emit({
      event: "error",
      dispatcher: o.dispatcher,
      message: `LISTEN ${NOTIFY_CHANNEL} failed, polling every ${
        formatDuration(o.pollMs)
      } instead: ${mapDbError(err, target).message}`,
    });
    return null;
  }
  return unlistenAll;
}
