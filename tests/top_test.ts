import assert from "node:assert/strict";
import { resolveConfig } from "../lib/config.ts";
import { connect } from "../lib/db.ts";
import { renderTopFrame, type TopView } from "../lib/format/top_frame.ts";
import {
  getOverview,
  type Overview,
  overviewFromJson,
  planCounts,
  snapshotQuery,
  STUCK_COUNTED,
} from "../lib/queries/overview.ts";
import { createApp } from "../server/app.ts";
import { EMBEDDED, IDS, insertFixture, TEST_DSN, testSchema } from "./helpers.ts";
import { runMain } from "./run_main.ts";
import { databaseSource, PANEL_TURNS } from "../commands/top.ts";

const NOW = new Date("2026-03-10T12:00:30Z");
const ESC = "\x1b";

function view(more: Partial<TopView> = {}): TopView {
  return {
    width: 80,
    height: 24,
    color: false,
    paused: false,
    help: false,
    intervalMs: 2000,
    source: "127.0.0.1:5432/test tasks",
    type: null,
    error: null,
    now: NOW,
    ...more,
  };
}

Deno.test("getOverview() reads counts, the queue per type and stuck tasks of the fixture", async () => {
  await using t = await testSchema();
  await insertFixture(t, NOW);
  const o = await getOverview(t.db, { now: NOW });
  assert.deepEqual(o.status_counts, {
    created: 2,
    queued: 3,
    running: 3,
    completed: 4,
    failed: 3,
    cancelled: 2,
    retry: 2,
  });
  assert.deepEqual(o.estimated, []);
  assert.deepEqual(
    o.queue.map((q) => [q.type, q.ready, q.queued, q.retry, q.running, q.lag_seconds]),
    [
      ["graph_embed", 1, 2, 1, 1, 7200],
      ["graph_rag_query", 2, 1, 1, 1, 600],
      ["fact_search", 0, 0, 0, 1, null],
    ],
  );
  assert.equal(o.stuck, 1);
  assert.deepEqual(o.stuck_tasks.map((s) => [s.id, s.locked_by]), [[
    IDS.runningStuck,
    "disp-dead",
  ]]);
  assert.equal(o.throughput.minutes.length, 60);
  assert.equal(o.throughput.hours.length, 0);
  // completedRecent1 (10 min ago), completedRecent2 (20), failedRecent (15) are in the hour.
  const sum = (k: "completed" | "failed") => o.throughput.minutes.reduce((n, b) => n + b[k], 0);
  assert.deepEqual([sum("completed"), sum("failed")], [2, 1]);

  const typed = await getOverview(t.db, { now: NOW, type: "graph_rag_query" });
  assert.deepEqual([typed.status_counts.queued, typed.status_counts.retry, typed.stuck], [1, 1, 0]);
  assert.deepEqual(typed.queue.map((q) => q.type), ["graph_rag_query"]);
});

Deno.test("an outage's stuck tasks: counted up to a cap, the longest stuck listed first", async () => {
  await using t = await testSchema();
  // 10,001 running tasks whose leases ran out a minute apart, the oldest first by lease, and
  // one whose lease still runs.
  await t.sql`insert into ${t.sql(t.table)}
      (type, status, locked_by, owner_id, locked_at, lease_expires_at, attempts)
    select 'outage', 'running', 'disp-' || (i % 3), 'disp-' || (i % 3),
      ${NOW}::timestamptz - interval '2 days',
      ${NOW}::timestamptz - (i * interval '1 minute'), 1
    from generate_series(1, ${STUCK_COUNTED + 1}) i`;
  await t.sql`insert into ${t.sql(t.table)}
      (type, status, locked_by, owner_id, locked_at, lease_expires_at, attempts)
    values ('outage', 'running', 'disp-live', 'disp-live', ${NOW}, ${NOW}::timestamptz
      + interval '1 minute', 1)`;
  const o = await getOverview(t.db, { now: NOW });
  assert.deepEqual([o.stuck, o.stuck_exact], [STUCK_COUNTED, false]);
  const minutesAgo = (d: Date | null) => (NOW.getTime() - d!.getTime()) / 60_000;
  assert.deepEqual(
    o.stuck_tasks.map((s) => minutesAgo(s.lease_expires_at)),
    Array.from({ length: 10 }, (_, i) => STUCK_COUNTED + 1 - i),
  );
  const frame = renderTopFrame(
    { overview: o, previous: null, panels: [] },
    view({ width: 100, height: 40 }),
  ).join("\n");
  assert.match(frame, /10,000\+ running, lease expired or locked too long/);

  // Below the cap the count is exact.
  await t.sql`delete from ${t.sql(t.table)} where lease_expires_at < ${NOW}::timestamptz
    - interval '100 minutes'`;
  const fewer = await getOverview(t.db, { now: NOW });
  assert.deepEqual([fewer.stuck, fewer.stuck_exact], [100, true]);
});

