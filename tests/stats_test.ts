import assert from "node:assert/strict";
import { VERSION } from "../lib/version.ts";
import {
  exactDistributions,
  fitsOnePass,
  getTaskStatistics,
  statsQueries,
} from "../lib/queries/task_stats.ts";
import { getIndexSupport } from "../lib/table/catalog.ts";
import { FIXTURE, fixtureCounts, IDS, insertFixture, testSchema } from "./helpers.ts";
import { runMain } from "./run_main.ts";

const NOW = new Date("2026-03-10T12:00:00Z");

Deno.test("getTaskStatistics() reports exact counts and health of the mixed fixture", async () => {
  await using t = await testSchema();
  await insertFixture(t, NOW);
  const s = await getTaskStatistics(t.db, { now: NOW });

  assert.deepEqual(s.status_counts, {
    created: 2,
    queued: 3,
    running: 3,
    completed: 4,
    failed: 3,
    cancelled: 2,
    retry: 2,
  });
  assert.deepEqual(s.status_counts, fixtureCounts());
  assert.equal(s.total, 19);
  assert.equal(s.status_percentages.completed, 21.1);
  assert.deepEqual(s.type_counts, { graph_embed: 9, fact_search: 5, graph_rag_query: 5 });
  assert.deepEqual(s.domain_counts, { user_1: 7, user_2: 5, user_3: 4 });
  assert.deepEqual(s.recent_activity, [
    { date: "2026-03-10", created_count: 17, completed_count: 3, failed_count: 2 },
    { date: "2026-03-09", created_count: 0, completed_count: 0, failed_count: 0 },
    { date: "2026-03-08", created_count: 1, completed_count: 0, failed_count: 1 },
    { date: "2026-03-07", created_count: 1, completed_count: 1, failed_count: 0 },
    { date: "2026-03-06", created_count: 0, completed_count: 0, failed_count: 0 },
    { date: "2026-03-05", created_count: 0, completed_count: 0, failed_count: 0 },
    { date: "2026-03-04", created_count: 0, completed_count: 0, failed_count: 0 },
  ]);
  assert.deepEqual(s.long_running.map((x) => [x.id, x.locked_by, x.running_seconds]), [
    [IDS.runningLong, "disp-a", 1800],
  ]);
  assert.deepEqual(s.high_attempts.map((x) => [x.id, x.attempts, x.status]), [
    [IDS.failed2d, 5, "failed"],
    [IDS.failedRecent, 3, "failed"],
    [IDS.completedRecent2, 3, "completed"],
  ]);
  assert.deepEqual(s.queue, {
    ready: 3,
    lag_seconds: 7200,
    oldest_ready_at: new Date(NOW.getTime() - 7_200_000),
    overdue: 1,
  });
  assert.equal(s.stuck_running, 1);
  assert.deepEqual(s.throughput, {
    completed_last_hour: 2,
    failed_last_hour: 1,
    completed_last_day: 3,
    failed_last_day: 2,
  });
  assert.deepEqual(s.failure_rate, { last_hour: 1 / 3, last_day: 0.4 });
  assert.deepEqual(s.run_duration_seconds, { p50: 30, p95: 57, sample: 3 });
  assert.deepEqual(s.attempts_distribution, { "0": 6, "1": 8, "2": 2, "3": 2, "5": 1 });
  assert.equal(s.drift_score.max, 1.5);
  assert.ok(Math.abs(s.drift_score.avg! - 5.2 / 19) < 1e-9);
  assert.deepEqual(s.options, { top: 10, days: 7, long_running_seconds: 600, high_attempts: 3 });
});

Deno.test("getTaskStatistics() honours top, days, long-running and high-attempts", async () => {
  await using t = await testSchema();
  await insertFixture(t, NOW);
  const s = await getTaskStatistics(t.db, {
    now: NOW,
    top: 1,
    days: 2,
    longRunningMs: 60_000,
    highAttempts: 5,
  });
  assert.deepEqual(s.type_counts, { graph_embed: 9 });
  assert.deepEqual(s.domain_counts, { user_1: 7 });
  assert.deepEqual(s.recent_activity.map((d) => d.date), ["2026-03-10", "2026-03-09"]);
  // with a 1-minute threshold the stuck (5m) task is the oldest lock beyond the 30m one
  assert.deepEqual(s.long_running.map((x) => x.id), [IDS.runningLong]);
  assert.deepEqual(s.high_attempts.map((x) => x.id), [IDS.failed2d]);
});

