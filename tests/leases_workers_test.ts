/**
 * Issue 13 items 2 and 3: what is stuck (leases, and what requeue-stale would do) and who is
 * working (the worker registry), with a dispatcher killed by SIGKILL and one stopped cleanly.
 * Silence is judged at an injected instant, never by waiting on the clock.
 */
import assert from "node:assert/strict";
import { requeueStale } from "../lib/ops/requeue_stale.ts";
import { getLeases } from "../lib/queries/leases.ts";
import { listWorkers } from "../lib/queries/workers.ts";
import { createApp } from "../server/app.ts";
import {
  eventually,
  IDS,
  insertFixture,
  serverTest,
  spawnCli,
  type TestSchema,
  testSchema,
} from "./helpers.ts";
import { runMain } from "./run_main.ts";

const MIN = 60_000;

Deno.test("getLeases() lists stuck running tasks by owner, and requeue-stale's dry run is its own", async () => {
  await using t = await testSchema();
  const now = new Date();
  await insertFixture(t, now);
  const report = await getLeases(t.db, { now });
  // runningStuck: lease expired 2m ago (disp-dead); runningLong: lease runs, heartbeat 30m old.
  assert.deepEqual(
    report.tasks.map((x) => [x.id, x.state, x.requeue]),
    [[IDS.runningLong, "heartbeat_stale", null], [IDS.runningStuck, "expired", "retry"]],
  );
  assert.equal(report.total, 2);
  assert.deepEqual(report.requeue_stale, { retry: 1, failed: 0 });
  assert.deepEqual(
    report.owners.map((o) => [o.owner, o.stuck, o.expired, o.running, o.registered]),
    [["disp-dead", 1, 1, 1, false], ["disp-a", 1, 0, 2, false]],
  );
  // disp-a was last heard from 1 minute ago (runningHealthy's heartbeat), not 30.
  assert.equal(Math.round(report.owners[1]!.last_heard_seconds!), 60);
  // With max attempts 2, runningStuck (2 attempts) would fail instead: the same rule as requeue.
  const strict = await getLeases(t.db, { now, maxAttempts: 2 });
  assert.deepEqual(strict.requeue_stale, { retry: 0, failed: 1 });
  // A looser heartbeat threshold leaves only the expired lease.
  assert.equal((await getLeases(t.db, { now, staleAfterMs: 60 * MIN })).total, 1);
  // What it said requeue-stale would do is what requeue-stale does.
  const done = await requeueStale(t.db, { now });
  assert.deepEqual(done.map((d) => [d.task.id, d.outcome]), [[IDS.runningStuck, "retry"]]);
  assert.equal((await getLeases(t.db, { now })).requeue_stale.retry, 0);

  const cli = await runMain([...t.args, "leases"]);
  assert.equal(cli.code, 0, cli.stderr);
  assert.match(cli.stdout, /^1 stuck running task: 0 with an expired lease, 1 not heard from/m);
  assert.match(cli.stdout, /^requeue-stale now: nothing/m);
  const bad = await runMain([...t.args, "leases", "--stale-after", "never"]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /^error: invalid --stale-after "never"/);
});

