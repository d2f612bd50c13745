/**
 * Issue 11 item 1: every route calls the same lib function as the CLI, through the same schema.
 * On one fixture, `seedtask <command> --json` (run in process) and the route's JSON are the same
 * document for list, show, stats and check; only the clock-derived numbers (when it was
 * generated, how long ago something happened) may differ, by no more than the time between the
 * two answers. The divergences the issue names stay fixed.
 */
import assert from "node:assert/strict";
import { InvalidInputError } from "../lib/errors.ts";
import { countTasks, listTasks } from "../lib/queries/list_tasks.ts";
import { createApp } from "../server/app.ts";
import { IDS, insertFixture, type TestSchema, testSchema } from "./helpers.ts";
import { runMain } from "./run_main.ts";

type Json = Record<string, unknown>;

/** Each side's answer, and how many seconds passed from the first request to the last answer. */
async function both(
  t: TestSchema,
  app: ReturnType<typeof createApp>,
  args: string[],
  path: string,
): Promise<{ cli: Json; http: Json; cliCode: number; status: number; seconds: number }> {
  const started = Date.now();
  const cli = await runMain([...t.args, ...args, "--json"]);
  const res = await app.request(path);
  const http = await res.json();
  const seconds = (Date.now() - started) / 1000;
  assert.equal(cli.stderr, "", `${args.join(" ")}: ${cli.stderr}`);
  return { cli: JSON.parse(cli.stdout), http, cliCode: cli.code, status: res.status, seconds };
}

/**
 * Replaces each clock-derived number at `paths` (dotted; `*` for every array item) in both
 * documents by a marker, after checking the two differ by at most `seconds` (+1 for rounding).
 */
function sameClock(a: Json, b: Json, paths: string[], seconds: number): void {
  const walk = (doc: unknown, parts: string[], visit: (holder: Json, key: string) => void) => {
    if (doc === null || typeof doc !== "object") return;
    const [head, ...rest] = parts;
    if (head === "*") {
      for (const item of doc as unknown[]) walk(item, rest, visit);
    } else if (rest.length === 0) visit(doc as Json, head!);
    else walk((doc as Json)[head!], rest, visit);
  };
  for (const path of paths) {
    const values: unknown[] = [];
    walk(a, path.split("."), (h, k) => values.push(h[k]));
    walk(b, path.split("."), (h, k) => values.push(h[k]));
    const half = values.length / 2;
    for (let i = 0; i < half; i++) {
      const [x, y] = [values[i], values[i + half]];
      const [nx, ny] = typeof x === "string"
        ? [Date.parse(x) / 1000, Date.parse(y as string) / 1000]
        : [x as number, y as number];
      assert.ok(
        Math.abs(nx - ny) <= seconds + 1,
        `${path}: ${x} and ${y} are more than ${seconds + 1}s apart`,
      );
    }
    for (const doc of [a, b]) walk(doc, path.split("."), (h, k) => (h[k] = "<clock>"));
  }
}

Deno.test("list --json and GET /tasks give the same page for the same filters", async () => {
  await using t = await testSchema();
  await insertFixture(t);
  const app = createApp({ db: t.db });
  const cases: Array<[string[], string]> = [
    [[], ""],
    [
      ["--status", "failed,completed", "--domain", "user_2"],
      "?status=failed,completed&domain=user_2",
    ],
    [
      ["--status", "queued", "--status", "retry", "--limit", "2"],
      "?status=queued&status=retry&limit=2",
    ],
    [
      ["--type", "graph_embed", "--sort", "created", "--search", "embed"],
      "?type=graph_embed&sort=created&search=embed",
    ],
    [["--type", "fact_search", "--limit", "1"], "?type=fact_search&limit=1"],
  ];
  // total=auto: the total `list --json` always carries (counted here: the fixture is small).
  for (const [args, query] of cases) {
    const r = await both(t, app, ["list", ...args], `/tasks${query}${query ? "&" : "?"}total=auto`);
    assert.equal(r.cliCode, 0);
    assert.equal(r.status, 200);
    assert.deepEqual(r.http, r.cli, query);
  }
  // The next page, from each side's own cursor.
  const first = await both(t, app, ["list", "--limit", "4"], "/tasks?limit=4&total=auto");
  const cursor = first.cli.next_cursor as string;
  const next = await both(
    t,
    app,
    ["list", "--limit", "4", "--after", cursor],
    `/tasks?limit=4&after=${cursor}&total=auto`,
  );
  assert.deepEqual(next.http, next.cli);
  assert.equal((next.cli.items as unknown[]).length, 4);
});

