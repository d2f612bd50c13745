/**
 * Issue 10 items 5 and 6: values too small, too large or unstorable are the client's mistake —
 * exit 2 (check: UNKNOWN 3) or HTTP 400 naming the field, one line, nothing written — and no
 * database error ends a command with a stack trace or ends the server.
 */
import assert from "node:assert/strict";
import { guard } from "../lib/db.ts";
import { MAX_AGE_MS, MAX_TIMER_MS, parseDuration } from "../lib/duration.ts";
import { isUsageError, OutOfRangeError } from "../lib/errors.ts";
import { createApp } from "../server/app.ts";
import {
  EMBEDDED,
  runCli,
  serverTest,
  spawnCli,
  TEST_DSN,
  type TestSchema,
  testSchema,
} from "./helpers.ts";
import { runMain } from "./run_main.ts";

const TOKEN = "bad-input-token-1";

function oneLine(text: string, what = ""): void {
  assert.equal(text.trimEnd().split("\n").length, 1, `${what}: expected one line:\n${text}`);
  assert.doesNotMatch(text, /\n\s+at |Uncaught|PostgresError/, `${what}: no stack trace`);
}

async function rowCount(t: TestSchema): Promise<number> {
  const [{ n }] = await t.sql`select count(*)::int as n from ${t.sql(t.table)}` as unknown as [
    { n: number },
  ];
  return n;
}

/** Random hex: incompressible, so an 8 KB value really is 8 KB in an index. */
function randomText(length: number): string {
  let text = "";
  while (text.length < length) {
    const bytes = crypto.getRandomValues(new Uint8Array(32_768));
    text += Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }
  return text.slice(0, length);
}

/**
 * A DSN whose every query, the driver's own startup query included, is JIT-compiled: that
 * takes milliseconds, so a 1ms statement timeout cancels each one for certain rather than
 * most of the time (PostgreSQL's own behaviour, no stand-in).
 */
function slowQueriesDsn(): string {
  const sep = TEST_DSN.includes("?") ? "&" : "?";
  return `${TEST_DSN}${sep}jit=on&jit_above_cost=0&jit_inline_above_cost=0&jit_optimize_above_cost=0`;
}

serverTest(
  "a statement timeout shorter than any query is a one-line error, never an uncaught one",
  "PGlite has no statement timeout",
  async () => {
    await using t = await testSchema();
    const [{ jit }] = await t.sql`select pg_jit_available() as jit` as unknown as [
      { jit: boolean },
    ];
    const args = ["--dsn", slowQueriesDsn(), "--table", t.table, "--statement-timeout", "1ms"];
    const runs = await Promise.all(
      [["list"], ["show", "abcd"], ["stats"], ["doctor"], ["stats", "--json"]].map((cmd) =>
        runCli([...args, ...cmd])
      ),
    );
    for (const r of runs) {
      oneLine(r.stderr, r.stderr);
      if (jit) assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /^error: query cancelled after the statement timeout \(1ms\)/);
    }
    const check = await runCli(["check", ...args]);
    assert.equal(check.code, 3, check.stdout + check.stderr);
    oneLine(check.stdout, "check");
    assert.match(check.stdout, /^SEEDTASK UNKNOWN - Query cancelled after the statement timeout/);
    assert.doesNotMatch(check.stderr, /Uncaught|\n\s+at /);
  },
);

serverTest(
  "serve with a statement timeout shorter than any query answers 503 and keeps serving",
  "PGlite has no statement timeout",
  async () => {
    await using t = await testSchema();
    const serve = spawnCli([
      "--dsn",
      slowQueriesDsn(),
      "--table",
      t.table,
      "--statement-timeout",
      "1ms",
      "serve",
      "--port",
      "0",
    ]);
    try {
      await serve.waitFor(/listening on http:\/\/[^ ]+:\d+/);
      const base = /listening on (http:\/\/[^ ]+:\d+)/.exec(serve.stdout())![1]!;
      for (const path of ["/stats", "/tasks", "/tasks/abcd", "/check", "/metrics", "/stats"]) {
        const res = await fetch(base + path);
        const body = await res.json();
        assert.equal(res.status, 503, `${path}: ${JSON.stringify(body)}`);
        assert.equal(body.error.message, "The query timed out", path);
      }
      const alive = await fetch(base + "/openapi.json");
      assert.equal(alive.status, 200);
      await alive.body?.cancel();
    } finally {
      serve.child.kill("SIGTERM");
    }
    assert.equal(await serve.exit(), 0, serve.stderr());
    assert.doesNotMatch(serve.stderr(), /Uncaught|PostgresError/);
  },
);

