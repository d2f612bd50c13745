/**
 * The web console (server/console/): every page and action through `app.request()`, against a
 * real table. The browser test (console_browser_test.ts) drives the same pages in Chromium.
 */
import assert from "node:assert/strict";
import type { Db } from "../lib/db.ts";
import { getTaskStatistics } from "../lib/queries/task_stats.ts";
import { type AppDeps, createApp } from "../server/app.ts";
import { withBasePath } from "../server/base_path.ts";
import { ConsoleKeys, SESSION_COOKIE } from "../server/console/auth.ts";
import { CONSOLE_CSP } from "../server/console/app.tsx";
import { ASSETS } from "../server/console/assets_embedded.ts";
import { embeddedAssetsSource } from "../tools/embed_console_assets.ts";
import { IDS, insertFixture, spawnCli, testSchema } from "./helpers.ts";
import { runMain } from "./run_main.ts";
import { pauseQueue, pausesTable } from "../lib/ops/queue_pauses.ts";

function host(): string {
  try {
    return Deno.hostname();
  } catch {
    return "localhost";
  }
}

const TOKEN = "s3cret-token-42";
const HOSTILE = "<script>alert(1)</script>";
const HOSTILE_ID = "99990000-0000-4000-8000-000000000099";

const keys = await ConsoleKeys.derive(TOKEN);
const cookie = `${SESSION_COOKIE}=${keys.session}`;
/** Headers of a same-site form POST from a signed-in browser. */
const signedInPost = {
  cookie,
  origin: "http://localhost",
  "content-type": "application/x-www-form-urlencoded",
};

async function page(app: ReturnType<typeof createApp>, path: string, headers = {}) {
  const res = await app.request(path, { headers });
  return { status: res.status, text: await res.text(), res };
}

function post(
  app: ReturnType<typeof createApp>,
  path: string,
  form: Record<string, string>,
  headers: Record<string, string> = signedInPost,
) {
  return app.request(path, {
    method: "POST",
    headers,
    body: new URLSearchParams(form).toString(),
  });
}

async function statusOf(db: Db, id: string): Promise<string> {
  const [row] = await db.sql<{ status: string }[]>`
    select status::text from ${db.sql(db.table)} where id = ${id}`;
  return row!.status;
}

async function withConsole(
  deps: Partial<AppDeps>,
  fn: (app: ReturnType<typeof createApp>, db: Db) => Promise<void>,
) {
  await using t = await testSchema();
  await insertFixture(t);
  await t.sql`
    insert into ${t.sql(t.table)} (id, type, status, error, params, description, domain)
    values (${HOSTILE_ID}, ${HOSTILE}, 'failed', ${HOSTILE}, ${t.sql.json({ x: HOSTILE })},
      ${HOSTILE}, ${HOSTILE})`;
  await fn(createApp({ db: t.db, ...deps }), t.db);
}

/** No inline script or style anywhere: what the CSP would block. */
function assertNoInline(html: string) {
  assert.doesNotMatch(html, /<script(?![^>]*\bsrc=)[^>]*>/, "an inline <script>");
  assert.doesNotMatch(html, /\sstyle=/, "an inline style attribute");
  assert.doesNotMatch(html, /<style/, "a <style> element");
  assert.doesNotMatch(html, /\son[a-z]+=/, "an inline event handler");
}

Deno.test("console pages answer 200 with a strict CSP and nothing inline", async () => {
  await withConsole({}, async (app) => {
    const root = await app.request("/");
    assert.equal(root.status, 302);
    assert.equal(root.headers.get("location"), "/ui");
    for (
      const path of ["/ui", "/ui/tasks", `/ui/tasks/${IDS.failedRecent}`, "/ui/tasks/eeee1"]
    ) {
      const { status, text, res } = await page(app, path);
      assert.equal(status, 200, path);
      assert.equal(res.headers.get("content-security-policy"), CONSOLE_CSP);
      assert.match(res.headers.get("content-type")!, /text\/html/);
      assert.match(text, /^<!doctype html>/);
      assertNoInline(text);
    }
    const { text } = await page(app, "/ui");
    assert.match(text, /Tasks by status/);
    assert.match(text, /href="\/ui\/tasks\?status=failed"/);
  });
});

