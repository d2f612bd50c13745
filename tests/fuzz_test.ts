/**
 * Issue 10's fuzz test: hundreds of generated bad inputs to the CLI and the HTTP API — wrong
 * types, sizes, encodings, NUL bytes, huge and negative numbers, unknown flags, bad ids,
 * cursors, JSON bodies and durations. For every one: exit 2 (check: 3) or HTTP 4xx, one line
 * or one JSON error, no stack trace, never the DSN's password, and nothing written.
 *
 * The CLI runs in process (`main(args, context)`) except a handful spawned for real exit codes,
 * stdout purity, raw bytes in argv, and the commands that would run forever if a bad value got
 * through (serve, dispatch). Generation is seeded: set FUZZ_SEED to replay a run.
 */
import assert from "node:assert/strict";
import { resolveConfig } from "../lib/config.ts";
import { connect } from "../lib/db.ts";
import { encodeCursor } from "../lib/queries/list_tasks.ts";
import { createApp } from "../server/app.ts";
import {
  type CliResult,
  insertFixture,
  spawnCli,
  TEST_DSN,
  type TestSchema,
  testSchema,
} from "./helpers.ts";
import { runMain } from "./run_main.ts";

const SEED = Number(Deno.env.get("FUZZ_SEED") ?? 10_2026);
const MARKER = "Fz9MarkerPw";
const TOKEN = "fuzz-token-0123";

/** mulberry32: small, seeded, good enough to pick test values. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}
const random = rng(SEED);
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
const sample = <T>(xs: readonly T[], n: number): T[] =>
  [...xs].sort(() => random() - 0.5).slice(0, n);

function hex(length: number): string {
  let s = "";
  while (s.length < length) s += Math.floor(random() * 2 ** 32).toString(16).padStart(8, "0");
  return s.slice(0, length);
}
function unicodeJunk(length: number): string {
  let s = "";
  for (let i = 0; i < length; i++) s += String.fromCodePoint(0x20 + Math.floor(random() * 0x3000));
  return s;
}

/** A DSN for the test server whose password is the marker (trust auth ignores it). */
function markerDsn(): string {
  const url = new URL(TEST_DSN);
  url.password = MARKER;
  return url.toString();
}

// ---- bad values, by kind ------------------------------------------------------------------

const BAD_WHOLE = [
  "-1",
  "1.5",
  "1e3",
  "0x10",
  "abc",
  "",
  "+5",
  "99999999999999999999",
  "٣",
  "1_000",
  "NaN",
  "Infinity",
  "5;",
  "\u0000",
];
const BAD_NUMBER = ["abc", "", "1e400", "NaN", "Infinity", "-Infinity", "1,5", "\u0000"];
const BAD_DURATION = [
  "",
  "10",
  "5 m",
  "-5s",
  "5x",
  "1h 30m",
  "99999999999999999999d",
  "1e400d",
  "NaNs",
  "0.5.5s",
  "∞s",
  "36501d",
  `${"9".repeat(500)}ms`,
];
const BAD_TIMER = [...BAD_DURATION, "25d", "3w4d"];
const BAD_TEXT = [
  "\u0000",
  "a\u0000b",
  "\ud800",
  "x\udfff",
  "ok\u0000\n",
];
const BAD_NAME = [...BAD_TEXT, "n".repeat(256), hex(8192), unicodeJunk(300)];
const BAD_STATUS = ["done", "", ",", "queued,,x", "queued;drop", "running\u0000", "Ω", "all"];
const BAD_ID = [
  "zz",
  "g123",
  "1".repeat(33),
  "%",
  "'; drop table tasks; --",
  "aaaa\u0000",
  "----",
  "aaaa1000-0000-4000-8000-00000000000g",
  "\ud800",
  "abc\ndef",
  hex(64),
  "*",
];
const wrongSortCursor = encodeCursor({
  sort: "created",
  ts: "2024-01-01T00:00:00.000000Z",
  id: "aaaa1000-0000-4000-8000-000000000001",
});
const BAD_CURSOR = [
  "x",
  "%%%",
  "eyJ9",
  btoa(
    JSON.stringify(["u", "2024-13-45T99:99:99.000000Z", "aaaa1000-0000-4000-8000-000000000001"]),
  ),
  btoa(JSON.stringify(["u", "20240-01-01T00:00:00.000000Z", "x"])),
  btoa("[]"),
  btoa("null"),
  wrongSortCursor,
  hex(100_000),
  "\u0000",
];
const BAD_JSON = [
  "{",
  "nope",
  "{'a':1}",
  "[1,]",
  "",
  '"\\u0000"',
  '{"a":"\\u0000"}',
  '{"\\u0000":1}',
  '{"a":1e400}',
  '{"a":"\\ud800"}',
  "[".repeat(200) + "]".repeat(200),
  '{"a":',
];
const BAD_THRESHOLD = ["soon", "15m:5m", "1:2:3", ":", "-1", "99999999999999d", "\u0000", "5m:x"];
const BAD_RATE = ["150%", "2", "-1%", "x%", "%", "1:0.5"];