Deno.test("getLeases() counts every stuck task by owner, lists only the first `limit`, and previews requeue-stale exactly", async () => {
  await using t = await testSchema();
  const sql = t.sql;
  const tbl = sql(t.table);
  const now = new Date();
  const ago = (minutes: number) => new Date(now.getTime() - minutes * MIN);
  // Four owners, more stuck tasks than the limit, every state, attempts on both sides of the
  // max, and rows that must not count: healthy running tasks and finished ones with old leases.
  const add = (n: number, row: {
    status?: string;
    locked_by: string | null;
    owner_id: string | null;
    locked: number;
    lease: number | null;
    heartbeat: number | null;
  }) =>
    sql`insert into ${tbl} (type, status, locked_by, owner_id, locked_at, lease_expires_at,
        last_heartbeat, attempts)
      select 'job', ${row.status ?? "running"}, ${row.locked_by}, ${row.owner_id},
        ${ago(row.locked)}, ${row.lease === null ? null : ago(row.lease)},
        ${row.heartbeat === null ? null : ago(row.heartbeat)}, i % 4
      from generate_series(1, ${n}) i`;
  // expired leases
  await add(9, { locked_by: "disp-a", owner_id: "disp-a", locked: 20, lease: 5, heartbeat: 6 });
  await add(6, { locked_by: "disp-b", owner_id: "disp-b", locked: 40, lease: 1, heartbeat: 3 });
  // lease still runs, heartbeat stale: listed, never requeued
  await add(5, { locked_by: "disp-b", owner_id: "disp-b", locked: 30, lease: -1, heartbeat: 10 });
  // healthy: counted as running only
  await add(4, { locked_by: "disp-b", owner_id: "disp-b", locked: 2, lease: -1, heartbeat: 0.5 });
  // no lease (a seed dispatcher): old ones stuck, recent ones not; owner from locked_by
  await add(7, { locked_by: "seed-1", owner_id: null, locked: 40, lease: null, heartbeat: null });
  await add(3, { locked_by: "seed-1", owner_id: null, locked: 5, lease: null, heartbeat: null });
  // no owner at all
  await add(2, { locked_by: null, owner_id: null, locked: 50, lease: 20, heartbeat: null });
  // not running: never counted
  await add(5, {
    status: "failed",
    locked_by: "disp-a",
    owner_id: null,
    locked: 60,
    lease: 50,
    heartbeat: 55,
  });
  await sql`insert into ${sql(`${t.schema}.seedtask_workers`)} (table_name, name, last_seen_at)
    values (${t.db.tableName}, 'disp-a', ${ago(1)})`;

  // The same facts counted by hand, independently of lib/.
  const stuck = sql`status = 'running' and (lease_expires_at < ${now}
    or (lease_expires_at is null and locked_at < ${ago(15)})
    or (lease_expires_at is not null and coalesce(last_heartbeat, locked_at) < ${ago(2)}))`;
  const stale = sql`status = 'running' and (lease_expires_at < ${now}
    or (lease_expires_at is null and locked_at < ${ago(15)}))`;
  const [hand] = await sql`select
    (select count(*)::int from ${tbl} where ${stuck}) as total,
    (select count(*)::int from ${tbl} where ${stale} and attempts < 3) as retry,
    (select count(*)::int from ${tbl} where ${stale} and attempts >= 3) as failed`;
  const owners = await sql`
    select coalesce(owner_id, locked_by) as owner, count(*) filter (where ${stuck})::int as stuck,
      count(*) filter (where lease_expires_at < ${now})::int as expired, count(*)::int as running
    from ${tbl} where status = 'running' group by 1 having count(*) filter (where ${stuck}) > 0
    order by 1 nulls first`;
  const listed = await sql`
    select id, case when ${stale} then case when attempts >= 3 then 'failed' else 'retry' end end
      as requeue
    from ${tbl} where ${stuck} order by coalesce(last_heartbeat, locked_at) nulls first, id
    limit 7`;
  assert.deepEqual([hand!.total, hand!.retry, hand!.failed], [29, 19, 5]);

  const report = await getLeases(t.db, { now, limit: 7 });
  assert.equal(report.total, hand!.total);
  assert.deepEqual(report.requeue_stale, { retry: hand!.retry, failed: hand!.failed });
  assert.deepEqual(
    report.tasks.map((x) => [x.id, x.requeue]),
    listed.map((r) => [r.id, r.requeue]),
  );
  assert.deepEqual(
    report.owners.map((o) => [o.owner, o.stuck, o.expired, o.running])
      .sort((a, b) => String(a[0]).localeCompare(String(b[0]))),
    owners.map((o) => [o.owner, o.stuck, o.expired, o.running])
      .sort((a, b) => String(a[0]).localeCompare(String(b[0]))),
  );
  // Longest silent first: the ownerless tasks were claimed 50m ago and never beat, seed-1 5m ago,
  // disp-a's registry heartbeat (1m ago) is later than its tasks' (6m ago), and disp-b's
  // healthy tasks beat 30s ago.
  assert.deepEqual(report.owners.map((o) => o.owner), [null, "seed-1", "disp-a", "disp-b"]);
  const a = report.owners.find((o) => o.owner === "disp-a")!;
  assert.deepEqual([a.registered, Math.round(a.last_heard_seconds!)], [true, 60]);
  assert.equal(report.owners.find((o) => o.owner === "disp-b")!.registered, false);

  // The preview is what the real run does: exactly that many rows of each outcome change.
  const before = await sql`select status::text, count(*)::int as n from ${tbl} group by 1`;
  const done = await requeueStale(t.db, { now });
  assert.equal(done.filter((d) => d.outcome === "retry").length, hand!.retry);
  assert.equal(done.filter((d) => d.outcome === "failed").length, hand!.failed);
  const after = await sql`select status::text, count(*)::int as n from ${tbl} group by 1`;
  const count = (rows: typeof before, status: string) =>
    rows.find((r) => r.status === status)?.n ?? 0;
  assert.equal(count(after, "retry") - count(before, "retry"), hand!.retry);
  assert.equal(count(after, "failed") - count(before, "failed"), hand!.failed);
  assert.equal(count(before, "running") - count(after, "running"), hand!.retry + hand!.failed);
  const rest = await getLeases(t.db, { now, limit: 7 });
  assert.deepEqual(rest.requeue_stale, { retry: 0, failed: 0 });
  assert.equal(rest.total, 5, "only the stale heartbeats under a running lease remain");
});

