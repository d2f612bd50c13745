/**
 * Issue 12 item 4: queue controls. `seedtask pause|resume|paused` and `POST /pause`,
 * `POST /resume`, `GET /paused` over one table that `migrate` creates; the claim query skips
 * paused types (and still walks the claim index); a running dispatcher leaves a paused type
 * untouched while others drain and picks its work up within one poll interval of a resume;
 * stats, check and /stats show what is paused and keep its waiting work out of the lag.
 */
import assert from "node:assert/strict";
import { claimTasks, claimTasksQuery } from "../lib/dispatch/claim_tasks.ts";
import { createDispatcher } from "../lib/dispatch/dispatcher.ts";
import { enqueueTasks } from "../lib/ops/enqueue_tasks.ts";
import { listPauses, pauseQueue, pausesTable, resumeQueue } from "../lib/ops/queue_pauses.ts";
import { invalidateCatalog } from "../lib/table/catalog.ts";
import { runDoctor } from "../lib/table/doctor.ts";
import { createApp } from "../server/app.ts";
import { eventually, serverTest, type TestSchema, testSchema } from "./helpers.ts";
import { runMain } from "./run_main.ts";

async function enqueue(t: TestSchema, type: string, n: number, extra: object = {}) {
  await enqueueTasks(
    t.db,
    Array.from({ length: n }, (_, i) => ({ at: `[${i}]`, task: { type, ...extra } })),
  );
}

async function counts(t: TestSchema): Promise<Record<string, number>> {
  const rows = await t.sql<{ k: string; n: number }[]>`
    select type || ':' || status as k, count(*)::int as n from ${t.sql(t.table)} group by 1`;
  return Object.fromEntries(rows.map((r) => [r.k, r.n]));
}

Deno.test("pause, paused and resume from the CLI: who, when, why and what waits", async () => {
  await using t = await testSchema();
  await enqueue(t, "embed", 3);
  const env = { USER: "alice" };
  const paused = await runMain(
    [...t.args, "pause", "--type", "embed", "--reason", "API down"],
    { env },
  );
  assert.equal(paused.code, 0, paused.stderr);
  assert.match(
    paused.stdout,
    /^Paused embed: dispatchers claim none of its tasks until seedtask resume --type embed\n$/,
  );

  const list = await runMain([...t.args, "paused"]);
  assert.match(list.stdout, /^TYPE +DOMAIN +WAITING +PAUSED BY +SINCE +REASON\n/);
  assert.match(list.stdout, /\nembed +\(all\) +3 +alice@\S+ +(just now|\d+s ago) +API down\n$/);
  const json = JSON.parse((await runMain([...t.args, "paused", "--json"])).stdout);
  assert.equal(json.paused.length, 1);
  assert.deepEqual(
    [json.paused[0].type, json.paused[0].domain, json.paused[0].reason, json.paused[0].waiting],
    ["embed", null, "API down", 3],
  );
  assert.match(json.paused[0].paused_by, /^alice@/);

  const again = await runMain([...t.args, "pause", "--type", "embed", "--by", "bob"], { env });
  assert.match(again.stdout, /^embed was already paused .*; reason and who updated\n$/);
  const [p] = await listPauses(t.db);
  assert.deepEqual([p!.paused_by, p!.reason], ["bob", "API down"], "the reason is kept");

  await runMain([...t.args, "pause", "--type", "embed", "--domain", "user_1"], { env });
  const domainOnly = await runMain([...t.args, "resume", "--type", "other", "--domain", "x"]);
  assert.equal(
    domainOnly.stdout,
    'Nothing to resume: type "other" in domain "x" is not paused\n',
  );
  const resumed = await runMain([...t.args, "resume", "--type", "embed"]);
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.match(
    resumed.stdout,
    /^Resumed embed \(paused by bob .*\)\nResumed embed \(domain user_1\)/,
  );
  assert.deepEqual(await listPauses(t.db), []);
  assert.equal((await runMain([...t.args, "paused"])).stdout, "No paused types.\n");

  await pauseQueue(t.db, { type: "embed", by: "x" });
  const notWhole = await runMain([...t.args, "resume", "--type", "embed", "--domain", "user_1"]);
  assert.match(notWhole.stdout, /embed is paused in every domain; resume it with/);

  const bad = await runMain([...t.args, "pause", "--type", " "]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /invalid --type " ": a task needs a type/);
});