Deno.test("parseDuration() refuses timers past 2^31-1 ms and ages past 100 years, saying so", () => {
  assert.equal(parseDuration("24d"), 24 * 86_400_000);
  assert.equal(parseDuration("2147483647ms"), MAX_TIMER_MS);
  assert.throws(() => parseDuration("25d", "--timeout"), (err: Error) => {
    assert.ok(err instanceof OutOfRangeError);
    assert.equal(
      err.message,
      'Invalid --timeout "25d": at most 2147483647ms, about 24.8 days (the longest a timer can wait)',
    );
    return true;
  });
  assert.equal(parseDuration("36500d", "age", "age"), MAX_AGE_MS);
  assert.throws(() => parseDuration("36501d", "--older-than", "age"), /at most 36500d/);
  for (const huge of ["99999999999999999999d", "1e400d", `${"9".repeat(400)}w`]) {
    assert.throws(() => parseDuration(huge, "x", "age"), /Invalid x/);
  }
});

Deno.test("duration flags past their limit are exit 2 with the limit, before anything runs", async () => {
  await using t = await testSchema();
  const base = ["--dsn", TEST_DSN, "--table", t.table];
  const cases: Array<[string[], RegExp, number?]> = [
    [["dispatch", "--exec", "true", "--once", "--timeout", "30d"], /--timeout|timeout "30d"/],
    [["dispatch", "--exec", "true", "--once", "--poll", "30d"], /poll "30d"/],
    [["dispatch", "--exec", "true", "--once", "--backoff-max", "99999d"], /backoff-max/],
    [["dispatch", "--exec", "true", "--once", "--shutdown-timeout", "25d"], /shutdown-timeout/],
    [["--statement-timeout", "25d", "list"], /statement timeout "25d"/],
    [["enqueue", "--type", "x", "--run-after", "999999999999d"], /--run-after "999999999999d"/],
    [["purge", "--older-than", "99999999999999999999d", "--yes"], /older-than/],
    [["requeue-stale", "--older-than", "999999999999d"], /older-than/],
    [["cancel", "--status", "queued", "--older-than", "999999999999d", "--yes"], /older-than/],
    [["stats", "--long-running", "99999999999999d"], /long-running/],
    [["check", "--long-running", "99999999999999d"], /long-running/, 3],
    [["check", "--max-lag", "99999999999999d"], /--max-lag threshold/, 3],
  ];
  for (const [args, field, code = 2] of cases) {
    const r = await runMain([...base, ...args]);
    assert.equal(r.code, code, `${args.join(" ")}: ${r.stdout}${r.stderr}`);
    const line = code === 3 ? r.stdout : r.stderr;
    oneLine(line, args.join(" "));
    assert.match(line, field, args.join(" "));
    assert.match(line, /at most (2147483647ms|36500d)/, args.join(" "));
  }
  assert.equal(await rowCount(t), 0);
  // Long ages that make sense still work.
  const purge = await runMain([...base, "purge", "--older-than", "365d", "--json"]);
  assert.equal(purge.code, 0, purge.stderr);
  const later = await runMain([...base, "enqueue", "--type", "x", "--run-after", "30d"]);
  assert.equal(later.code, 0, later.stderr);
});

Deno.test("a lease no timer can hold is refused instead of a dispatcher that never exits", async () => {
  await using t = await testSchema();
  const r = await runMain([
    ...["--dsn", TEST_DSN, "--table", t.table],
    ...["dispatch", "--exec", "true", "--once", "--lease", "999999999999d"],
  ]);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /^error: invalid lease "999999999999d": at most 2147483647ms/);
});