Deno.test("on a large table top estimates the large statuses and samples a large backlog", async () => {
  const columns = new Map([
    ["status", {
      values: ["completed", "queued", "failed", "running"],
      freqs: [0.7, 0.08, 0.1, 0.02],
    }],
    ["type", { values: ["graph_embed", "rare"], freqs: [0.5, 0.001] }],
  ]);
  const est = { rows: 10_000_000, analyzedAt: null, columns };
  const plan = planCounts(est, undefined);
  assert.deepEqual([...plan.estimated.keys()].sort(), ["completed", "failed", "queued", "running"]);
  assert.equal(plan.estimated.get("queued"), 800_000);
  assert.deepEqual(plan.counted, ["created", "cancelled", "retry"]);
  assert.equal(plan.queueSample, 20_000);
  // For one type the planner's figures are scaled by the type's share.
  const rare = planCounts(est, "rare");
  assert.deepEqual([...rare.estimated.keys()], []);
  assert.equal(rare.queueSample, null);
  assert.deepEqual(planCounts({ ...est, rows: 100_000 }, undefined).estimated.size, 0);
  assert.equal(planCounts(null, undefined).counted.length, 7);

  // The sampled queue reads the oldest claimable tasks by ready time, ready or not: of the
  // fixture's queued and retry tasks the two oldest are queuedOld (ready 2 h ago, graph_embed)
  // and queuedRecent (10 min ago, graph_rag_query).
  await using t = await testSchema();
  await insertFixture(t, NOW);
  const [row] = await snapshotQuery(t.db, true, { now: NOW }, {
    counted: ["queued"],
    estimated: new Map(),
    queueSample: 2,
  });
  assert.deepEqual(row!.counted, { queued: 3 });
  const queue = row!.queue as Array<{ type: string; ready: number; running: number }>;
  assert.deepEqual(
    queue.map((q) => [q.type, q.ready]).sort(),
    [["fact_search", 0], ["graph_embed", 1], ["graph_rag_query", 1]],
  );
  assert.equal(queue.reduce((n, q) => n + q.running, 0), 2, "at most 2 running read");
});

Deno.test("a top frame costs at most 5 statements (the overview 1 once warm, and one panel)", async () => {
  await using t = await testSchema();
  await insertFixture(t, NOW);
  const statements: string[] = [];
  await using db = connect(
    resolveConfig({ dsn: TEST_DSN, table: t.table, maxConnections: EMBEDDED ? 1 : 3 }, {}),
    { onQuery: (q) => statements.push(q) },
  );
  const source = databaseSource(db, {});
  // The driver's own lookup of array types, once per pool, is not the frame's.
  const own = () => statements.filter((q) => !q.includes("pg_catalog.pg_type"));
  for (let frame = 0; frame < 6; frame++) {
    statements.length = 0;
    const kind = PANEL_TURNS[frame % PANEL_TURNS.length]!;
    const [, panel] = await Promise.all([source.overview(null), source.panel(kind, null)]);
    assert.ok(panel, kind);
    assert.ok(
      own().length <= 5,
      `frame ${frame} (${kind}): ${own().length} statements:\n${own().join("\n---\n")}`,
    );
  }
  statements.length = 0;
  await source.overview(null);
  assert.equal(own().length, 1, own().join("\n---\n"));
});

Deno.test("renderTopFrame() fits the terminal, and has no escape codes without colour", async () => {
  await using t = await testSchema();
  await insertFixture(t, NOW);
  const o = await getOverview(t.db, { now: NOW });
  for (const [w, h] of [[80, 24], [160, 45], [40, 10], [200, 8]] as const) {
    const lines = renderTopFrame(
      { overview: o, previous: null, panels: [] },
      view({ width: w, height: h }),
    );
    assert.equal(lines.length, h, `${w}x${h}`);
    for (const l of lines) {
      assert.ok([...l].length <= w, `${w}x${h}: "${l}" is ${[...l].length} wide`);
      assert.ok(!l.includes(ESC));
    }
    assert.match(lines.at(-1)!, /updated 12:00:30 UTC/);
  }
  const frame = renderTopFrame({ overview: o, previous: null, panels: [] }, view()).join("\n");
  assert.match(frame, /queued 3 {2}/);
  assert.match(frame, /graph_embed +1 +2h 0m +2 +1 +1/);
  assert.match(frame, /STUCK {2}1 running/);
  assert.match(frame, new RegExp(IDS.runningStuck.slice(0, 8)));

  // The change of each count since the previous frame; colour only when asked.
  const before: Overview = { ...o, status_counts: { ...o.status_counts, queued: 5, failed: 1 } };
  const next = renderTopFrame({ overview: o, previous: before, panels: [] }, view({ color: true }));
  assert.match(next.join("\n"), /queued .*3.* -2/);
  assert.ok(next.some((l) => l.includes(`${ESC}[31m3`)), "new failures in red");

  // Every panel that gets a title also gets a row, whatever the height.
  const panels = [
    { title: "FAILURE GROUPS", header: ["COUNT"], rows: [], empty: "no failures in 1h" },
    { title: "WORKERS", header: ["NAME"], rows: [["worker-one"], ["worker-two"]], empty: "" },
  ];
  for (let h = 12; h <= 30; h++) {
    const lines = renderTopFrame({ overview: o, previous: null, panels }, view({ height: h }));
    assert.equal(lines.length, h);
    const text = lines.join("\n");
    for (const title of ["QUEUE BY TYPE", "STUCK", "WORKERS"]) {
      if (!text.includes(title)) continue;
      const at = lines.findIndex((l) => l.startsWith(title));
      assert.ok(
        at + 2 < h - 1 && lines[at + 2]!.trim() !== "",
        `${title} has a row at height ${h}`,
      );
    }
  }

  const paused = renderTopFrame(
    { overview: o, previous: null, panels: [] },
    view({ paused: true }),
  );
  assert.match(paused[0]!, /PAUSED/);
  const help = renderTopFrame({ overview: o, previous: null, panels: [] }, view({ help: true }));
  assert.match(help.join("\n"), /q {2}quit/);
  const failed = renderTopFrame(
    { overview: o, previous: null, panels: [] },
    view({ error: "cannot connect to 127.0.0.1:5432/test: connection refused", width: 100 }),
  );
  assert.match(failed.at(-1)!, /^! cannot connect .* \(data from 12:00:30 UTC\)/);
});