Deno.test("claimTasks() skips a paused type, and a paused domain of a type", async () => {
  await using t = await testSchema();
  await enqueue(t, "a", 2);
  await enqueue(t, "b", 2, { domain: "d1" });
  await enqueue(t, "b", 2, { domain: "d2" });
  await pauseQueue(t.db, { type: "a", by: "test" });
  await pauseQueue(t.db, { type: "b", domain: "d1", by: "test" });
  const claimed = await claimTasks(t.db, { owner: "w", limit: 10, leaseMs: 60_000 });
  assert.deepEqual(claimed.map((c) => `${c.type}/${c.domain}`), ["b/d2", "b/d2"]);
  await resumeQueue(t.db, { type: "b", domain: "d1" });
  const more = await claimTasks(t.db, { owner: "w", limit: 10, leaseMs: 60_000 });
  assert.deepEqual(more.map((c) => `${c.type}/${c.domain}`), ["b/d1", "b/d1"]);
  await resumeQueue(t.db, { type: "a" });
  assert.equal((await claimTasks(t.db, { owner: "w", limit: 10, leaseMs: 60_000 })).length, 2);
});

Deno.test("the claim with pauses still walks the claim index in ready order", async () => {
  await using t = await testSchema();
  await t.sql`insert into ${t.sql(t.table)} (type, domain, status, created_at)
    select 't' || (i % 20), 'd' || (i % 7), 'queued', now() - i * interval '1 second'
    from generate_series(1, 20000) i`;
  await pauseQueue(t.db, { type: "t3", by: "test" });
  await pauseQueue(t.db, { type: "t4", domain: "d1", by: "test" });
  await t.sql`analyze ${t.sql(t.table)}`;
  const query = claimTasksQuery(
    t.db,
    { owner: "w", limit: 8, leaseMs: 60_000 },
    await pausesTable(t.db),
  );
  const [row] = await t.sql`explain (format json) ${query}`;
  const plan = JSON.stringify(row!["QUERY PLAN"]);
  assert.match(plan, /"Index Name":"tasks_claim_idx"/, plan);
  assert.match(plan, /seedtask_pauses/, "the pauses are consulted");
  assert.doesNotMatch(plan, /"Node Type":"Sort"/, "no sort: the index gives the order");
});

Deno.test("migrate creates the pause table; without it claims work and pause says to migrate", async () => {
  await using t = await testSchema();
  assert.ok(await pausesTable(t.db));
  const doctor = await runDoctor(t.db);
  assert.deepEqual(
    doctor.checks.find((c) => c.name === "pauses"),
    { name: "pauses", ok: true, message: "seedtask_pauses exists; nothing is paused" },
  );
  await t.sql`drop table ${t.sql(t.schema)}.seedtask_pauses`;
  invalidateCatalog(t.db);
  await enqueue(t, "a", 1);
  assert.equal((await claimTasks(t.db, { owner: "w", limit: 5, leaseMs: 60_000 })).length, 1);
  assert.deepEqual(await listPauses(t.db), []);
  const r = await runMain([...t.args, "pause", "--type", "a"]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /seedtask_pauses does not exist .* run `seedtask migrate` to create it/);
  const sick = await runDoctor(t.db);
  assert.equal(sick.checks.find((c) => c.name === "pauses")!.ok, false);
  const migrated = await runMain([...t.args, "migrate"]);
  assert.equal(migrated.code, 0, migrated.stderr);
  invalidateCatalog(t.db);
  assert.equal((await runMain([...t.args, "pause", "--type", "a"])).code, 0);
});