Deno.test("show --json and GET /tasks/{id} give the same task, extra columns included", async () => {
  await using t = await testSchema();
  await insertFixture(t);
  const app = createApp({ db: t.db });
  for (const id of [IDS.runningStuck, IDS.failedRecent.slice(0, 5), IDS.completed3d]) {
    const r = await both(t, app, ["show", id], `/tasks/${id}`);
    assert.equal(r.status, 200);
    assert.deepEqual(r.http, r.cli, id);
    assert.deepEqual(r.http.labels, ["fixture", r.http.status]);
  }
});

Deno.test("stats --json and GET /stats give the same report for the same options", async () => {
  await using t = await testSchema();
  await insertFixture(t);
  const app = createApp({ db: t.db, cacheTtlMs: 0 });
  const cases: Array<[string[], string]> = [
    [[], ""],
    [["--top", "2", "--days", "3"], "?top=2&days=3"],
    [
      ["--long-running", "1m", "--high-attempts", "2", "--exact"],
      "?long_running=1m&high_attempts=2&exact=true",
    ],
  ];
  for (const [args, query] of cases) {
    const r = await both(t, app, ["stats", ...args], `/stats${query}`);
    assert.equal(r.status, 200);
    sameClock(r.cli, r.http, [
      "generated_at",
      "queue.lag_seconds",
      "long_running.*.running_seconds",
    ], r.seconds);
    // The histories are the same lib calls (tests/throughput_test.ts checks their numbers);
    // their buckets follow the clock, which may cross a minute between the two runs.
    for (const key of ["throughput_history", "latency"]) {
      for (const doc of [r.cli, r.http]) {
        assert.equal(typeof (doc as Json)[key], "object", key);
        (doc as Json)[key] = "<history>";
      }
    }
    assert.deepEqual(r.http, r.cli, query);
  }
});

Deno.test("check --json and GET /check grade the same, with the same JSON", async () => {
  await using t = await testSchema();
  await insertFixture(t);
  const app = createApp({ db: t.db, cacheTtlMs: 0 });
  // The fixture's lag is about 2h, 1 task is stuck, the last hour's failure rate 1/3, 3 queued.
  const cases: Array<[string[], string, string, number, number]> = [
    [[], "", "OK", 0, 200],
    [["--max-lag", "3h:4h", "--max-stuck", "1:5"], "?max_lag=3h:4h&max_stuck=1:5", "OK", 0, 200],
    [["--max-lag", "1h:3h"], "?max_lag=1h:3h", "WARNING", 1, 200],
    [
      ["--max-failure-rate", "10%:30%", "--max-queued", "2:10"],
      "?max_failure_rate=10%25:30%25&max_queued=2:10",
      "CRITICAL",
      2,
      503,
    ],
    [
      ["--max-stuck", "0:0", "--long-running", "1m"],
      "?max_stuck=0:0&long_running=1m",
      "CRITICAL",
      2,
      503,
    ],
  ];
  for (const [args, query, state, code, status] of cases) {
    const r = await both(t, app, ["check", ...args], `/check${query}`);
    assert.equal(r.cli.state, state, query);
    assert.equal(r.cliCode, code, query);
    assert.equal(r.status, status, query);
    sameClock(r.cli, r.http, ["health.lag_seconds"], r.seconds);
    const lag = (doc: Json) => (doc.metrics as Json[]).find((m) => m.name === "lag")!;
    sameClock(lag(r.cli), lag(r.http), ["value"], r.seconds);
    assert.deepEqual(r.http, r.cli, query);
  }
});