// ---- CLI ----------------------------------------------------------------------------------

interface CliCase {
  args: string[];
  /** Exit code expected: 2, or 3 for check. */
  code: 2 | 3;
}

function cliCases(table: string): CliCase[] {
  const g = (args: string[], code: 2 | 3 = 2): CliCase => ({
    args: ["--dsn", markerDsn(), "--table", table, ...args],
    code,
  });
  const cases: CliCase[] = [];
  const each = <T>(values: readonly T[], n: number, make: (v: T) => CliCase) =>
    sample(values, n).forEach((v) => cases.push(make(v)));

  each(BAD_WHOLE, 6, (v) => g(["list", "--limit", v]));
  each(BAD_STATUS, 5, (v) => g(["list", "--status", v]));
  each(BAD_NAME, 5, (v) => g(["list", "--type", v]));
  each(BAD_NAME, 4, (v) => g(["list", "--domain", v]));
  each(BAD_TEXT, 3, (v) => g(["list", "--search", v]));
  each(BAD_CURSOR, 8, (v) => g(["list", "--after", v]));
  each(["name", "", "UPDATED;", "id"], 2, (v) => g(["list", "--sort", v]));
  each(["xml", "", "JSON ", "table\u0000"], 2, (v) => g(["list", "--format", v]));
  each(BAD_ID, 8, (v) => g(["show", v]));
  each(BAD_ID, 4, (v) => g(["cancel", v]));
  each(BAD_ID, 4, (v) => g(["retry", v, "--json"]));
  each(BAD_NAME, 4, (v) => g(["cancel", "--status", "queued", "--type", v, "--yes"]));
  each(BAD_DURATION, 3, (v) => g(["retry", "--older-than", v, "--yes"]));
  each(BAD_STATUS, 3, (v) => g(["cancel", "--status", v, "--yes"]));
  each(BAD_NAME, 6, (v) => g(["enqueue", "--type", v]));
  each(BAD_NAME, 4, (v) => g(["enqueue", "--type", "fuzz", "--domain", v]));
  each([...BAD_TEXT, hex(70_000)], 4, (v) => g(["enqueue", "--type", "fuzz", "--description", v]));
  each(BAD_JSON, 8, (v) => g(["enqueue", "--type", "fuzz", "--params", v]));
  each(BAD_NUMBER, 4, (v) => g(["enqueue", "--type", "fuzz", "--drift-score", v]));
  each(
    [...BAD_DURATION, "0000-01-01", "2024-02-30T25:00:00Z", "99999-01-01"],
    6,
    (v) => g(["enqueue", "--type", "fuzz", "--run-after", v]),
  );
  each(BAD_WHOLE, 3, (v) => g(["stats", "--top", v]));
  each(BAD_WHOLE, 3, (v) => g(["stats", "--days", v]));
  each(BAD_DURATION, 4, (v) => g(["stats", "--long-running", v, "--json"]));
  each(BAD_WHOLE, 2, (v) => g(["stats", "--high-attempts", v]));
  each(BAD_THRESHOLD, 4, (v) => g(["check", "--max-lag", v], 3));
  each(BAD_THRESHOLD, 3, (v) => g(["check", "--max-stuck", v], 3));
  each(BAD_RATE, 3, (v) => g(["check", "--max-failure-rate", v], 3));
  each(BAD_THRESHOLD, 2, (v) => g(["check", "--max-queued", v, "--json"], 3));
  each(BAD_DURATION, 3, (v) => g(["check", "--long-running", v], 3));
  each(BAD_DURATION, 4, (v) => g(["purge", "--older-than", v, "--yes"]));
  each(BAD_WHOLE, 2, (v) => g(["purge", "--older-than", "1d", "--batch", v, "--yes"]));
  each(["running", "queued", "nope"], 2, (v) => g(["purge", "--older-than", "1s", "--status", v]));
  each(BAD_DURATION, 3, (v) => g(["requeue-stale", "--older-than", v]));
  each(BAD_WHOLE, 2, (v) => g(["requeue-stale", "--max-attempts", v]));
  each(BAD_WHOLE, 2, (v) => g(["doctor", "--max-attempts", v]));
  // dispatch: only values that fail to parse at all run in process (see spawnedCases).
  const unparsable = ["abc", "", "-1", "1.5", "\u0000"];
  each(unparsable, 2, (v) => g(["dispatch", "--exec", "true", "--once", "--concurrency", v]));
  each(unparsable, 2, (v) => g(["dispatch", "--exec", "true", "--once", "--batch", v]));
  each(
    ["abc", "", "-5s", "5 m"],
    2,
    (v) => g(["dispatch", "--exec", "true", "--once", "--poll", v]),
  );
  each(
    ["2", "-0.1", "abc", ""],
    2,
    (v) => g(["dispatch", "--exec", "true", "--once", "--backoff-jitter", v]),
  );
  each(["xml", ""], 1, (v) => g(["dispatch", "--exec", "true", "--once", "--log-format", v]));
  cases.push(g(["dispatch", "--once"]));
  cases.push(g(["dispatch", "--exec", "true", "--executor-url", "http://127.0.0.1:1", "--once"]));
  cases.push(g(["dispatch", "--executor-url", "not a url", "--once"]));
  each(BAD_TIMER, 4, (v) => g(["--statement-timeout", v, "list"]));
  each(["a.b.c", "x;y", "", "1tasks", "tasks\u0000", '"tasks"'], 4, (v) => ({
    args: ["--dsn", markerDsn(), "--table", v, "list"],
    code: 2,
  }));
  for (
    const args of [
      ["list", "--nope"],
      ["frobnicate"],
      ["--nope", "list"],
      ["show"],
      ["enqueue"],
      ["list", "--limit"],
      ["show", "a", "b"],
      ["list", "--json", "--format", "csv"],
      ["list", "--limit", "0"],
      ["cancel"],
      // ids with a filter are a guarded transition; a filter outside cancel's statuses is not
      ["cancel", "abcd", "--status", "completed"],
      ["purge", "--older-than", "1d", "--dry-run", "--yes"],
    ]
  ) cases.push(g(args));
  cases.push(g(["check", "--nope"], 3));
  // Malformed DSNs, each carrying the marker password.
  for (
    const dsn of [
      `postgres://u:${MARKER}@127.0.0.1:54x3/db`,
      `postgres://u:${MARKER}/x@h/db`,
      `postgres://u:${MARKER}@h:0/db`,
      `postgres://u:${MARKER}@@h/db`,
      `postgres://u:${MARKER}@h/db#frag`,
      `postgres://u:${MARKER}%zz@h/db`,
      `mysql://u:${MARKER}@h/db`,
      "",
    ]
  ) {
    cases.push({ args: ["--dsn", dsn, "list"], code: 2 });
    cases.push({ args: ["--dsn", dsn, "check"], code: 3 });
  }
  return cases;
}