Deno.test("HTTP durations past their limit are 400 naming the parameter", async () => {
  await using t = await testSchema();
  const app = createApp({ db: t.db, allowWrite: true, token: TOKEN });
  for (
    const [path, field] of [
      ["/stats?long_running=99999999999999d", "long_running"],
      ["/check?long_running=99999999999999d", "long_running"],
      ["/check?max_lag=99999999999999d", "max_lag"],
    ] as const
  ) {
    const res = await app.request(path);
    const body = await res.json();
    assert.equal(res.status, 400, `${path}: ${JSON.stringify(body)}`);
    assert.match(body.error.message, new RegExp(field!), path);
  }
  const res = await app.request("/tasks", {
    method: "POST",
    headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
    body: JSON.stringify({ type: "x", run_after: "999999999999d" }),
  });
  const body = await res.json();
  assert.equal(res.status, 400, JSON.stringify(body));
  assert.match(body.error.message, /run_after/);
  assert.equal(await rowCount(t), 0);
});

/** Values PostgreSQL cannot store or index, each with the field the error must name. */
function unstorableTasks(): Array<[Record<string, unknown>, RegExp]> {
  return [
    [{ type: "a\u0000b" }, /"type"/],
    [{ type: "x", domain: "user\u0000" }, /"domain"/],
    [{ type: "x", description: "one\u0000two" }, /"description"/],
    [{ type: "x", params: { a: "b\u0000" } }, /"params\.a"/],
    [{ type: "x", params: { "k\u0000": 1 } }, /"params"/],
    [{ type: "x", params: { list: ["ok", "\u0000"] } }, /"params\.list\[1\]"/],
    [{ type: "x", params: { s: "\ud800" } }, /"params\.s"/],
    [{ type: "\udc00" }, /"type"/],
    [{ type: randomText(8192) }, /"type"/],
    [{ type: "x", domain: randomText(8192) }, /"domain"/],
    [{ type: "x", description: randomText(200_000) }, /"description"/],
    [{ type: "x", params: nested(5000) }, /"params"/],
    [{ type: "x", run_after: "0000-01-01" }, /run.after/],
  ];
}

function nested(depth: number): unknown {
  let value: unknown = 1;
  for (let i = 0; i < depth; i++) value = { a: value };
  return value;
}

Deno.test("POST /tasks refuses values PostgreSQL cannot store with 400 naming the field", async () => {
  await using t = await testSchema();
  const app = createApp({ db: t.db, allowWrite: true, token: TOKEN });
  for (const [task, field] of unstorableTasks()) {
    const res = await app.request("/tasks", {
      method: "POST",
      headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify(task),
    });
    const body = await res.json();
    const what = JSON.stringify(task).slice(0, 80);
    assert.equal(res.status, 400, `${what}: ${JSON.stringify(body).slice(0, 300)}`);
    assert.match(body.error.message, field, what);
    assert.ok(body.error.message.length < 400, `${what}: a short message`);
  }
  assert.equal(await rowCount(t), 0);
});

Deno.test("enqueue refuses the same values with exit 2 naming the field", async () => {
  await using t = await testSchema();
  for (const [task, field] of unstorableTasks()) {
    const args = ["--dsn", TEST_DSN, "--table", t.table, "enqueue", "--type", String(task.type)];
    if (task.domain !== undefined) args.push("--domain", String(task.domain));
    if (task.description !== undefined) args.push("--description", String(task.description));
    if (task.params !== undefined) args.push("--params", JSON.stringify(task.params));
    if (task.run_after !== undefined) args.push("--run-after", String(task.run_after));
    const r = await runMain(args);
    const what = args.slice(4).join(" ").slice(0, 80);
    assert.equal(r.code, 2, `${what}: ${r.stderr.slice(0, 300)}`);
    oneLine(r.stderr, what);
    assert.match(r.stderr, field, what);
  }
  assert.equal(await rowCount(t), 0);
});

