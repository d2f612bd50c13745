import assert from "node:assert/strict";
import { VERSION } from "../lib/version.ts";
import { resolveConfig } from "../lib/config.ts";
import { connect } from "../lib/db.ts";
import { createApp } from "../server/app.ts";
import { IDS, insertFixture, TEST_DSN, testSchema } from "./helpers.ts";
import { runMain } from "./run_main.ts";

const TOKEN = "s3cret-token-42";
const auth = { authorization: `Bearer ${TOKEN}` };

async function get(
  app: ReturnType<typeof createApp>,
  path: string,
  headers: Record<string, string> = {},
) {
  const res = await app.request(path, { headers });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch { /* metrics are text */ }
  return {
    status: res.status,
    body: body as Record<string, unknown> & {
      error?: { code: string; message: string; candidates?: string[] };
    },
    res,
  };
}

async function post(
  app: ReturnType<typeof createApp>,
  path: string,
  body?: unknown,
  headers: Record<string, string> = auth,
) {
  const res = await app.request(path, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() };
}

Deno.test("GET /tasks returns the CLI's list --json for the same filters", async () => {
  await using t = await testSchema();
  await insertFixture(t);
  const app = createApp({ db: t.db });
  for (
    const [query, args] of [
      ["", []],
      ["?status=failed,completed&domain=user_2", [
        "--status",
        "failed,completed",
        "--domain",
        "user_2",
      ]],
      ["?status=queued&status=retry&limit=2", [
        "--status",
        "queued",
        "--status",
        "retry",
        "--limit",
        "2",
      ]],
      ["?type=graph_embed&sort=created&search=embed", [
        "--type",
        "graph_embed",
        "--sort",
        "created",
        "--search",
        "embed",
      ]],
    ] as const
  ) {
    // total=auto: the total `list --json` always carries.
    const http = await get(app, `/tasks${query}${query ? "&" : "?"}total=auto`);
    assert.equal(http.status, 200);
    const cli = await runMain([...t.args, "list", "--json", ...args]);
    assert.deepEqual(http.body, JSON.parse(cli.stdout), query);
  }
  const page = await get(app, "/tasks?limit=5&total=true");
  assert.equal(page.body.total, 19);
  assert.equal((page.body.items as unknown[]).length, 5);
  const next = await get(app, `/tasks?limit=5&after=${page.body.next_cursor}`);
  assert.equal((next.body.items as unknown[]).length, 5);
  const filtered = await get(app, "/tasks?status=running&total=1&limit=1");
  assert.equal(filtered.body.total, 3);
});

Deno.test("GET /tasks rejects bad query values with a 400 JSON error", async () => {
  await using t = await testSchema();
  const app = createApp({ db: t.db });
  for (
    const [query, code, message] of [
      ["?status=done", "invalid_input", /Unknown status "done"/],
      ["?limit=0", "invalid_input", /Invalid limit "0": expected a whole number from 1 to 1000/],
      ["?limit=1001", "invalid_input", /from 1 to 1000/],
      ["?sort=name", "invalid_input", /Invalid sort/],
      ["?after=xyz", "invalid_input", /Invalid cursor/],
      ["?stauts=queued", "invalid_input", /Unknown query parameter "stauts"/],
      ["?search=a&search=b", "invalid_input", /given more than once/],
      ["?param=nokey", "invalid_input", /Invalid param "nokey": expected key=value/],
      ["?total=maybe", "invalid_input", /Invalid total/],
    ] as const
  ) {
    const r = await get(app, `/tasks${query}`);
    assert.equal(r.status, 400, query);
    assert.equal(r.body.error!.code, code);
    assert.match(r.body.error!.message, message);
  }
});

Deno.test("GET /tasks/:id takes a prefix: 404 for none, 409 with candidates when ambiguous", async () => {
  await using t = await testSchema();
  await insertFixture(t);
  const app = createApp({ db: t.db });
  const one = await get(app, "/tasks/eeee1");
  assert.equal(one.status, 200);
  const cli = await runMain([...t.args, "show", "eeee1", "--json"]);
  assert.deepEqual(one.body, JSON.parse(cli.stdout));
  const none = await get(app, "/tasks/0000");
  assert.equal(none.status, 404);
  assert.deepEqual(none.body, { error: { code: "not_found", message: 'Task "0000" not found' } });
  const amb = await get(app, "/tasks/eeee");
  assert.equal(amb.status, 409);
  assert.equal(amb.body.error!.code, "ambiguous_id");
  assert.deepEqual(amb.body.error!.candidates, [
    IDS.failedRecent,
    IDS.failed5h,
    IDS.failed2d,
  ]);
  const bad = await get(app, "/tasks/not-hex");
  assert.equal(bad.status, 400);
});