/** Run as real processes: exit codes, stdout purity, argv bytes, and the would-run-forever ones. */
function spawnedCases(table: string): Array<CliCase & { bash?: string }> {
  const g = (args: string[], code: 2 | 3 = 2) => ({
    args: ["--dsn", markerDsn(), "--table", table, ...args],
    code,
  });
  return [
    { args: ["--dsn", `postgres://u:${MARKER}@127.0.0.1:54x3/db`, "list", "--json"], code: 2 },
    { args: ["check", "--max-lag", "soon"], code: 3 },
    g(["list", "--limit", "-1", "--json"]),
    g(["enqueue", "--type", "fuzz", "--params", '{"a":"\\u0000"}', "--json"]),
    g(["--statement-timeout", "99999999999999d", "stats", "--json"]),
    g(["serve", "--port", "99999"]),
    g(["serve", "--port", "0", "--cache-ttl", pick(["30d", "99999999999999d"])]),
    g(["serve", "--port", "0", "--pool", pick(["0", "101", "-1"])]),
    g([
      "serve",
      "--port",
      "0",
      "--host",
      pick(["no such host!", "256.1.1.1", ""]),
      "--token",
      TOKEN,
    ]),
    g(["serve", "--port", "0", "--token", "short"]),
    g(["dispatch", "--exec", "true", "--once", "--timeout", pick(["30d", "1e400d"])]),
    g(["dispatch", "--exec", "true", "--once", "--lease", "999999999999d"]),
    g(["dispatch", "--exec", "true", "--once", "--poll", "30d"]),
    g(["dispatch", "--exec", "true", "--once", "--lease", "0"]),
    g(["dispatch", "--exec", "true", "--once", "--metrics-port", "70000"]),
    // Raw bytes that are not UTF-8 in argv (only a shell can pass them).
    { ...g(["show"]), bash: "\\xff\\xfe" },
    { ...g(["list", "--limit"]), bash: "\\xc3\\x28" },
  ];
}