Deno.test("getLeases() on a table without lease columns judges running tasks by their claim time", async () => {
  await using t = await testSchema();
  const sql = t.sql;
  const tbl = sql(t.table);
  await sql`alter table ${tbl} drop column owner_id, drop column lease_expires_at,
    drop column last_heartbeat`;
  const now = new Date();
  const add = (n: number, lockedBy: string, minutes: number) =>
    sql`insert into ${tbl} (type, status, locked_by, locked_at, attempts)
      select 'job', 'running', ${lockedBy}, ${new Date(now.getTime() - minutes * MIN)}, i
      from generate_series(1, ${n}) i`;
  await add(3, "seed-1", 30);
  await add(1, "seed-1", 5);
  await add(2, "seed-2", 40);
  const report = await getLeases(t.db, { now, limit: 2 });
  assert.equal(report.has_lease, false);
  assert.equal(report.total, 5);
  assert.deepEqual(report.requeue_stale, { retry: 4, failed: 1 });
  assert.deepEqual(
    report.tasks.map((x) => [x.owner, x.state, x.attempts, x.requeue]).sort(),
    [["seed-2", "no_lease", 1, "retry"], ["seed-2", "no_lease", 2, "retry"]],
  );
  assert.deepEqual(
    report.owners.map((o) => [o.owner, o.stuck, o.expired, o.running, o.registered]),
    [["seed-2", 2, 0, 2, false], ["seed-1", 3, 0, 4, false]],
  );
  assert.equal(Math.round(report.owners[1]!.last_heard_seconds!), 5 * 60);
  const done = await requeueStale(t.db, { now });
  assert.deepEqual(
    [
      done.filter((d) => d.outcome === "retry").length,
      done.filter((d) => d.outcome === "failed").length,
    ],
    [4, 1],
  );
});

