import assert from "node:assert/strict";
import { resolveConfig } from "../lib/config.ts";
import { connect } from "../lib/db.ts";
import { getLatency } from "../lib/queries/latency.ts";
import { getThroughput, SETTLE_MS, ThroughputCache } from "../lib/queries/throughput.ts";
import { EMBEDDED, TEST_DSN, type TestSchema, testSchema } from "./helpers.ts";

/** 12:34:20 UTC: mid-minute, mid-hour, so every kind of bucket is exercised. */
const NOW = new Date("2026-03-10T12:34:20Z");
const TYPES = ["graph_embed", "fact_search", "graph_rag_query"];
const STATUSES = ["completed", "failed", "running", "retry", "queued", "cancelled"];

/** A small deterministic generator (no Math.random: a failure must be reproducible). */
function rng(seed: number): () => number {
  let s = seed;
  return () => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return s / 2147483648;
  };
}

/**
 * `n` tasks finished over the last 50 hours (more of them in the last hour), of mixed types and
 * statuses, some in the future of NOW (must not count), some on bucket edges.
 */
async function fill(t: TestSchema, n: number): Promise<void> {
  const r = rng(42);
  const rows = [];
  for (let i = 0; i < n; i++) {
    const recent = r() < 0.5;
    const ago = recent ? r() * 3_700_000 : r() * 50 * 3_600_000;
    const edge = i % 37 === 0 ? NOW.getTime() - (NOW.getTime() % 60_000) - 60_000 * (i % 5) : 0;
    const updated = edge || NOW.getTime() - ago + (i % 53 === 0 ? 120_000 : 0);
    const lockedAt = updated - Math.floor(r() * 90_000);
    const createdAt = lockedAt - Math.floor(r() * 600_000);
    rows.push({
      type: TYPES[Math.floor(r() * TYPES.length)]!,
      status: STATUSES[Math.floor(r() * STATUSES.length)]!,
      created_at: new Date(createdAt),
      locked_at: new Date(lockedAt),
      updated_at: new Date(updated),
    });
  }
  await t.sql`insert into ${t.sql(t.schema)}.tasks ${
    t.sql(rows, "type", "status", "created_at", "locked_at", "updated_at")
  }`;
}

/** Per-bucket counts done by hand: one range count per bucket and status. */
async function byHand(
  t: TestSchema,
  step: "minute" | "hour",
  from: Date,
  count: number,
  type?: string,
  now: Date = NOW,
): Promise<Array<[string, number, number]>> {
  const rows = await t.sql`
    select to_char(b at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI') as start,
      (select count(*)::int from ${t.sql(t.schema)}.tasks
        where status = 'completed' and updated_at >= b and updated_at < b + ${`1 ${step}`}::interval
          and updated_at <= ${now} and (${type ?? null}::text is null or type = ${
    type ?? null
  })) as c,
      (select count(*)::int from ${t.sql(t.schema)}.tasks
        where status = 'failed' and updated_at >= b and updated_at < b + ${`1 ${step}`}::interval
          and updated_at <= ${now} and (${type ?? null}::text is null or type = ${
    type ?? null
  })) as f
    from generate_series(${from}::timestamptz, ${from}::timestamptz + ${`${
    count - 1
  } ${step}`}::interval, ${`1 ${step}`}::interval) b
    order by b`;
  return rows.map((r) => [r.start, r.c, r.f]);
}

const shape = (buckets: { start: Date; completed: number; failed: number }[]) =>
  buckets.map((b): [string, number, number] => [
    b.start.toISOString().slice(0, 16),
    b.completed,
    b.failed,
  ]);

Deno.test("getThroughput() buckets equal range counts done by hand in SQL", async () => {
  await using t = await testSchema();
  await fill(t, 3000);
  const got = await getThroughput(t.db, { now: NOW });
  assert.equal(got.minutes.length, 60);
  assert.equal(got.hours.length, 48);
  assert.equal(got.minutes.at(-1)!.start.toISOString(), "2026-03-10T12:34:00.000Z");
  assert.deepEqual(got.minutes.map((b) => b.open), [...Array(59).fill(false), true]);
  assert.equal(got.hours.at(-1)!.start.toISOString(), "2026-03-10T12:00:00.000Z");
  assert.deepEqual(shape(got.minutes), await byHand(t, "minute", got.minutes[0]!.start, 60));
  assert.deepEqual(shape(got.hours), await byHand(t, "hour", got.hours[0]!.start, 48));
  const total = got.minutes.reduce((n, b) => n + b.completed + b.failed, 0);
  assert.ok(total > 200, `the fixture puts finishes in the last hour (${total})`);

  const typed = await getThroughput(t.db, { now: NOW, type: "fact_search", hours: 3 });
  assert.equal(typed.type, "fact_search");
  assert.deepEqual(
    shape(typed.minutes),
    await byHand(t, "minute", typed.minutes[0]!.start, 60, "fact_search"),
  );
  assert.deepEqual(
    shape(typed.hours),
    await byHand(t, "hour", typed.hours[0]!.start, 3, "fact_search"),
  );
});