interface Outcome extends CliResult {
  /** The command started its long-running work (a bad value got through). */
  started?: boolean;
}

async function runSpawned(c: CliCase & { bash?: string }): Promise<Outcome> {
  let args = c.args;
  if (c.bash) {
    // bash turns $'\xff' into the raw byte and execs Deno with it.
    const quoted = c.args.map((a) => `'${a.replaceAll("'", `'\\''`)}'`).join(" ");
    args = [];
    const main = new URL("../main.ts", import.meta.url).pathname;
    const cmd = new Deno.Command("bash", {
      args: [
        "-c",
        `exec "${Deno.execPath()}" run --allow-all --quiet '${main}' ${quoted} $'${c.bash}'`,
      ],
      env: {
        PATH: Deno.env.get("PATH") ?? "",
        HOME: Deno.env.get("HOME") ?? "/tmp",
        NO_COLOR: "1",
      },
      clearEnv: true,
      stdin: "null",
    });
    const out = await cmd.output();
    const dec = new TextDecoder();
    return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
  }
  const run = spawnCli(args);
  // Either it exits (refusing the value), or it prints that it started: then it is stopped and
  // the case fails. No timing involved.
  let started = false;
  let exited = false;
  const watch = (async () => {
    while (!/listening on|\] Dispatcher .* started/.test(run.stdout())) {
      if (exited) return;
      await new Promise((r) => setTimeout(r, 20));
    }
    started = true;
    run.child.kill("SIGTERM");
  })();
  const code = await run.exit();
  exited = true;
  await watch;
  return { code, stdout: run.stdout(), stderr: run.stderr(), started };
}

function cliProblems(c: CliCase, r: Outcome): string[] {
  const problems: string[] = [];
  const all = r.stdout + r.stderr;
  if (r.started) problems.push("started instead of refusing");
  if (r.code !== c.code) problems.push(`exit ${r.code}, expected ${c.code}`);
  if (all.includes(MARKER)) problems.push("the password is in the output");
  if (/\n\s+at |Uncaught|PostgresError|unexpected failure/.test(all)) {
    problems.push("a stack trace");
  }
  const lines = (s: string) => s === "" ? 0 : s.replace(/\n$/, "").split("\n").length;
  if (lines(r.stderr) > 1) problems.push(`stderr has ${lines(r.stderr)} lines`);
  if (c.code === 2) {
    if (r.stdout !== "") problems.push("stdout is not empty");
    if (!/^error: /.test(r.stderr)) problems.push("stderr is not an error line");
  } else {
    const jsonOut = c.args.includes("--json");
    if (jsonOut) {
      try {
        if (JSON.parse(r.stdout).state !== "UNKNOWN") problems.push("JSON state is not UNKNOWN");
      } catch {
        problems.push("stdout is not one JSON document");
      }
    } else if (lines(r.stdout) !== 1 || !r.stdout.startsWith("SEEDTASK UNKNOWN - ")) {
      problems.push("stdout is not one UNKNOWN line");
    }
  }
  return problems;
}

/** Row count and a checksum of every column of every row. */
async function fingerprint(t: TestSchema): Promise<string> {
  const [row] = await t.sql`
    select count(*)::int as n,
           md5(coalesce(string_agg(x::text, '|' order by x.id), '')) as sum
    from ${t.sql(t.table)} x`;
  return `${row!.n} rows, md5 ${row!.sum}`;
}

function show(args: string[]): string {
  return JSON.stringify(args.slice(args[0] === "--dsn" && args[2] === "--table" ? 4 : 0))
    .slice(0, 160);
}

Deno.test(`the CLI refuses generated bad input: exit 2/3, one line, no password, nothing written (seed ${SEED})`, async () => {
  await using t = await testSchema();
  await insertFixture(t);
  const before = await fingerprint(t);
  const cases = cliCases(t.table);
  assert.ok(cases.length >= 150, `${cases.length} cases`);
  const failures: string[] = [];
  for (const c of cases) {
    const r = await runMain(c.args, { env: { PG_DSN: markerDsn() } });
    const problems = cliProblems(c, r);
    if (problems.length > 0) {
      failures.push(
        `${show(c.args)}: ${problems.join("; ")}\n    ${(r.stdout + r.stderr).slice(0, 300)}`,
      );
    }
  }
  const after = await fingerprint(t);
  assert.deepEqual(
    failures,
    [],
    `${failures.length} of ${cases.length} cases:\n${failures.join("\n")}`,
  );
  assert.equal(after, before, "the table changed");
});

Deno.test(`spawned seedtask processes refuse bad input with the right exit code and clean stdout (seed ${SEED})`, async () => {
  await using t = await testSchema();
  await insertFixture(t);
  const before = await fingerprint(t);
  const cases = spawnedCases(t.table);
  const failures: string[] = [];
  // Two at a time: the machine is shared.
  for (let i = 0; i < cases.length; i += 2) {
    const batch = cases.slice(i, i + 2);
    const results = await Promise.all(batch.map(runSpawned));
    batch.forEach((c, j) => {
      const problems = cliProblems(c, results[j]!);
      if (problems.length > 0) {
        failures.push(
          `${show(c.args)}${c.bash ? ` + ${c.bash}` : ""}: ${problems.join("; ")}\n    ${
            (results[j]!.stdout + results[j]!.stderr).slice(0, 300)
          }`,
        );
      }
    });
  }
  const after = await fingerprint(t);
  assert.deepEqual(
    failures,
    [],
    `${failures.length} of ${cases.length} cases:\n${failures.join("\n")}`,
  );
  assert.equal(after, before, "the table changed");
});

// ---- HTTP ---------------------------------------------------------------------------------

interface HttpCase {
  method: "GET" | "POST" | "PUT" | "DELETE";
  path: string;
  body?: string | Uint8Array<ArrayBuffer>;
  auth?: string | null;
}

function httpCases(): HttpCase[] {
  const cases: HttpCase[] = [];
  // encodeURIComponent refuses lone surrogates; a client can still send their bytes
  // (ED A0 80 for U+D800), which are not UTF-8.
  const q = (v: string) =>
    [...v].map((ch) => {
      const unit = ch.charCodeAt(0);
      if (ch.length === 1 && unit >= 0xd800 && unit <= 0xdfff) {
        return [0xe0 | (unit >> 12), 0x80 | ((unit >> 6) & 0x3f), 0x80 | (unit & 0x3f)]
          .map((b) => `%${b.toString(16).toUpperCase()}`).join("");
      }
      return encodeURIComponent(ch);
    }).join("");
  const get = (path: string) => cases.push({ method: "GET", path });
  const post = (path: string, body?: string | Uint8Array<ArrayBuffer>, auth?: string | null) =>
    cases.push({ method: "POST", path, body, auth });
  const each = <T>(values: readonly T[], n: number, make: (v: T) => void) =>
    sample(values, n).forEach(make);

  each([...BAD_WHOLE, "0", "1001"], 8, (v) => get(`/tasks?limit=${q(v)}`));
  each(BAD_STATUS, 5, (v) => get(`/tasks?status=${q(v)}`));
  each(["name", "", "id", "UPDATED"], 2, (v) => get(`/tasks?sort=${q(v)}`));
  each(BAD_CURSOR, 8, (v) => get(`/tasks?after=${q(v)}`));
  each(BAD_NAME, 6, (v) => get(`/tasks?type=${q(v)}`));
  each(BAD_NAME, 4, (v) => get(`/tasks?domain=${q(v)}`));
  each(BAD_TEXT, 3, (v) => get(`/tasks?search=${q(v)}`));
  each(["maybe", "2", "yes "], 2, (v) => get(`/tasks?total=${q(v)}`));
  for (
    const raw of [
      "nope=1",
      "limit=1&limit=2",
      "type=%FF%FE",
      "search=%C3%28",
      "domain=%E0%80%80",
      "type=%",
      "limit=%zz",
    ]
  ) get(`/tasks?${raw}`);
  each(BAD_ID, 8, (v) => get(`/tasks/${q(v)}`));
  get("/tasks/%FF%FE");
  each(BAD_WHOLE, 3, (v) => get(`/stats?top=${q(v)}`));
  each([...BAD_WHOLE, "3651"], 3, (v) => get(`/stats?days=${q(v)}`));
  each(BAD_WHOLE, 2, (v) => get(`/stats?high_attempts=${q(v)}`));
  each(BAD_DURATION, 5, (v) => get(`/stats?long_running=${q(v)}`));
  each(["maybe", "-1"], 1, (v) => get(`/stats?exact=${q(v)}`));
  get("/stats?nope=1");
  each(BAD_THRESHOLD, 4, (v) => get(`/check?max_lag=${q(v)}`));
  each(BAD_THRESHOLD, 2, (v) => get(`/check?max_stuck=${q(v)}`));
  each(BAD_RATE, 3, (v) => get(`/check?max_failure_rate=${q(v)}`));
  each(BAD_THRESHOLD, 2, (v) => get(`/check?max_queued=${q(v)}`));
  each(BAD_DURATION, 3, (v) => get(`/check?long_running=${q(v)}`));
  get("/check?nope=1");

  const task = (fields: Record<string, unknown>) => JSON.stringify({ type: "fuzz", ...fields });
  each(BAD_JSON.filter((j) => j !== ""), 6, (v) => post("/tasks", v));
  for (
    const body of [
      "[]",
      "null",
      "5",
      '"str"',
      "{}",
      '{"type":5}',
      '{"type":""}',
      '{"type":"  "}',
      '{"type":null}',
      '{"type":"x","extra":1}',
      '{"type":"x","drift_score":1e400}',
      '{"type":"x","drift_score":"abc"}',
      '{"type":"x","status":"running"}',
      '{"type":"x","description":5}',
      '{"type":"x","run_after":5}',
      '{"type":"x","__proto__":{"a":1}}',
    ]
  ) post("/tasks", body);
  each(BAD_NAME, 6, (v) => post("/tasks", JSON.stringify({ type: v })));
  each(BAD_NAME, 4, (v) => post("/tasks", task({ domain: v })));
  each([...BAD_TEXT, hex(70_000)], 4, (v) => post("/tasks", task({ description: v })));
  each(
    BAD_JSON.filter((j) => j.startsWith("{") && !j.endsWith(":")),
    4,
    (v) => post("/tasks", `{"type":"fuzz","params":${v}}`),
  );
  post("/tasks", task({ params: JSON.parse("[".repeat(150) + "]".repeat(150)) }));
  each(
    [...BAD_DURATION, "0000-01-01", "2024-02-30T25:00:00Z"],
    5,
    (v) => post("/tasks", task({ run_after: v })),
  );
  post(
    "/tasks",
    new Uint8Array([0x7b, 0x22, 0x74, 0x79, 0x70, 0x65, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0x22, 0x7d]),
  );
  post("/tasks", new Uint8Array([0xc3, 0x28]));
  post("/tasks", `{"type":"fuzz","params":"${"x".repeat(1024 * 1024 + 10)}"}`);
  each(BAD_ID, 5, (v) => post(`/tasks/${q(v)}/cancel`));
  each(BAD_ID, 4, (v) => post(`/tasks/${q(v)}/retry`));
  for (const body of ['{"force":"yes"}', "nope", '{"force":true,"x":1}', "[]"]) {
    post("/tasks/aaaa1000-0000-4000-8000-000000000001/cancel", body);
  }
  post("/tasks/00000000-0000-4000-8000-000000000000/retry");
  for (
    const auth of [null, "Bearer wrong-token-xx", `Basic ${TOKEN}`, "Bearer", `Bearer ${MARKER}`]
  ) {
    post("/tasks", task({}), auth);
  }
  cases.push({ method: "PUT", path: "/tasks", body: task({}) });
  cases.push({ method: "DELETE", path: "/tasks/aaaa1000-0000-4000-8000-000000000001" });
  get("/nope");
  get("/tasks/aaaa1000-0000-4000-8000-000000000001/nope");
  return cases;
}

Deno.test(`the HTTP API answers generated bad input with 4xx and one JSON error, writing nothing (seed ${SEED})`, async () => {
  await using t = await testSchema();
  await insertFixture(t);
  const db = connect(resolveConfig({ dsn: markerDsn(), table: t.table }, {}));
  try {
    const logs: string[] = [];
    const app = createApp({ db, allowWrite: true, token: TOKEN, log: (l) => logs.push(l) });
    const before = await fingerprint(t);
    const cases = httpCases();
    assert.ok(cases.length >= 150, `${cases.length} cases`);
    const failures: string[] = [];
    for (const c of cases) {
      const headers: Record<string, string> = { "content-type": "application/json" };
      const auth = c.auth === undefined ? `Bearer ${TOKEN}` : c.auth;
      if (auth !== null) headers.authorization = auth;
      const res = await app.request(c.path, {
        method: c.method,
        headers,
        body: c.method === "GET" ? undefined : c.body,
      });
      const text = await res.text();
      const problems: string[] = [];
      if (res.status < 400 || res.status > 499) problems.push(`status ${res.status}`);
      if (text.includes(MARKER) && c.auth !== `Bearer ${MARKER}`) problems.push("the password");
      if (/\n\s+at |PostgresError/.test(text)) problems.push("a stack trace");
      try {
        const body = JSON.parse(text);
        const e = body?.error;
        if (typeof e?.code !== "string" || typeof e?.message !== "string") {
          problems.push("not a JSON error");
        } else if (e.message.includes("\n")) problems.push("a message of several lines");
      } catch {
        problems.push("not JSON");
      }
      if (problems.length > 0) {
        failures.push(
          `${c.method} ${c.path.slice(0, 120)} ${
            typeof c.body === "string" ? c.body.slice(0, 80) : c.body ? "<bytes>" : ""
          }: ${problems.join("; ")}\n    ${text.slice(0, 300)}`,
        );
      }
    }
    const after = await fingerprint(t);
    assert.deepEqual(
      failures,
      [],
      `${failures.length} of ${cases.length} cases:\n${failures.join("\n")}`,
    );
    assert.equal(after, before, "the table changed");
    assert.ok(!logs.join("\n").includes(MARKER), "the password is in the log");
  } finally {
    await db.close();
  }
});