Deno.test("GET /stats equals stats --json; GET /check grades with 200 or 503", async () => {
  await using t = await testSchema();
  await insertFixture(t);
  const app = createApp({ db: t.db });
  const http = await get(app, "/stats?top=2&days=3");
  assert.equal(http.status, 200);
  const cli = JSON.parse(
    (await runMain([...t.args, "stats", "--json", "--top", "2", "--days", "3"])).stdout,
  );
  for (
    const key of [
      "status_counts",
      "type_counts",
      "domain_counts",
      "high_attempts",
      "throughput",
      "options",
      "total",
    ]
  ) {
    assert.deepEqual(http.body[key], cli[key], key);
  }
  assert.equal((http.body.recent_activity as unknown[]).length, 3);
  assert.equal((await get(app, "/stats?top=zero")).status, 400);
  assert.equal((await get(app, "/stats?long_running=10")).status, 400);

  const ok = await get(app, "/check?max_lag=3h:4h&max_stuck=1:5");
  assert.equal(ok.status, 200);
  assert.equal(ok.body.state, "OK");
  const warn = await get(app, "/check?max_lag=1h:3h");
  assert.equal(warn.status, 200);
  assert.equal(warn.body.state, "WARNING");
  const crit = await get(app, "/check?max_stuck=0:0");
  assert.equal(crit.status, 503);
  assert.equal(crit.body.state, "CRITICAL");
  assert.equal(crit.body.exit_code, 2);
  const cliCheck = JSON.parse(
    (await runMain([...t.args, "check", "--max-stuck", "0:0", "--json"])).stdout,
  );
  assert.deepEqual(Object.keys(crit.body), Object.keys(cliCheck));
  assert.deepEqual(
    (crit.body.metrics as Array<{ name: string; state: string }>).map((m) => [m.name, m.state]),
    cliCheck.metrics.map((m: { name: string; state: string }) => [m.name, m.state]),
  );
  assert.equal((await get(app, "/check?max_lag=soon")).status, 400);
});