serverTest(
  "a running dispatcher leaves a paused type untouched while another drains, and takes it up within one poll interval of a resume",
  "needs several real connections",
  async () => {
    await using t = await testSchema();
    await enqueue(t, "held", 20);
    await enqueue(t, "free", 30);
    await pauseQueue(t.db, { type: "held", by: "test" });
    const pollMs = 500;
    const started: string[] = [];
    const dispatcher = createDispatcher({
      db: t.db,
      name: "pause-test",
      pollMs,
      concurrency: 4,
      batch: 2,
      handlers: {
        held: (task) => void started.push(task.type),
        free: (task) => void started.push(task.type),
      },
    });
    const run = dispatcher.run();
    try {
      await eventually(async () => (await counts(t))["free:completed"] === 30, 60_000, "drain");
      // The dispatcher keeps claiming while the held type waits: work enqueued now runs.
      await enqueue(t, "free", 1);
      await eventually(async () => (await counts(t))["free:completed"] === 31, 20_000, "more");
      const idle = await counts(t);
      assert.equal(idle["held:queued"], 20, "the paused type is untouched");
      assert.ok(!started.includes("held"));
      const [{ attempts }] = await t.sql`select sum(attempts)::int as attempts from ${
        t.sql(t.table)
      } where type = 'held'` as unknown as [{ attempts: number }];
      assert.equal(attempts, 0);

      // Resumed without a NOTIFY reaching it (the dispatcher does not listen): its next poll,
      // at most pollMs away, claims the work. The bound leaves room for a loaded machine but
      // not for a cached pause (the catalog's cache lives 60 s).
      const resumedAt = performance.now();
      await resumeQueue(t.db, { type: "held" });
      await eventually(() => Promise.resolve(started.includes("held")), 20_000, "held work");
      const waited = performance.now() - resumedAt;
      assert.ok(waited < pollMs + 10_000, `picked up ${Math.round(waited)} ms after the resume`);
      await eventually(async () => (await counts(t))["held:completed"] === 20, 60_000);
    } finally {
      dispatcher.stop();
      await run;
    }
  },
);

serverTest(
  "a pause while a dispatcher is claiming: no claim of the type starts after the pause is in",
  "needs several real connections",
  async () => {
    await using t = await testSchema();
    await enqueue(t, "busy", 400);
    let release!: () => void;
    const gate = new Promise<void>((r) => release = r);
    let claimedAfterPause = 0;
    let paused = false;
    const dispatcher = createDispatcher({
      db: t.db,
      name: "pause-race",
      pollMs: 50,
      concurrency: 8,
      batch: 4,
      handlers: {
        busy: async () => {
          if (paused) claimedAfterPause++;
          await new Promise((r) => setTimeout(r, 5));
        },
        marker: async () => await gate,
      },
    });
    const run = dispatcher.run();
    try {
      await eventually(async () => ((await counts(t))["busy:completed"] ?? 0) >= 20);
      await pauseQueue(t.db, { type: "busy", by: "test" });
      // Claims already running when the pause committed may still hand out tasks; what
      // started before now is the dispatcher's in-flight work.
      const [{ n: startedBefore }] = await t.sql`select count(*)::int as n from ${
        t.sql(t.table)
      } where type = 'busy' and attempts > 0` as unknown as [{ n: number }];
      paused = true;
      // A task enqueued after the pause is claimed: the dispatcher kept polling.
      await enqueue(t, "marker", 1);
      await eventually(async () => (await counts(t))["marker:running"] === 1, 20_000, "marker");
      release();
      await eventually(async () => (await counts(t))["marker:completed"] === 1);
      const [{ n: startedAfter }] = await t.sql`select count(*)::int as n from ${
        t.sql(t.table)
      } where type = 'busy' and attempts > 0` as unknown as [{ n: number }];
      // At most the claims in flight at the pause (lanes x batch) got through.
      assert.ok(startedAfter - startedBefore <= 4 * 4, `${startedAfter - startedBefore} more`);
      assert.ok(claimedAfterPause <= 4 * 4 + 8);
      assert.ok(((await counts(t))["busy:queued"] ?? 0) > 0, "work is left, paused");
    } finally {
      release();
      dispatcher.stop();
      await run;
    }
  },
);