Deno.test("getThroughput() with a cache counts closed buckets once: later rows in them are not recounted", async () => {
  await using t = await testSchema();
  await fill(t, 1000);
  const statements: string[] = [];
  await using db = connect(
    resolveConfig({ dsn: TEST_DSN, table: t.table, maxConnections: EMBEDDED ? 1 : 2 }, {}),
    { onQuery: (q) => statements.push(q) },
  );
  const cache = new ThroughputCache();
  const first = await getThroughput(db, { now: NOW }, cache);
  assert.ok(cache.size > 100, `closed buckets kept (${cache.size})`);

  // Completions written into a closed minute (an hour back), into a settled second of the
  // open minute (12:34:10: kept at 12:34:20) and into one not yet settled (12:34:19). Only the
  // last is counted again.
  const closedMinute = first.minutes[10]!;
  await t.sql`insert into ${t.sql(t.schema)}.tasks (type, status, updated_at, locked_at)
    values ('graph_embed', 'completed', ${new Date(closedMinute.start.getTime() + 5000)}, now()),
           ('graph_embed', 'completed', ${new Date(NOW.getTime() - 10_000)}, now()),
           ('graph_embed', 'completed', ${new Date(NOW.getTime() - 1000)}, now())`;
  const later = new Date(NOW.getTime() + 2000);
  statements.length = 0;
  const second = await getThroughput(db, { now: later }, cache);
  const tableStatements = statements.filter((s) => s.includes(t.schema));
  assert.equal(tableStatements.length, 1, "one statement per refresh");
  assert.equal(
    tableStatements[0]!.match(/group by/g)?.length,
    1,
    `only the last seconds are counted:\n${tableStatements[0]}`,
  );
  assert.equal(second.minutes[10]!.completed, closedMinute.completed);
  assert.equal(second.minutes.at(-1)!.completed, first.minutes.at(-1)!.completed + 1);
  assert.equal(second.hours.at(-1)!.completed, first.hours.at(-1)!.completed + 1);
  assert.deepEqual(second.hours.slice(0, -1), first.hours.slice(0, -1));

  // Without a cache the same question counts everything again: the closed minute moves too.
  const fresh = await getThroughput(db, { now: later });
  assert.equal(fresh.minutes[10]!.completed, closedMinute.completed + 1);
  assert.equal(fresh.minutes.at(-1)!.completed, first.minutes.at(-1)!.completed + 2);
});

Deno.test("getThroughput() refreshed every 2 s for 7 minutes with a cache equals counts by hand", async () => {
  await using t = await testSchema();
  await fill(t, 1500);
  // Finishes every 0.7 s through the minutes the refreshes walk, across an hour's end.
  const start = new Date("2026-03-10T12:56:20Z");
  await t.sql`insert into ${t.sql(t.schema)}.tasks (type, status, updated_at)
    select 'graph_embed', case when i % 5 = 0 then 'failed' else 'completed' end::text::${
    t.sql(t.schema)
  }.taskstatus, ${start}::timestamptz + i * interval '700 milliseconds'
    from generate_series(0, 700) i`;
  const cache = new ThroughputCache();
  let now = start;
  let got = await getThroughput(t.db, { now, hours: 3 }, cache);
  for (let i = 0; i < 210; i++) {
    now = new Date(now.getTime() + 2000);
    got = await getThroughput(t.db, { now, hours: 3 }, cache);
  }
  assert.deepEqual(
    shape(got.minutes),
    await byHand(t, "minute", got.minutes[0]!.start, 60, undefined, now),
  );
  assert.equal(got.hours.at(-1)!.start.toISOString(), "2026-03-10T13:00:00.000Z");
  assert.deepEqual(
    shape(got.hours),
    await byHand(t, "hour", got.hours[0]!.start, 3, undefined, now),
  );
});

Deno.test("getThroughput() re-counts a minute until it has settled", async () => {
  await using t = await testSchema();
  const cache = new ThroughputCache();
  const minuteEnd = new Date("2026-03-10T12:35:00Z");
  const justAfter = new Date(minuteEnd.getTime() + SETTLE_MS / 2);
  await getThroughput(t.db, { now: justAfter, hours: 0 }, cache);
  // A completion whose transaction began before 12:35 commits after it.
  await t.sql`insert into ${t.sql(t.schema)}.tasks (type, status, updated_at)
    values ('graph_embed', 'completed', ${new Date(minuteEnd.getTime() - 100)})`;
  const settled = new Date(minuteEnd.getTime() + SETTLE_MS + 1000);
  const got = await getThroughput(t.db, { now: settled, hours: 0 }, cache);
  assert.equal(got.minutes.at(-2)!.start.toISOString(), "2026-03-10T12:34:00.000Z");
  assert.equal(got.minutes.at(-2)!.completed, 1);
});