Deno.test("GET /health and /metrics; a database that is down is 503 without leaking the DSN", async () => {
  await using t = await testSchema();
  await insertFixture(t);
  const app = createApp({ db: t.db });
  const health = await get(app, "/health");
  assert.equal(health.status, 200);
  assert.deepEqual(health.body, { status: "ok", database: "ok", version: VERSION });
  const m = await get(app, "/metrics");
  assert.equal(m.status, 200);
  assert.match(m.res.headers.get("content-type")!, /^text\/plain/);
  const text = m.body as unknown as string;
  assert.match(text, /^seedtask_tasks\{status="running"\} 3$/m);
  assert.match(text, /^seedtask_tasks\{status="completed"\} 4$/m);
  assert.match(text, /^seedtask_tasks_by_type\{type="graph_embed"\} 9$/m);
  assert.match(text, /^seedtask_queue_lag_seconds 72\d\d$/m);
  assert.match(text, /^seedtask_stuck_tasks 1$/m);
  assert.match(text, /^seedtask_failure_rate\{window="1h"\} 0\.333/m);
  for (const line of text.split("\n").filter((l) => l && !l.startsWith("#"))) {
    assert.match(line, /^seedtask_/);
  }

  const down = connect(resolveConfig({ dsn: "postgres://admin:hunter2pw@127.0.0.1:1/prod" }, {}));
  try {
    const dead = createApp({ db: down, log: () => {} });
    const h = await get(dead, "/health");
    assert.equal(h.status, 503);
    assert.equal(h.body.database, "unreachable");
    for (const path of ["/tasks", "/stats", "/tasks/abcd", "/metrics", "/check"]) {
      const r = await dead.request(path);
      const body = await r.text();
      assert.equal(r.status, 503, path);
      assert.deepEqual(JSON.parse(body).error.code, "database_unavailable");
      assert.doesNotMatch(body, /hunter2pw|admin|127\.0\.0\.1|prod|postgres:\/\//);
    }
  } finally {
    await down.close();
  }
});

Deno.test("GET /openapi.json documents exactly the routes the app serves", async () => {
  await using t = await testSchema();
  const app = createApp({ db: t.db });
  const doc = (await get(app, "/openapi.json")).body as {
    openapi: string;
    paths: Record<string, Record<string, unknown>>;
  };
  assert.match(doc.openapi, /^3\./);
  const documented = Object.entries(doc.paths).flatMap(([p, ops]) =>
    Object.keys(ops).map((m) => `${m.toUpperCase()} ${p.replace(/\{(\w+)\}/g, ":$1")}`)
  ).sort();
  const served = [
    ...new Set(
      // The web console's pages (server/console/) are HTML for people, not the JSON API.
      app.routes.filter((r) => r.method !== "ALL" && !/^\/$|^\/ui(\/|$)/.test(r.path)).map((r) =>
        `${r.method} ${r.path.replace(/\/$/, "") || "/"}`
      ),
    ),
  ].sort();
  assert.deepEqual(documented, served);
});

Deno.test("write routes: 403 when read-only, 401 without the token, then enqueue, cancel and retry", async () => {
  await using t = await testSchema();
  await insertFixture(t);
  const ro = createApp({ db: t.db, token: TOKEN });
  assert.equal((await post(ro, "/tasks", { type: "x" })).status, 403);
  assert.equal((await post(ro, `/tasks/${IDS.queuedOld}/cancel`)).status, 403);

  const app = createApp({ db: t.db, token: TOKEN, allowWrite: true });
  const noAuth = await post(app, "/tasks", { type: "x" }, {});
  assert.equal(noAuth.status, 401);
  assert.equal(noAuth.body.error.code, "unauthorized");
  assert.equal(
    (await post(app, "/tasks", { type: "x" }, { authorization: "Bearer wrong-token-00" })).status,
    401,
  );
  assert.equal((await post(app, "/tasks", { type: "x" }, { authorization: TOKEN })).status, 401);

  const created = await post(app, "/tasks", {
    type: "graph_embed",
    params: { graph: 1 },
    domain: "user_5",
    drift_score: 0.3,
    run_after: "2030-01-01T00:00:00Z",
  });
  assert.equal(created.status, 201);
  assert.equal(created.body.status, "queued");
  assert.equal(created.body.run_after, "2030-01-01T00:00:00.000Z");
  assert.deepEqual(created.body.params, { graph: 1 });
  for (
    const [body, message] of [
      ["{oops", /not valid JSON/],
      [{}, /"type": /],
      [{ type: "x", extra: 1 }, /Unrecognized key/],
      [{ type: "x", drift_score: "high" }, /Invalid drift_score "high": expected a number/],
      [{ type: "x", run_after: "whenever" }, /Invalid run_after/],
      [{ type: "x", status: "running" }, /"status"/],
    ] as const
  ) {
    const r = await post(app, "/tasks", body);
    assert.equal(r.status, 400, JSON.stringify(body));
    assert.match(r.body.error.message, message);
  }

  const cancel = await post(app, `/tasks/${IDS.queuedOld.slice(0, 8)}/cancel`);
  assert.equal(cancel.status, 200);
  assert.equal(cancel.body.changed[0].status, "cancelled");
  const cli = await runMain([...t.args, "cancel", "bbbb2", "--json"]);
  assert.deepEqual(Object.keys(cancel.body), Object.keys(JSON.parse(cli.stdout)));
  const refused = await post(app, `/tasks/${IDS.runningHealthy}/cancel`);
  assert.equal(refused.status, 409);
  assert.equal(refused.body.error.code, "invalid_transition");
  assert.match(refused.body.error.message, /send \{"force": true\}/);
  const forced = await post(app, `/tasks/${IDS.runningHealthy}/cancel`, { force: true });
  assert.equal(forced.status, 200);
  assert.equal((await post(app, `/tasks/${IDS.runningLong}/cancel`, { force: "yes" })).status, 400);
  const retried = await post(app, `/tasks/${IDS.failed2d}/retry`);
  assert.equal(retried.status, 200);
  assert.equal(retried.body.changed[0].status, "queued");
  assert.equal((await post(app, `/tasks/${IDS.completed3h}/retry`)).status, 409);
  assert.equal((await post(app, "/tasks/9999/retry")).status, 404);
});

Deno.test("a non-loopback server needs the token for reads too, except /health", async () => {
  await using t = await testSchema();
  const app = createApp({ db: t.db, token: TOKEN, requireTokenForReads: true });
  assert.equal((await get(app, "/tasks")).status, 401);
  assert.equal((await get(app, "/metrics")).status, 401);
  assert.equal((await get(app, "/tasks", auth)).status, 200);
  assert.equal((await get(app, "/health")).status, 200);
  assert.equal((await get(app, "/nope", auth)).status, 404);
});

Deno.test("seedtask serve refuses unsafe configurations with exit 2", async () => {
  const env = { PG_DSN: TEST_DSN };
  const open = await runMain(["serve", "--host", "0.0.0.0"], { env });
  assert.equal(open.code, 2);
  assert.match(
    open.stderr,
    /^error: refusing to listen on 0\.0\.0\.0 without a token: .* — set --token or SEEDTASK_TOKEN, or bind 127\.0\.0\.1/,
  );
  const write = await runMain(["serve", "--allow-write"], { env });
  assert.equal(write.code, 2);
  assert.match(write.stderr, /--allow-write needs a token/);
  const short = await runMain(["serve", "--token", "abc"], { env });
  assert.equal(short.code, 2);
});