Deno.test("filters PostgreSQL cannot compare are 400 / exit 2, not a database error", async () => {
  await using t = await testSchema();
  const app = createApp({ db: t.db });
  for (
    const [query, field] of [
      ["type=%00", "type"],
      ["domain=a%00b", "domain"],
      ["search=%00", "search"],
      [`type=${randomText(8192)}`, "type"],
    ] as const
  ) {
    const res = await app.request(`/tasks?${query}`);
    const body = await res.json();
    assert.equal(res.status, 400, `${query.slice(0, 40)}: ${JSON.stringify(body)}`);
    assert.match(body.error.message, new RegExp(`"${field}"`));
  }
  for (const [flag, value] of [["--type", "a\u0000"], ["--search", "\u0000"]]) {
    const r = await runMain(["--dsn", TEST_DSN, "--table", t.table, "list", flag!, value!]);
    assert.equal(r.code, 2, r.stderr);
    oneLine(r.stderr);
  }
});

Deno.test("guard() maps the SQLSTATEs of a client's bad value to usage errors", async () => {
  await using t = await testSchema();
  const sql = t.db.sql;
  for (
    const [query, state] of [
      [() => sql`select ${"x"}::int`, "22P02"],
      [() => sql`select ${"2147483647"}::int + 1`, "22003"],
      [() => sql`select ${"0000-01-01T00:00:00Z"}::timestamptz`, "22008"],
      [() => sql`select ${'"\\u0000"'}::text::jsonb`, "22P05"],
      [() => sql`select convert_from(decode(${"ff"}, 'hex'), 'UTF8')`, "22021"],
      [() => sql`select array_fill(1, array[${200_000_000}::int, 100])`, "54000"],
    ] as const
  ) {
    if (EMBEDDED && state === "54000") continue; // PGlite's memory limits differ
    const err = await guard(t.db, () => query()).then(() => null, (e) => e);
    assert.ok(isUsageError(err), `${state}: ${err}`);
    assert.equal((err as { sqlState?: string }).sqlState, state);
    assert.match(err.message, /^The database refused a value: /);
  }
});

Deno.test(
  "a --table whose id is not a uuid is a clear error, not a raw database one",
  async () => {
    await using t = await testSchema();
    await t.sql.unsafe(`alter table ${t.table} alter column id drop default,
      alter column id type text using id::text`);
    for (const cmd of [["show", "abcd"], ["list", "--after", "x"], ["cancel", "abcd"]]) {
      const r = await runMain(["--dsn", TEST_DSN, "--table", t.table, ...cmd]);
      assert.notEqual(r.code, 0, cmd.join(" "));
      oneLine(r.stderr, cmd.join(" "));
      if (cmd[0] !== "list") {
        assert.match(
          r.stderr,
          new RegExp(`^error: table "${t.table}" is not a task table: its id is text, not uuid`),
          cmd.join(" "),
        );
      }
    }
    const app = createApp({ db: t.db });
    const res = await app.request("/tasks/abcd");
    const body = await res.json();
    assert.equal(res.status, 503, JSON.stringify(body));
    assert.equal(body.error.code, "incompatible_table");
  },
);

Deno.test("the Authorization scheme is case-insensitive (RFC 7235)", async () => {
  await using t = await testSchema();
  const app = createApp({ db: t.db, allowWrite: true, token: TOKEN });
  for (
    const [header, status] of [
      [`bearer ${TOKEN}`, 201],
      [`BEARER ${TOKEN}`, 201],
      [`Bearer  ${TOKEN}`, 201],
      [`Basic ${TOKEN}`, 401],
      [`bearer ${TOKEN}x`, 401],
      ["bearer", 401],
    ] as const
  ) {
    const res = await app.request("/tasks", {
      method: "POST",
      headers: { authorization: header, "content-type": "application/json" },
      body: JSON.stringify({ type: "auth_case" }),
    });
    await res.body?.cancel();
    assert.equal(res.status, status, header);
  }
  assert.equal(await rowCount(t), 3);
});

Deno.test("serve --host with a name that cannot be bound is exit 2, one line", async () => {
  for (const host of ["no such host!", "256.1.1.1", "", "a..b"]) {
    const r = await runMain([
      ...["--dsn", "postgres://postgres@127.0.0.1:1/x"],
      ...["serve", "--host", host, "--port", "0", "--token", TOKEN],
    ]);
    assert.equal(r.code, 2, `${host}: ${r.stderr}`);
    oneLine(r.stderr, host);
    assert.match(r.stderr, /--host|host/, host);
  }
});