Deno.test("a threshold or duration is refused the same way by check and GET /check", async () => {
  await using t = await testSchema();
  const app = createApp({ db: t.db });
  for (
    const [flag, param, value] of [
      ["--max-lag", "max_lag", ""],
      ["--max-lag", "max_lag", "soon"],
      ["--max-stuck", "max_stuck", "5:1"],
      ["--max-failure-rate", "max_failure_rate", "150%"],
      ["--long-running", "long_running", "0"],
    ]
  ) {
    const cli = await runMain([...t.args, "check", flag!, value!, "--json"]);
    assert.equal(cli.code, 3, `${flag} ${value}: ${cli.stdout}`);
    const unknown = JSON.parse(cli.stdout);
    const res = await app.request(`/check?${param}=${encodeURIComponent(value!)}`);
    const body = await res.json();
    assert.equal(res.status, 400, `${param}=${value}`);
    // The same message, naming the field as each caller spells it.
    assert.equal(unknown.message.replace(flag!, param!), body.error.message, `${flag} ${value}`);
  }
});

Deno.test("the task type is trimmed the same by enqueue and POST /tasks", async () => {
  await using t = await testSchema();
  const token = "same-answers-token";
  const app = createApp({ db: t.db, allowWrite: true, token });
  const cli = await runMain([...t.args, "enqueue", "--type", "  graph_embed  ", "--json"]);
  assert.equal(cli.code, 0, cli.stderr);
  const res = await app.request("/tasks", {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify({ type: "  graph_embed  " }),
  });
  assert.equal(res.status, 201);
  assert.equal(JSON.parse(cli.stdout).type, "graph_embed");
  assert.equal((await res.json()).type, "graph_embed");
  const blank = await runMain([...t.args, "enqueue", "--type", "   "]);
  assert.equal(blank.code, 2);
  assert.match(blank.stderr, /^error: invalid --type " {3}": a task needs a type/);
});

Deno.test("listTasks() refuses an unknown sort instead of sorting by updated_at", async () => {
  await using t = await testSchema();
  await assert.rejects(
    () => listTasks(t.db, { sort: "name" as "updated" }),
    (err: unknown) =>
      err instanceof InvalidInputError &&
      err.message === 'Invalid sort "name": expected updated or created',
  );
});

Deno.test("GET /tasks?total=true counts with countTasks(), the filter's cursor and page aside", async () => {
  await using t = await testSchema();
  await insertFixture(t);
  const app = createApp({ db: t.db });
  for (
    const [query, filter] of [
      ["", {}],
      ["&status=running,failed", { statuses: ["running", "failed"] as const }],
      ["&type=graph_embed&search=embed", { type: "graph_embed", search: "embed" }],
    ] as const
  ) {
    const page = await (await app.request(`/tasks?limit=1&total=true${query}`)).json();
    assert.equal(page.total, await countTasks(t.db, filter), query);
    const next =
      await (await app.request(`/tasks?limit=1&total=1&after=${page.next_cursor}${query}`)).json();
    assert.equal(next.total, page.total, `${query}: the cursor does not change the total`);
  }
  assert.equal(await countTasks(t.db, { statuses: ["running"] }), 3);
});

Deno.test("an empty cursor is the first page for list --after and GET /tasks?after=", async () => {
  await using t = await testSchema();
  await insertFixture(t);
  const app = createApp({ db: t.db });
  const r = await both(
    t,
    app,
    ["list", "--after", "", "--limit", "3"],
    "/tasks?after=&limit=3&total=auto",
  );
  assert.equal(r.cliCode, 0);
  assert.equal(r.status, 200);
  assert.deepEqual(r.http, r.cli);
  assert.deepEqual(
    r.cli,
    JSON.parse((await runMain([...t.args, "list", "--limit", "3", "--json"])).stdout),
  );
});