Deno.test("the overview shows the counts by status and the queue's health", async () => {
  await withConsole({}, async (app) => {
    const { text } = await page(app, "/ui");
    // 3 failed in the fixture, plus the hostile row.
    assert.match(text, /st-failed"[^]*?<div class="value">4<\/div>/);
    assert.match(text, /Queue health/);
    assert.match(text, /Stuck running/);
    assert.match(text, /<svg class="chart"/);
    // Throughput per minute and per hour, the per-type queue table, the workers.
    assert.match(text, /Last hour, per minute/);
    assert.match(text, /Last 48 hours, per hour/);
    assert.match(text, /id="p-queues"[^]*?href="\/ui\/tasks\?type=graph_embed"/);
    assert.match(text, /id="p-workers"[^]*?disp-dead/);
  });
});

Deno.test("the tasks page reflects its filters and lists only what matches", async () => {
  await withConsole({}, async (app) => {
    const { status, text } = await page(
      app,
      "/ui/tasks?status=failed&status=retry&type=graph_embed&sort=created&limit=25",
    );
    assert.equal(status, 200);
    assert.match(text, /value="failed" checked/);
    assert.match(text, /value="retry" checked/);
    assert.doesNotMatch(text, /value="queued" checked/);
    assert.match(text, /name="type" value="graph_embed"/);
    assert.match(text, /<option value="created" selected/);
    assert.match(text, /<option value="25" selected/);
    assert.ok(text.includes(IDS.failedRecent.slice(0, 8)));
    assert.ok(text.includes(IDS.retryLater.slice(0, 8)));
    assert.ok(!text.includes(IDS.failed5h.slice(0, 8)), "a fact_search task");
    assert.ok(!text.includes(IDS.queuedOld.slice(0, 8)), "a queued task");
    assert.match(text, /2 tasks match/);
    // The error is shown inline.
    assert.ok(text.includes("connection reset by organism"));
  });
});

Deno.test("the tasks page pages by keyset and says the total", async () => {
  await withConsole({}, async (app) => {
    const first = await page(app, "/ui/tasks?limit=25&sort=created");
    assert.match(first.text, /20 tasks match/);
    const { text } = await page(app, "/ui/tasks?status=completed&limit=25");
    assert.match(text, /4 tasks match/);
    const small = await page(app, "/ui/tasks?status=completed&limit=25&search=done");
    assert.match(small.text, /3 tasks match/);
  });
  await withConsole({}, async (app) => {
    const seen = new Set<string>();
    let url: string | null = "/ui/tasks?limit=25";
    // limit 25 > 20 rows: one page; force two pages through the schema's smallest page.
    url = "/ui/tasks?limit=25&status=failed&status=completed&status=cancelled";
    const a = await page(app, url);
    for (const m of a.text.matchAll(/href="\/ui\/tasks\/([0-9a-f-]{36})"/g)) seen.add(m[1]!);
    assert.equal(seen.size, 10); // 3 failed + hostile + 4 completed + 2 cancelled
    assert.match(a.text, /Last page/);
  });
});

Deno.test("a bad filter is a 400 page naming it, and changes nothing", async () => {
  await withConsole({}, async (app) => {
    for (
      const [query, message] of [
        ["?limit=9999", /Invalid limit/],
        ["?status=nope", /nope/],
        ["?bogus=1", /Unknown query parameter &quot;bogus&quot;/],
        ["?after=garbage", /Invalid cursor/],
      ] as const
    ) {
      const { status, text } = await page(app, `/ui/tasks${query}`);
      assert.equal(status, 400, query);
      assert.match(text, message);
      assert.match(text, /<form class="card filters"/);
    }
    assert.equal((await page(app, "/ui/tasks/zzzz")).status, 400);
    assert.equal((await page(app, "/ui/tasks/00000000-0000-4000-8000-000000000000")).status, 404);
    assert.equal((await page(app, "/ui/no-such-page")).status, 404);
  });
});

Deno.test("hostile values from the table render as text on every page", async () => {
  await withConsole({ allowWrite: true, token: TOKEN }, async (app) => {
    for (
      const path of [
        "/ui",
        "/ui/tasks",
        "/ui/tasks?status=failed",
        `/ui/tasks/${HOSTILE_ID}`,
        `/ui/tasks/${HOSTILE_ID}/retry`,
        "/ui/actions/retry?status=failed",
      ]
    ) {
      const { status, text } = await page(app, path, { cookie });
      assert.equal(status, 200, path);
      assert.ok(!text.includes(HOSTILE), `${path} has the raw script`);
      assertNoInline(text);
    }
    const { text } = await page(app, `/ui/tasks/${HOSTILE_ID}`);
    // type, error, description, domain and params: each escaped.
    assert.ok(text.split("&lt;script&gt;alert(1)&lt;/script&gt;").length >= 5);
  });
});

Deno.test("the task page shows every column, params, result, the error and a timeline", async () => {
  await withConsole({}, async (app) => {
    const { text } = await page(app, `/ui/tasks/${IDS.completedRecent1}`);
    assert.ok(text.includes(IDS.completedRecent1));
    assert.match(text, /&quot;vectors&quot;: 3/);
    assert.match(text, /&quot;description&quot;: &quot;done embed one&quot;/);
    for (const column of ["priority", "labels", "drift_score", "locked_by", "created_at"]) {
      assert.match(text, new RegExp(`<th scope="row" class="mono">${column}</th>`));
    }
    assert.match(text, /<strong>Claimed<\/strong>/);
    assert.match(text, /<strong>Completed<\/strong>/);
    const failed = await page(app, `/ui/tasks/${IDS.failedRecent}`);
    assert.match(failed.text, /<pre class="error-text">Max attempts \(3\) exceeded/);
    const stuck = await page(app, `/ui/tasks/${IDS.runningStuck}`);
    assert.match(stuck.text, /expired/);
  });
});

Deno.test("without --allow-write no action is offered and every POST is a 403", async () => {
  await withConsole({ token: TOKEN }, async (app, db) => {
    const { text } = await page(app, `/ui/tasks/${IDS.failedRecent}`, { cookie });
    assert.doesNotMatch(text, /Retry…|Cancel…|Act on every/);
    const list = await page(app, "/ui/tasks?status=failed", { cookie });
    assert.doesNotMatch(list.text, /Retry matching/);
    const res = await post(app, `/ui/tasks/${IDS.failedRecent}/retry`, { csrf: keys.csrf });
    assert.equal(res.status, 403);
    assert.match(await res.text(), /read-only/);
    assert.equal((await page(app, `/ui/tasks/${IDS.failedRecent}/retry`, { cookie })).status, 403);
    assert.equal(await statusOf(db, IDS.failedRecent), "failed");
  });
});

Deno.test("a token-protected console needs the sign-in cookie: 401 without it", async () => {
  await withConsole({ token: TOKEN, requireTokenForReads: true }, async (app) => {
    for (const path of ["/ui", "/ui/tasks", `/ui/tasks/${IDS.failedRecent}`]) {
      const { status, text } = await page(app, path);
      assert.equal(status, 401, path);
      assert.match(text, /name="token"/);
      assert.ok(!text.includes("connection reset by organism"));
      assert.equal((await page(app, path, { cookie })).status, 200, path);
    }
    // A wrong cookie is no cookie; assets and the sign-in page need none.
    assert.equal((await page(app, "/ui", { cookie: `${SESSION_COOKIE}=x` })).status, 401);
    assert.equal((await page(app, "/ui/sign-in")).status, 200);
    const css = `/ui/assets/${ASSETS["app.css"]!.hash}/app.css`;
    assert.equal((await page(app, css)).status, 200);
    // The JSON API still wants the bearer token, not the cookie.
    assert.equal((await page(app, "/tasks", { cookie })).status, 401);
  });
});

Deno.test("signing in sets an HttpOnly, SameSite=Strict cookie; a wrong token is a 401", async () => {
  await withConsole({ token: TOKEN, allowWrite: true }, async (app) => {
    const headers = { origin: "http://localhost", "content-type": signedInPost["content-type"] };
    const wrong = await post(app, "/ui/sign-in", { token: "nope-nope-nope" }, headers);
    assert.equal(wrong.status, 401);
    assert.equal(wrong.headers.get("set-cookie"), null);
    assert.match(await wrong.text(), /Wrong token/);
    const ok = await post(app, "/ui/sign-in", { token: TOKEN, next: "/ui/tasks" }, headers);
    assert.equal(ok.status, 303);
    assert.equal(ok.headers.get("location"), "/ui/tasks");
    const set = ok.headers.get("set-cookie")!;
    assert.match(set, new RegExp(`^${SESSION_COOKIE}=${keys.session};`));
    assert.match(set, /HttpOnly/);
    assert.match(set, /SameSite=Strict/);
    assert.match(set, /Path=\/ui/);
    assert.doesNotMatch(set, /Secure/);
    assert.ok(!set.includes(TOKEN), "the cookie does not carry the token");
    // Over https (a proxy in front says so) the cookie is Secure; `next` cannot leave the console.
    const https = await post(app, "/ui/sign-in", { token: TOKEN, next: "https://evil.example/" }, {
      ...headers,
      "x-forwarded-proto": "https",
    });
    assert.match(https.headers.get("set-cookie")!, /Secure/);
    assert.equal(https.headers.get("location"), "/ui");
    // Signing out clears it.
    const out = await post(app, "/ui/sign-out", { csrf: keys.csrf });
    assert.equal(out.status, 303);
    assert.match(out.headers.get("set-cookie")!, /Max-Age=0/);
  });
});

Deno.test("a cross-site POST is refused and changes nothing", async () => {
  await withConsole({ token: TOKEN, allowWrite: true }, async (app, db) => {
    const path = `/ui/tasks/${IDS.failedRecent}/retry`;
    for (
      const extra of [
        { origin: "http://evil.example" } as Record<string, string>,
        { origin: "null" },
        { "sec-fetch-site": "cross-site" },
      ]
    ) {
      const res = await post(app, path, { csrf: keys.csrf }, { ...signedInPost, ...extra });
      assert.equal(res.status, 403, JSON.stringify(extra));
      assert.match(await res.text(), /cross-site/);
    }
    // Same site but without the form's CSRF field, or with a wrong one.
    assert.equal((await post(app, path, {})).status, 403);
    assert.equal((await post(app, path, { csrf: "forged" })).status, 403);
    // Signed out: 401.
    const { cookie: _, ...noCookie } = signedInPost;
    assert.equal((await post(app, path, { csrf: keys.csrf }, noCookie)).status, 401);
    // A sign-in from another site is refused too.
    const signIn = await post(app, "/ui/sign-in", { token: TOKEN }, {
      ...noCookie,
      origin: "http://evil.example",
    });
    assert.equal(signIn.status, 403);
    assert.equal(await statusOf(db, IDS.failedRecent), "failed");
  });
});

Deno.test("retry: the confirmation says how many tasks change; the result shows the change", async () => {
  await withConsole({ token: TOKEN, allowWrite: true }, async (app, db) => {
    const task = await page(app, `/ui/tasks/${IDS.failedRecent}`, { cookie });
    assert.match(task.text, new RegExp(`href="/ui/tasks/${IDS.failedRecent}/retry"`));
    const confirm = await page(app, `/ui/tasks/${IDS.failedRecent}/retry`, { cookie });
    assert.equal(confirm.status, 200);
    assert.match(confirm.text, /This will retry 1 task/);
    assert.match(confirm.text, new RegExp(`name="csrf" value="${keys.csrf}"`));
    assert.equal(await statusOf(db, IDS.failedRecent), "failed", "a confirmation changes nothing");
    const res = await post(app, `/ui/tasks/${IDS.failedRecent}/retry`, { csrf: keys.csrf });
    assert.equal(res.status, 200);
    assert.match(await res.text(), /Retried task eeee1000: it is now queued/);
    assert.equal(await statusOf(db, IDS.failedRecent), "queued");
    // The task page shows it at once (the action dropped the cached answers).
    assert.match((await page(app, `/ui/tasks/${IDS.failedRecent}`)).text, /st-queued/);
    // A completed task: nothing to retry, and a POST anyway is a 409 naming why.
    const none = await page(app, `/ui/tasks/${IDS.completed3h}/retry`, { cookie });
    assert.match(none.text, /Nothing to change/);
    assert.doesNotMatch(none.text, /id="confirm"/);
    const refused = await post(app, `/ui/tasks/${IDS.completed3h}/retry`, { csrf: keys.csrf });
    assert.equal(refused.status, 409);
    assert.match(await refused.text(), /only failed, cancelled or retry tasks can be retried/);
  });
});

Deno.test("cancel and force-cancel of one task", async () => {
  await withConsole({ token: TOKEN, allowWrite: true }, async (app, db) => {
    const confirm = await page(app, `/ui/tasks/${IDS.queuedOld}/cancel`, { cookie });
    assert.match(confirm.text, /This will cancel 1 task/);
    const res = await post(app, `/ui/tasks/${IDS.queuedOld}/cancel`, { csrf: keys.csrf });
    assert.equal(res.status, 200);
    assert.equal(await statusOf(db, IDS.queuedOld), "cancelled");
    const running = await page(app, `/ui/tasks/${IDS.runningLong}/cancel`, { cookie });
    assert.match(running.text, /Nothing to change/);
    const forced = await page(app, `/ui/tasks/${IDS.runningLong}/cancel?force=1`, { cookie });
    assert.match(forced.text, /This will cancel 1 task/);
    const done = await post(app, `/ui/tasks/${IDS.runningLong}/cancel`, {
      csrf: keys.csrf,
      force: "1",
    });
    assert.equal(done.status, 200);
    assert.equal(await statusOf(db, IDS.runningLong), "cancelled");
  });
});

Deno.test("group retry and cancel by filter: the preview's count, then the change", async () => {
  await withConsole({ token: TOKEN, allowWrite: true }, async (app, db) => {
    const list = await page(app, "/ui/tasks?status=failed&type=fact_search", { cookie });
    assert.match(list.text, /href="\/ui\/actions\/retry\?status=failed&amp;type=fact_search"/);
    const confirm = await page(app, "/ui/actions/retry?status=failed&type=fact_search", {
      cookie,
    });
    assert.match(confirm.text, /This will retry 1 task/);
    const res = await post(app, "/ui/actions/retry", {
      csrf: keys.csrf,
      status: "failed",
      type: "fact_search",
      expected: "1",
    });
    assert.equal(res.status, 200);
    assert.match(await res.text(), /Retried 1 task</);
    assert.equal(await statusOf(db, IDS.failed5h), "queued");
    assert.equal(await statusOf(db, IDS.failed2d), "failed", "another type is untouched");
    const cancel = await page(app, "/ui/actions/cancel?status=queued&status=created", { cookie });
    assert.match(cancel.text, /This will cancel 6 tasks/); // 2 created + 3 queued + the retried one
    const done = await post(app, "/ui/actions/cancel", {
      csrf: keys.csrf,
      status: "queued,created",
      expected: "5",
    });
    assert.match(await done.text(), /Cancelled 6 tasks \(the preview said 5/);
    assert.equal(await statusOf(db, IDS.created1), "cancelled");
    // A group action needs a filter.
    assert.equal((await page(app, "/ui/actions/retry", { cookie })).status, 400);
    assert.equal((await post(app, "/ui/actions/retry", { csrf: keys.csrf })).status, 400);
  });
});

Deno.test("a failed panel says so and keeps its last data; the page still renders", async () => {
  let fail = false;
  await withConsole({
    cacheTtlMs: 0,
    loadStats: (db, options) => {
      if (fail) return Promise.reject(new Error("boom"));
      return getTaskStatistics(db, options);
    },
  }, async (app) => {
    assert.doesNotMatch((await page(app, "/ui")).text, /Could not load/);
    fail = true;
    const { status, text } = await page(app, "/ui");
    assert.equal(status, 200);
    assert.match(text, /Could not load: Internal error/);
    assert.match(text, /showing data from/);
    assert.match(text, /st-failed"[^]*?<div class="value">4<\/div>/, "the last data");
    assert.ok(!text.includes("boom"), "the error's own text stays in the log");
    // The list does not depend on stats but its total does: the list is still there.
    const list = await page(app, "/ui/tasks?status=failed");
    assert.equal(list.status, 200);
    assert.ok(list.text.includes(IDS.failedRecent.slice(0, 8)));
  });
});

Deno.test("50 concurrent overview views cost one statistics computation", async () => {
  let loads = 0;
  await withConsole({
    cacheTtlMs: 60_000,
    loadStats: (db, options) => {
      loads++;
      return getTaskStatistics(db, options);
    },
  }, async (app) => {
    const answers = await Promise.all(
      Array.from({ length: 50 }, () => Promise.resolve(app.request("/ui")).then((r) => r.status)),
    );
    assert.deepEqual(new Set(answers), new Set([200]));
    // The API's /stats shares the same computation.
    assert.equal((await app.request("/stats")).status, 200);
    assert.equal(loads, 1);
  });
});

Deno.test("the console under --base-path: links, redirects and cookie carry the prefix", async () => {
  await withConsole({ basePath: "/seedtask", token: TOKEN }, async (app) => {
    const fetch = withBasePath("/seedtask", app.fetch);
    const at = (path: string, init?: RequestInit) =>
      fetch(new Request(`http://localhost${path}`, init));
    const root = await at("/seedtask/");
    assert.equal(root.status, 302);
    assert.equal(root.headers.get("location"), "/seedtask/ui");
    const res = await at("/seedtask/ui");
    const text = await res.text();
    assert.equal(res.status, 200);
    assert.match(text, /href="\/seedtask\/ui\/tasks"/);
    assert.match(text, /href="\/seedtask\/ui\/assets\/[0-9a-f]+\/app\.css"/);
    assert.equal((await at("/ui")).status, 404);
    assert.equal((await at("/seedtask/health")).status, 200);
    const signIn = await at("/seedtask/ui/sign-in", {
      method: "POST",
      headers: { origin: "http://localhost", "content-type": signedInPost["content-type"] },
      body: new URLSearchParams({ token: TOKEN }).toString(),
    });
    assert.equal(signIn.status, 303);
    assert.match(signIn.headers.get("set-cookie")!, /Path=\/seedtask\/ui/);
    assert.equal(signIn.headers.get("location"), "/seedtask/ui");
  });
});

Deno.test("the console's assets are embedded, typed and up to date with their sources", async () => {
  const embedded = await Deno.readTextFile(
    new URL("../server/console/assets_embedded.ts", import.meta.url),
  );
  assert.ok(
    embedded === await embeddedAssetsSource(),
    "server/console/assets_embedded.ts is stale: run deno run -A tools/embed_console_assets.ts",
  );
  await withConsole({}, async (app) => {
    for (
      const [name, type] of [["app.css", /text\/css/], ["app.js", /javascript/], [
        "favicon.svg",
        /svg/,
      ]] as const
    ) {
      const res = await app.request(`/ui/assets/${ASSETS[name]!.hash}/${name}`);
      assert.equal(res.status, 200);
      assert.match(res.headers.get("content-type")!, type);
      assert.match(res.headers.get("cache-control")!, /immutable/);
      assert.equal(await res.text(), ASSETS[name]!.body);
    }
    assert.equal((await app.request("/ui/assets/x/nope.js")).status, 404);
  });
});

Deno.test("the failures page groups failures; a group's retry changes exactly its tasks", async () => {
  await withConsole({ token: TOKEN, allowWrite: true }, async (app, db) => {
    const { status, text } = await page(app, "/ui/failures", { cookie });
    assert.equal(status, 200);
    assertNoInline(text);
    assert.match(text, /Failure groups/);
    assert.match(text, /connection reset by organism/);
    assert.ok(!text.includes(HOSTILE), "the hostile error is escaped");
    const ids = [...text.matchAll(/\/ui\/actions\/retry\?group=([0-9a-f]{12})/g)].map((m) => m[1]!);
    assert.ok(ids.length >= 2, "group actions are offered");
    // The group of the graph_embed "connection reset" failure.
    const row = text.split("<tr>").find((r) => r.includes("connection reset by organism"))!;
    const group = /group=([0-9a-f]{12})/.exec(row)![1]!;
    const confirm = await page(app, `/ui/actions/retry?group=${group}`, { cookie });
    assert.match(confirm.text, /This will retry 1 task/);
    const res = await post(app, "/ui/actions/retry", { csrf: keys.csrf, group, expected: "1" });
    assert.match(await res.text(), /Retried 1 task</);
    assert.equal(await statusOf(db, IDS.failedRecent), "queued");
    assert.equal(await statusOf(db, IDS.failed5h), "failed", "another group is untouched");
    // Windows are links; a bad window is a 400 naming it.
    assert.match((await page(app, "/ui/failures?since=1h")).text, /aria-current="page">1h/);
    const bad = await page(app, "/ui/failures?since=soon");
    assert.equal(bad.status, 400);
    assert.match(bad.text, /since/);
  });
});

Deno.test("the workers page lists dispatchers, stuck tasks and what requeue-stale would do", async () => {
  await withConsole({}, async (app) => {
    const { status, text } = await page(app, "/ui/workers");
    assert.equal(status, 200);
    assertNoInline(text);
    assert.match(text, /disp-dead/);
    assert.match(text, /lease expired/);
    assert.ok(text.includes(IDS.runningStuck.slice(0, 8)));
    assert.match(text, /requeue-stale<\/code> would now return <strong>1<\/strong>/);
  });
});

Deno.test("release: a created task joins the queue after its confirmation", async () => {
  await withConsole({ token: TOKEN, allowWrite: true }, async (app, db) => {
    const task = await page(app, `/ui/tasks/${IDS.created1}`, { cookie });
    assert.match(task.text, /Release…/);
    const confirm = await page(app, `/ui/tasks/${IDS.created1}/release`, { cookie });
    assert.match(confirm.text, /This will release 1 task/);
    const res = await post(app, `/ui/tasks/${IDS.created1}/release`, { csrf: keys.csrf });
    assert.equal(res.status, 200);
    assert.match(await res.text(), /Released task aaaa1000: it is now queued/);
    assert.equal(await statusOf(db, IDS.created1), "queued");
    const group = await page(app, "/ui/actions/release?status=created", { cookie });
    assert.match(group.text, /This will release 1 task/);
  });
});

Deno.test("demo --serve says the console's URL, and the console answers there", async () => {
  const demo = spawnCli(["demo", "--serve", "--port", "0", "--tasks", "6", "--seconds", "1"]);
  try {
    await demo.waitFor(/Web console on the demo data: http:\/\/127\.0\.0\.1:\d+\/ui\n/, 120_000);
    // the demo's default database: in memory, nothing on disk
    assert.match(demo.stdout(), /^Embedded PostgreSQL \(PGlite\) in memory\n/);
    const url = /Web console on the demo data: (\S+)/.exec(demo.stdout())![1]!;
    const res = await fetch(url);
    const text = await res.text();
    assert.equal(res.status, 200);
    assert.match(text, /Tasks by status/);
    const root = await fetch(url.replace(/\/ui$/, "/"), { redirect: "manual" });
    await root.body?.cancel();
    assert.equal(root.headers.get("location"), "/ui");
  } finally {
    demo.child.kill("SIGINT");
    assert.equal(await demo.exit(), 0);
  }
});

Deno.test("serve --base-path takes a path such as /seedtask; anything else is exit 2", async () => {
  for (const bad of ["seedtask", "/a b", "/../x", "/x?y"]) {
    const r = await runMain([
      "serve",
      "--base-path",
      bad,
      "--dsn",
      "postgres://nobody@127.0.0.1:1/x",
    ]);
    assert.equal(r.code, 2, bad);
    assert.match(r.stderr, /invalid --base-path/i);
    assert.equal(r.stdout, "");
  }
});

async function pauseRows(db: Db) {
  const table = await pausesTable(db);
  const rows = await db.sql<
    { type: string; domain: string | null; reason: string | null; by: string }[]
  >`
    select type, domain, reason, paused_by as by from ${db.sql.unsafe(table!)}
    order by type, domain nulls first`;
  return [...rows];
}

Deno.test("without --allow-write no pause or resume is offered, and their POSTs are 403", async () => {
  await withConsole({ token: TOKEN }, async (app, db) => {
    await pauseQueue(db, { type: "graph_embed", by: "ops@test" });
    const { text } = await page(app, "/ui", { cookie });
    // The paused list is there, read-only.
    assert.match(text, /id="p-paused"[^]*?graph_embed[^]*?ops@test/);
    assert.doesNotMatch(text, /Pause…|Resume…/);
    for (const path of ["/ui/pause?type=fact_search", "/ui/resume?type=graph_embed"]) {
      assert.equal((await page(app, path, { cookie })).status, 403, path);
    }
    const res = await post(app, "/ui/pause", { csrf: keys.csrf, type: "fact_search" });
    assert.equal(res.status, 403);
    assert.match(await res.text(), /read-only/);
    assert.equal(
      (await post(app, "/ui/resume", { csrf: keys.csrf, type: "graph_embed" })).status,
      403,
    );
    assert.deepEqual((await pauseRows(db)).map((r) => r.type), ["graph_embed"]);
  });
});

Deno.test("a cross-site or CSRF-less pause or resume is refused and changes nothing", async () => {
  await withConsole({ token: TOKEN, allowWrite: true }, async (app, db) => {
    await pauseQueue(db, { type: "graph_embed", by: "ops@test" });
    for (
      const [path, type] of [["/ui/pause", "fact_search"], ["/ui/resume", "graph_embed"]] as const
    ) {
      const evil = await post(app, path, { csrf: keys.csrf, type }, {
        ...signedInPost,
        origin: "http://evil.example",
      });
      assert.equal(evil.status, 403, path);
      assert.match(await evil.text(), /cross-site/);
      assert.equal((await post(app, path, { type })).status, 403, path);
      const { cookie: _, ...noCookie } = signedInPost;
      assert.equal((await post(app, path, { csrf: keys.csrf, type }, noCookie)).status, 401);
    }
    assert.deepEqual((await pauseRows(db)).map((r) => r.type), ["graph_embed"]);
  });
});

Deno.test("pause then resume a type: confirmation counts the waiting tasks; the overview shows it", async () => {
  await withConsole({ token: TOKEN, allowWrite: true }, async (app, db) => {
    const before = await page(app, "/ui", { cookie });
    assert.match(before.text, /id="p-paused"[^]*?No type is paused/);
    assert.match(before.text, /href="\/ui\/pause\?type=graph_embed"/);
    // graph_embed: two queued and one retry task wait; the confirmation changes nothing.
    const confirm = await page(app, "/ui/pause?type=graph_embed", { cookie });
    assert.equal(confirm.status, 200);
    assertNoInline(confirm.text);
    assert.match(confirm.text, /This will pause 3 waiting tasks/);
    assert.match(confirm.text, new RegExp(`name="csrf" value="${keys.csrf}"`));
    assert.match(confirm.text, /name="reason"/);
    assert.deepEqual(await pauseRows(db), []);
    // One domain only: its own count.
    const one = await page(app, "/ui/pause?type=graph_embed&domain=user_1", { cookie });
    assert.match(one.text, /This will pause 2 waiting tasks/);
    assert.match(one.text, /name="domain" value="user_1"/);

    const res = await post(app, "/ui/pause", {
      csrf: keys.csrf,
      type: "graph_embed",
      reason: "embedding API down",
    });
    assert.equal(res.status, 200);
    assert.match(
      await res.text(),
      /Paused graph_embed: dispatchers claim none of its 3 waiting tasks/,
    );
    assert.deepEqual(await pauseRows(db), [
      { type: "graph_embed", domain: null, reason: "embedding API down", by: "console@" + host() },
    ]);
    // The overview shows it at once (the action dropped the cached answers): the paused list,
    // the mark in the type table, and Resume instead of Pause.
    const after = await page(app, "/ui", { cookie });
    assert.match(
      after.text,
      /id="p-paused"[^]*?graph_embed[^]*?every domain[^]*?>3<[^]*?embedding API down/,
    );
    assert.match(
      after.text,
      /id="p-queues"[^]*?graph_embed<\/a> <span class="tag tag-warn"[^>]*>paused</,
    );
    assert.match(after.text, /href="\/ui\/resume\?type=graph_embed"/);
    // Pausing again: already paused, the reason updated.
    const again = await post(app, "/ui/pause", {
      csrf: keys.csrf,
      type: "graph_embed",
      reason: "still down",
    });
    assert.match(await again.text(), /was already paused/);
    assert.equal((await pauseRows(db))[0]!.reason, "still down");

    const resumeConfirm = await page(app, "/ui/resume?type=graph_embed", { cookie });
    assert.match(resumeConfirm.text, /This will release 3 waiting tasks/);
    assert.equal((await pauseRows(db)).length, 1, "a confirmation changes nothing");
    const resumed = await post(app, "/ui/resume", { csrf: keys.csrf, type: "graph_embed" });
    assert.equal(resumed.status, 200);
    assert.match(await resumed.text(), /Resumed graph_embed: dispatchers claim its tasks again/);
    assert.deepEqual(await pauseRows(db), []);
    assert.match((await page(app, "/ui", { cookie })).text, /No type is paused/);
    // Nothing paused: nothing to resume, and a POST says so.
    assert.match(
      (await page(app, "/ui/resume?type=graph_embed", { cookie })).text,
      /Nothing to resume/,
    );
    const nothing = await post(app, "/ui/resume", { csrf: keys.csrf, type: "graph_embed" });
    assert.match(await nothing.text(), /Nothing resumed: graph_embed was not paused/);
    // A bad type is a 400 and pauses nothing.
    const bad = await post(app, "/ui/pause", { csrf: keys.csrf, type: "" });
    assert.equal(bad.status, 400);
    assert.deepEqual(await pauseRows(db), []);
  });
});

Deno.test("a hostile type and reason of a pause render as text", async () => {
  await withConsole({ token: TOKEN, allowWrite: true }, async (app, db) => {
    const res = await post(app, "/ui/pause", { csrf: keys.csrf, type: HOSTILE, reason: HOSTILE });
    assert.equal(res.status, 200);
    assert.deepEqual((await pauseRows(db)).map((r) => [r.type, r.reason]), [[HOSTILE, HOSTILE]]);
    for (
      const path of [
        "/ui",
        `/ui/pause?type=${encodeURIComponent(HOSTILE)}`,
        `/ui/resume?type=${encodeURIComponent(HOSTILE)}`,
      ]
    ) {
      const { text } = await page(app, path, { cookie });
      assert.ok(!text.includes(HOSTILE), path);
      assert.match(text, /&lt;script&gt;alert\(1\)&lt;\/script&gt;/, path);
      assertNoInline(text);
    }
    assert.ok(!(await res.text()).includes(HOSTILE));
  });
});