Deno.test("stats, check and /stats show paused types and keep their waiting work out of the lag", async () => {
  await using t = await testSchema();
  // Old queued work of a type about to be paused: two hours of lag.
  await t.sql`insert into ${t.sql(t.table)} (type, status, created_at)
    select 'held', 'queued', now() - interval '2 hours' from generate_series(1, 5)`;
  await enqueue(t, "fresh", 2);
  // Paused in one domain only: its tasks without a domain, or in another, are still ready.
  await enqueue(t, "split", 1);
  await enqueue(t, "split", 1, { domain: "d2" });
  await enqueue(t, "split", 1, { domain: "d1" });
  await pauseQueue(t.db, { type: "split", domain: "d1", by: "ops" });
  const before = await runMain([...t.args, "check", "--max-lag", "10m:1h"]);
  assert.equal(before.code, 2, before.stdout);
  await runMain([...t.args, "pause", "--type", "held", "--by", "ops"]);

  const check = await runMain([...t.args, "check", "--max-lag", "10m:1h"]);
  assert.equal(check.code, 0, check.stdout);
  assert.match(
    check.stdout,
    /^SEEDTASK OK - .*; paused: split \(domain d1\) \(1 waiting, by ops .*\); held \(5 waiting, by ops (just now|\d+s ago)\) \|/,
  );
  const checkJson = JSON.parse((await runMain([...t.args, "check", "--json"])).stdout);
  assert.equal(checkJson.health.ready, 4, "paused work is not ready: fresh x2, split x2");
  assert.equal(checkJson.health.queued, 4);
  assert.deepEqual(checkJson.health.paused.map((p: { type: string }) => p.type), [
    "split",
    "held",
  ]);

  const stats = await runMain([...t.args, "stats"]);
  assert.match(
    stats.stdout,
    /PAUSED \(not claimed; not counted in ready, lag or overdue\)\n +TYPE/,
  );
  assert.match(stats.stdout, /\n +held +\(all\) +5 +ops /);
  const statsJson = JSON.parse((await runMain([...t.args, "stats", "--json"])).stdout);
  assert.equal(statsJson.queue.ready, 4);
  assert.equal(statsJson.paused[1].waiting, 5);

  const app = createApp({ db: t.db });
  const http = await (await app.request("/stats")).json();
  assert.equal(http.paused[1].type, "held");
  const paused = await (await app.request("/paused")).json();
  assert.equal(paused.paused[1].paused_by, "ops");
});

Deno.test("POST /pause and /resume need --allow-write and the token; GET /paused lists", async () => {
  await using t = await testSchema();
  const readOnly = createApp({ db: t.db });
  const refused = await readOnly.request("/pause", {
    method: "POST",
    body: JSON.stringify({ type: "a" }),
  });
  assert.equal(refused.status, 403);
  const app = createApp({ db: t.db, allowWrite: true, token: "pause-token" });
  const post = (path: string, body: unknown, token = "pause-token") =>
    app.request(path, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify(body),
    });
  assert.equal((await post("/pause", { type: "a" }, "wrong")).status, 401);
  const ok = await post("/pause", { type: "a", domain: "d", reason: "why", by: "console" });
  assert.equal(ok.status, 200);
  const body = await ok.json();
  assert.deepEqual(
    [body.created, body.pause.type, body.pause.domain, body.pause.paused_by],
    [true, "a", "d", "console"],
  );
  const byDefault = await (await post("/pause", { type: "b" })).json();
  assert.equal(byDefault.pause.paused_by, "http");
  assert.equal((await post("/pause", { type: "" })).status, 400);
  assert.equal((await post("/pause", { domain: "d" })).status, 400);
  const listed = await (await app.request("/paused")).json();
  assert.deepEqual(listed.paused.map((p: { type: string }) => p.type), ["a", "b"]);
  const resumed = await (await post("/resume", { type: "a" })).json();
  assert.equal(resumed.resumed.length, 1);
  assert.deepEqual((await (await post("/resume", { type: "a" })).json()).resumed, []);
});