Deno.test("exact distributions: the one grouped pass and the per-index passes agree", async () => {
  await using t = await testSchema();
  await insertFixture(t, NOW);
  // a second domain-less type and ties in every ranking, so order and nulls are exercised
  await t.sql.unsafe(`insert into ${t.table} (type, status, attempts, drift_score)
    values ('zeta', 'queued', 7, 0), ('alpha', 'queued', 7, 2.5)`);
  const indexes = await getIndexSupport(t.db);
  const opts = { top: 3, days: 7, longRunningMs: 600_000, highAttempts: 3, now: NOW };
  // a fresh set of statements for each way: a pending query runs once
  assert.equal(await fitsOnePass(t.db), true);
  assert.equal(await fitsOnePass(t.db, 0), false);
  const onePass = await exactDistributions(statsQueries(t.db, opts, indexes), true);
  const perIndex = await exactDistributions(statsQueries(t.db, opts, indexes), false);
  assert.deepEqual(onePass, perIndex);
  assert.deepEqual(onePass.typeCounts, { graph_embed: 9, fact_search: 5, graph_rag_query: 5 });
  assert.deepEqual(onePass.domainCounts, { user_1: 7, user_2: 5, user_3: 4 });
  assert.equal(onePass.statusCounts.queued, 5);
  assert.equal(onePass.attempts["7"], 2);
  assert.equal(onePass.drift.max, 2.5);
});

Deno.test("getTaskStatistics() on an empty table lists all seven statuses as zero", async () => {
  await using t = await testSchema();
  const s = await getTaskStatistics(t.db);
  assert.deepEqual(Object.values(s.status_counts), [0, 0, 0, 0, 0, 0, 0]);
  assert.equal(s.total, 0);
  assert.equal(s.queue.lag_seconds, null);
  assert.deepEqual(s.failure_rate, { last_hour: null, last_day: null });
  assert.deepEqual(s.drift_score, { avg: null, max: null });
  assert.equal(s.recent_activity.length, 7);
});

Deno.test("seedtask stats --json keeps the seed's keys and matches the library", async () => {
  await using t = await testSchema();
  await insertFixture(t);
  const r = await runMain([...t.args, "stats", "--json"]);
  assert.equal(r.code, 0, r.stderr);
  const doc = JSON.parse(r.stdout);
  for (
    const key of [
      "status_counts",
      "type_counts",
      "domain_counts",
      "recent_activity",
      "long_running",
      "high_attempts",
      "total",
      "queue",
      "stuck_running",
      "failure_rate",
      "run_duration_seconds",
      "attempts_distribution",
      "drift_score",
      "version",
      "generated_at",
    ]
  ) assert.ok(key in doc, `missing ${key}`);
  assert.deepEqual(doc.status_counts, fixtureCounts());
  assert.deepEqual(Object.keys(doc.recent_activity[0]), [
    "date",
    "created_count",
    "completed_count",
    "failed_count",
  ]);
  assert.equal(doc.version, VERSION);
  const lib = JSON.parse(JSON.stringify(await getTaskStatistics(t.db)));
  for (
    const key of ["status_counts", "type_counts", "domain_counts", "high_attempts", "throughput"]
  ) {
    assert.deepEqual(doc[key], lib[key], key);
  }
  assert.equal(doc.queue.ready, 3);
  assert.equal(doc.stuck_running, 1);
});

Deno.test("seedtask stats prints an aligned report with every section", async () => {
  await using t = await testSchema();
  await insertFixture(t);
  const r = await runMain([...t.args, "stats", "--top", "2"]);
  assert.equal(r.code, 0, r.stderr);
  for (
    const section of [
      "STATUS",
      "HEALTH",
      "ATTEMPTS",
      "TOP TYPES",
      "TOP DOMAINS",
      "RECENT ACTIVITY (7 days, UTC)",
      "LONG RUNNING (> 10m 0s)",
      // --top 2 shows two of them, and says how many there are.
      `HIGH ATTEMPTS (>= 3): 2 of ${FIXTURE.filter((x) => x.attempts >= 3).length}`,
    ]
  ) assert.match(r.stdout, new RegExp(`^${section.replace(/[()>]/g, "\\$&")}$`, "m"));
  assert.match(r.stdout, /^ {3}completed {3}4 {2}\( 21\.1%\)$/m);
  assert.match(r.stdout, /^ {3}total\s+19$/m);
  assert.match(r.stdout, /^ {3}queue lag\s+2h 0m$/m);
  assert.match(r.stdout, /^ {3}stuck running\s+1$/m);
  assert.match(r.stdout, /^ {3}graph_embed {2}9$/m);
  assert.match(
    r.stdout,
    /^ {3}cccc2000 {2}graph_rag_query {2}running 30m \d+s {2}locked by disp-a/m,
  );
  assert.match(r.stdout, /^ {6}error: timeout talking to LLM$/m);
});

Deno.test("seedtask stats rejects bad options with exit 2", async () => {
  await using t = await testSchema();
  for (
    const [args, message] of [
      [["--top", "0"], /invalid --top "0": expected a whole number from 1 to 1000/],
      [["--days", "x"], /invalid --days "x"/],
      [["--long-running", "10"], /invalid --long-running "10": expected a number with a unit/],
      [["--long-running", "ten minutes"], /invalid --long-running/],
    ] as const
  ) {
    const r = await runMain([...t.args, "stats", "--json", ...args]);
    assert.equal(r.code, 2, r.stderr);
    assert.equal(r.stdout, "");
    assert.match(r.stderr, message);
  }
});