Deno.test("top --once prints one plain frame; bad flags are usage errors", async () => {
  await using t = await testSchema();
  await insertFixture(t);
  const r = await runMain([...t.args, "top", "--once"], { env: { COLUMNS: "100" } });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, "");
  assert.ok(!r.stdout.includes(ESC));
  assert.match(r.stdout, /queued 3 {2}/);
  assert.match(r.stdout, /QUEUE BY TYPE/);
  // The fixture's failure of the last hour (failedRecent), and the owners of running tasks.
  assert.match(r.stdout, /FAILURE GROUPS {2}\d+ failed or retrying in 1h/);
  assert.match(
    r.stdout,
    /graph_embed +connection reset by organism +15m/,
  );
  assert.match(r.stdout, /WORKERS {2}\d+ live, \d+ silent/);
  assert.match(r.stdout, /disp-dead .* SILENT/);
  assert.match(r.stdout, /generated \d\d:\d\d:\d\d UTC\n$/);
  for (const l of r.stdout.split("\n")) assert.ok([...l].length <= 100, l);

  // Not a terminal: one frame even without --once.
  const piped = await runMain([...t.args, "top", "--type", "fact_search"]);
  assert.equal(piped.code, 0, piped.stderr);
  assert.match(piped.stdout, /type: fact_search/);
  assert.match(piped.stdout, /running 1 /);

  for (
    const [args, message] of [
      [["--interval", "10ms"], /invalid --interval "10ms"/],
      [["--long-running", "soon"], /--long-running/],
      [["--url", "ftp://x"], /invalid --url/],
      [["--token", "secret-token"], /--token goes with --url/],
    ] as const
  ) {
    const bad = await runMain([...t.args, "top", ...args]);
    assert.equal(bad.code, 2, `${args.join(" ")}: ${bad.stderr}`);
    assert.match(bad.stderr, message);
    assert.equal(bad.stdout, "");
    assert.ok(!bad.stderr.includes("secret-token"));
  }
});

Deno.test("top --url reads GET /overview of a running serve, with its token", async () => {
  await using t = await testSchema();
  await insertFixture(t);
  const token = "top-test-token-5678";
  const app = createApp({ db: t.db, token, requireTokenForReads: true });
  await using server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    app.fetch,
  );
  const url = `http://127.0.0.1:${server.addr.port}`;

  const r = await runMain(["top", "--once", "--url", url, "--token", token]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /queued 3 {2}/);
  assert.match(r.stdout, new RegExp(`top of ${url}`));
  assert.match(r.stdout, new RegExp(IDS.runningStuck.slice(0, 8)));
  assert.match(r.stdout, /FAILURE GROUPS {2}3 failed or retrying/, "GET /failures");
  assert.match(r.stdout, /disp-dead .* SILENT/, "GET /workers");
  assert.ok(!r.stdout.includes(token));

  const fromEnv = await runMain(["top", "--once", "--url", url], {
    env: { SEEDTASK_TOKEN: token },
  });
  assert.equal(fromEnv.code, 0, fromEnv.stderr);

  const denied = await runMain(["top", "--once", "--url", url, "--token", "wrong-token-0000"]);
  assert.equal(denied.code, 1);
  assert.match(denied.stderr, /answered 401: Missing or wrong bearer token/);
  assert.ok(!denied.stderr.includes("wrong-token-0000"));

  const json = await (await app.request("/overview", {
    headers: { authorization: `Bearer ${token}` },
  })).json();
  const revived = overviewFromJson(json);
  assert.ok(revived.generated_at instanceof Date);
  assert.ok(revived.stuck_tasks[0]!.locked_at instanceof Date);

  await server.shutdown();
  const down = await runMain(["top", "--once", "--url", url]);
  assert.equal(down.code, 1);
  assert.match(down.stderr, /Cannot reach http:\/\/127\.0\.0\.1:\d+/i);
});