Deno.test("doctor reports running tasks whose lease expired (three orphans are a problem)", async () => {
  await using t = await testSchema();
  await t.sql`
    insert into ${t.sql(t.table)} (type, status, locked_by, owner_id, locked_at, lease_expires_at,
      attempts)
    select 'job', 'running', 'gone-1', 'gone-1', now() - interval '10 minutes',
      now() - interval '5 minutes', 1
    from generate_series(1, 3)`;
  const r = await runMain([...t.args, "doctor"]);
  assert.equal(r.code, 1, r.stdout);
  assert.match(r.stdout, /^FAIL 3 running tasks whose lease expired \(.*seedtask leases/m);
  assert.doesNotMatch(r.stdout, /No problems found/);
});

Deno.test("listWorkers() lists owners that never registered from the tasks they hold", async () => {
  await using t = await testSchema();
  await insertFixture(t);
  const list = await listWorkers(t.db);
  assert.equal(list.registry, true);
  assert.deepEqual(
    list.workers.map((w) => [w.name, w.registered, w.silent, w.running, w.expired_leases]),
    [["disp-a", false, false, 2, 0], ["disp-dead", false, true, 1, 1]],
  );
  // A table that never ran this version's migrate has no registry: still an answer.
  await t.sql`drop table ${t.sql(`${t.schema}.seedtask_workers`)}`;
  const bare = await listWorkers(t.db);
  assert.equal(bare.registry, false);
  assert.equal(bare.workers.length, 2);
  const cli = await runMain([...t.args, "workers"]);
  assert.equal(cli.code, 0, cli.stderr);
  assert.match(cli.stdout, /^disp-dead +SILENT +1 \(1 expired\)/m);
  assert.match(cli.stdout, /run `seedtask migrate` so dispatchers register/);
});

async function enqueue(t: TestSchema, n: number): Promise<void> {
  await t.sql`insert into ${t.sql(t.table)} (type, status)
    select 'job', 'queued' from generate_series(1, ${n})`;
}

serverTest(
  "a dispatcher killed with SIGKILL stays registered and goes silent past its lease; its leases show as stuck",
  "needs several real connections",
  async () => {
    await using t = await testSchema();
    await enqueue(t, 2);
    const victim = spawnCli([
      ...t.args,
      "dispatch",
      "--name",
      "victim",
      "--lease",
      "30s",
      "--concurrency",
      "4",
      "--exec",
      "cat >/dev/null; sleep 15; echo '{}'",
    ]);
    try {
      await eventually(
        async () => {
          const w = (await listWorkers(t.db)).workers.find((x) => x.name === "victim");
          return w?.registered === true && w.running === 2;
        },
        30_000,
        "victim registered with its two tasks",
      );
      const live = (await listWorkers(t.db)).workers.find((x) => x.name === "victim")!;
      assert.equal(live.silent, false);
      assert.equal(live.pid, victim.child.pid);
      assert.equal(live.concurrency, 4);
      assert.equal(live.lease_ms, 30_000);
    } finally {
      victim.child.kill("SIGKILL");
    }
    await victim.exit();

    // Nothing deleted its row; a minute later it is past its 30s lease.
    const later = new Date(Date.now() + 2 * MIN);
    const list = await listWorkers(t.db, { now: later });
    const dead = list.workers.find((x) => x.name === "victim")!;
    assert.equal(dead.registered, true);
    assert.equal(dead.silent, true);
    assert.equal(dead.running, 2);
    assert.equal(dead.expired_leases, 2);
    const leases = await getLeases(t.db, { now: later });
    assert.deepEqual(leases.owners.map((o) => [o.owner, o.stuck, o.expired, o.registered]), [
      ["victim", 2, 2, true],
    ]);
    assert.deepEqual(leases.requeue_stale, { retry: 2, failed: 0 });

    const app = createApp({ db: t.db });
    const body = await (await app.request("/workers")).json();
    assert.equal(body.workers[0].name, "victim");
    const leaseBody = await (await app.request("/leases")).json();
    assert.equal(leaseBody.thresholds.stale_after_seconds, 120);
  },
);

serverTest(
  "a dispatcher stopped cleanly leaves the registry; its counters were kept current until then",
  "needs several real connections",
  async () => {
    await using t = await testSchema();
    await enqueue(t, 3);
    // A worker that died a week ago: the next dispatcher to start prunes its row.
    await t.sql`insert into ${
      t.sql(`${t.schema}.seedtask_workers`)
    } (table_name, name, last_seen_at)
      values ('tasks', 'long-dead', now() - interval '8 days'),
             ('tasks', 'died-yesterday', now() - interval '1 day 1 hour')`;
    const p = spawnCli([
      ...t.args,
      "dispatch",
      "--name",
      "polite",
      "--lease",
      "3s",
      "--poll",
      "200ms",
      "--exec",
      "cat >/dev/null; echo '{\"ok\": true}'",
    ]);
    try {
      // Refreshed with the heartbeat (every second here): the three completions show up.
      await eventually(
        async () => {
          const w = (await listWorkers(t.db)).workers.find((x) => x.name === "polite");
          return w?.counts?.completed === 3;
        },
        30_000,
        "three completions in the registry",
      );
      const cli = await runMain([...t.args, "workers"]);
      assert.match(cli.stdout, /^polite +live +0 /m);
    } finally {
      p.child.kill("SIGTERM");
    }
    assert.equal(await p.exit(), 0);
    const after = await listWorkers(t.db, { all: true });
    assert.deepEqual(
      after.workers.map((w) => [w.name, w.silent]),
      [["died-yesterday", true]],
      "a clean stop removes its row; a week-old row was pruned at start, a day-old one kept",
    );
    assert.equal((await listWorkers(t.db)).hidden, 1, "silent for more than a day: hidden");
    // Nothing is left running, so nothing is stuck, even long after.
    const later = await getLeases(t.db, { now: new Date(Date.now() + 60 * MIN) });
    assert.deepEqual([later.total, later.owners], [0, []]);
    const rows = await t.sql`select name from ${t.sql(`${t.schema}.seedtask_workers`)}`;
    assert.deepEqual(rows.map((r) => r.name), ["died-yesterday"]);
  },
);