Deno.test("getLatency() measures wait (ready → claimed) and run (claimed → finished) per type", async () => {
  await using t = await testSchema();
  const s = (sec: number) => new Date(NOW.getTime() - sec * 1000);
  const rows = [
    // type a: waits 10, 20, 30 s; runs 1, 2, 3 s
    { type: "a", status: "completed", created_at: s(100), locked_at: s(90), updated_at: s(89) },
    { type: "a", status: "completed", created_at: s(100), locked_at: s(80), updated_at: s(78) },
    { type: "a", status: "failed", created_at: s(100), locked_at: s(70), updated_at: s(67) },
    // type b: scheduled; the wait counts from run_after, not created_at
    {
      type: "b",
      status: "completed",
      created_at: s(5000),
      run_after: s(60),
      locked_at: s(55),
      updated_at: s(50),
    },
    // outside the window, still running, or never claimed: not measured
    {
      type: "a",
      status: "completed",
      created_at: s(9000),
      locked_at: s(8000),
      updated_at: s(7200),
    },
    { type: "a", status: "running", created_at: s(100), locked_at: s(10), updated_at: s(10) },
    { type: "a", status: "completed", created_at: s(100), updated_at: s(10) },
  ];
  for (const r of rows) {
    await t.sql`insert into ${t.sql(t.schema)}.tasks ${t.sql(r)}`;
  }
  const l = await getLatency(t.db, { now: NOW, windowMs: 3_600_000 });
  assert.equal(l.sampled, false);
  assert.deepEqual(
    [l.all.finished, l.all.completed, l.all.failed, l.all.wait_seconds.max, l.all.run_seconds.max],
    [4, 3, 1, 30, 5],
  );
  const a = l.types.find((x) => x.type === "a")!;
  assert.deepEqual(a.wait_seconds, { p50: 20, p95: 29, p99: 29.8, max: 30 });
  assert.equal(a.run_seconds.p50, 2);
  const b = l.types.find((x) => x.type === "b")!;
  assert.deepEqual([b.wait_seconds.p50, b.run_seconds.p50], [5, 5]);
  assert.deepEqual(l.types.map((x) => x.type), ["a", "b"]);

  const sampled = await getLatency(t.db, { now: NOW, sample: 100, type: "b" });
  assert.deepEqual([sampled.type, sampled.all.finished, sampled.types.length], ["b", 1, 1]);

  await using empty = await testSchema();
  const none = await getLatency(empty.db, { now: NOW });
  assert.deepEqual([none.all.finished, none.all.wait_seconds.p50, none.types], [0, null, []]);
});

Deno.test("GET /throughput and GET /latency answer from the same lib functions; bad values are 400", async () => {
  await using t = await testSchema();
  // Finished half an hour ago: inside the last 60 minutes whatever the clock does meanwhile.
  await t.sql`insert into ${t.sql(t.schema)}.tasks (type, status, created_at, locked_at, updated_at)
    select 'graph_embed', case when i % 4 = 0 then 'failed' else 'completed' end::text::${
    t.sql(t.schema)
  }.taskstatus,
      now() - interval '31 minutes', now() - interval '30 minutes 10 seconds', now() - interval '30 minutes'
    from generate_series(1, 40) i`;
  const { createApp } = await import("../server/app.ts");
  const app = createApp({ db: t.db });
  const res = await app.request("/throughput?minutes=60&hours=2");
  assert.equal(res.status, 200);
  const body = await res.json();
  assert.equal(body.minutes.length, 60);
  assert.equal(body.hours.length, 2);
  const sum = (k: "completed" | "failed") =>
    body.minutes.reduce((n: number, b: Record<string, number>) => n + b[k]!, 0);
  assert.deepEqual([sum("completed"), sum("failed")], [30, 10]);
  const typed = await (await app.request("/throughput?type=nothing_like_it&hours=0")).json();
  assert.deepEqual([
    typed.type,
    typed.hours,
    typed.minutes.every((b: { completed: number }) => b.completed === 0),
  ], [
    "nothing_like_it",
    [],
    true,
  ]);
  const latency = await (await app.request("/latency?window=2h")).json();
  assert.deepEqual([
    latency.all.finished,
    latency.all.wait_seconds.p50,
    latency.all.run_seconds.p50,
  ], [
    40,
    50,
    10,
  ]);
  for (
    const bad of [
      "/throughput?minutes=0",
      "/throughput?hours=500",
      "/latency?window=soon",
      "/latency?top=1",
    ]
  ) {
    const r = await app.request(bad);
    assert.equal(r.status, 400, bad);
    assert.equal((await r.json()).error.code, "invalid_input", bad);
  }
});
