/**
 * Issue 13 item 1: failures grouped by cause. The fingerprint rule (one list of regular
 * expressions, applied by PostgreSQL and by fingerprintError alike), the groups it makes —
 * including texts that must NOT merge — the bounded sample, and group actions that touch
 * exactly the group, from the CLI and over HTTP.
 */
import assert from "node:assert/strict";
import { getFailureGroups } from "../lib/queries/failure_groups.ts";
import {
  failureGroupId,
  fingerprintError,
  fingerprintExpression,
} from "../lib/queries/fingerprint.ts";
import { createApp } from "../server/app.ts";
import { IDS, insertFixture, type TestSchema, testSchema } from "./helpers.ts";
import { runMain } from "./run_main.ts";

/** Error texts and the fingerprint each must get. */
const FINGERPRINTS: Array<[string, string]> = [
  ["connection refused to 10.0.0.5:5432", "connection refused to <ip>"],
  ["Max attempts (3) exceeded: connection refused to 10.0.0.17:5432", "connection refused to <ip>"],
  [
    "task 1a2b3c4d-1111-4222-8333-444455556666 not found at 2026-11-27T23:01:02.123Z",
    "task <uuid> not found at <ts>",
  ],
  [
    "task 9F2B3C4D-1111-4222-8333-444455556666 not found at 2026-01-02 03:04:05+00",
    "task <uuid> not found at <ts>",
  ],
  [
    "HTTP 503 from https://api.example.com/v1/users/123",
    "HTTP 503 from https://api.example.com/v1/users/<n>",
  ],
  [
    "HTTP 429 from https://api.example.com/v1/users/77",
    "HTTP 429 from https://api.example.com/v1/users/<n>",
  ],
  ["status=500 from upstream", "status=500 from upstream"],
  ["file /var/data/x_1.json missing", "file <path> missing"],
  ["file /srv/other/y.json missing", "file <path> missing"],
  [`can't parse 'abc' in column "foo"`, `can't parse '<str>' in column "<str>"`],
  [`can't parse 'xyz 12' in column "bar"`, `can't parse '<str>' in column "<str>"`],
  ["timeout after 30012ms  (attempt 2)", "timeout after <n>ms (attempt <n>)"],
  ["timeout after 5ms (attempt 3)", "timeout after <n>ms (attempt <n>)"],
  ["object deadbeef1234 locked by 0xff12ab", "object <hex> locked by <hex>"],
  ["utf8 error in s3 bucket v1", "utf8 error in s3 bucket v1"],
  ["utf16 error in s3 bucket v2", "utf16 error in s3 bucket v2"],
  ["ratio 3.14 too high\nTraceback line 55", "ratio <n> too high"],
  ["  \t spaced   out\t", "spaced out"],
  ["", ""],
];

/**
 * Errors of one task type and the group each belongs to: equal letters merge, different
 * letters must not.
 */
const GROUPING: Array<[string, string]> = [
  ["connection refused to 10.0.0.5:5432", "A"],
  ["connection refused to 192.168.1.20:6379", "A"],
  ["Max attempts (3) exceeded: connection refused to 10.1.1.1:5432", "A"],
  ["connection reset by peer", "B"], // refused and reset are different causes
  ["HTTP 503 from https://api.example.com/v1/jobs/1", "C"],
  ["HTTP 503 from https://api.example.com/v1/jobs/2", "C"],
  ["HTTP 429 from https://api.example.com/v1/jobs/3", "D"], // rate limited, not unavailable
  ["HTTP 503 from https://other.example.com/v1/jobs/3", "E"], // another service
  ["api v1 rejected the token", "F"],
  ["api v2 rejected the token", "G"], // versions are not numbers to erase
  ["worker db1 unreachable", "H"],
  ["worker db2 unreachable", "I"], // named hosts differ
  ["Key (id)=(42) already exists", "J"],
  ["Key (id)=(7) already exists", "J"],
  ["order 12345678901 not found", "L"], // a long number is a number, not a hex id
  ["order 42 not found", "L"],
  ["blob 5f3e9a2c01 missing", "M"],
  ["blob 0x1f missing", "M"],
  ["Connection refused to 10.0.0.5:5432", "K"], // case is kept: another message
];

Deno.test("fingerprintError() and the database's fingerprint agree on every text", async () => {
  await using t = await testSchema();
  const long = [
    `id ${"7".repeat(1500)} and more`, // cut after 1,000 characters of the first line
    `${"é".repeat(999)}1234 5`, // characters, not bytes
    `${"🙂".repeat(600)} 42`, // beyond the Basic Multilingual Plane
  ];
  const texts = [
    ...FINGERPRINTS.map(([text]) => text),
    ...GROUPING.map(([text]) => text),
    ...long,
    "café1 failed after 2s",
    "\u00a0nbsp\u00a0 kept\u00a0",
    "tab\tand\r\fform feed\vvertical",
    null,
  ];
  const rows = await t.sql.unsafe(
    `select t, ${fingerprintExpression("t")} as fp from unnest($1::text[]) with ordinality u(t, n)
     order by n`,
    [texts as string[]],
  );
  assert.equal(rows.length, texts.length);
  rows.forEach((r, i) => {
    assert.equal(
      r.fp,
      fingerprintError(texts[i]),
      `SQL and TS differ on ${JSON.stringify(texts[i])}`,
    );
  });
  for (const [text, expected] of FINGERPRINTS) {
    assert.equal(fingerprintError(text), expected, JSON.stringify(text));
  }
  assert.equal(fingerprintError("x".repeat(1000)).length, 300, "cut after 300 characters");
  assert.equal(fingerprintError(long[0]), "id <n>");
  assert.equal(fingerprintError(long[1]), "é".repeat(300));
  assert.equal(fingerprintError("café1 failed after 2s"), "café<n> failed after <n>s");
  assert.equal(fingerprintError("\u00a0nbsp\u00a0 kept\u00a0"), "\u00a0nbsp\u00a0 kept\u00a0");
});

async function insertFailures(
  t: TestSchema,
  rows: Array<
    {
      type?: string;
      error: string;
      status?: string;
      domain?: string | null;
      minutesAgo?: number;
      attempts?: number;
    }
  >,
): Promise<string[]> {
  const ids: string[] = [];
  for (const r of rows) {
    const [row] = await t.sql`
      insert into ${t.sql(t.table)} (type, status, error, domain, attempts, updated_at)
      values (${r.type ?? "graph_embed"}, ${r.status ?? "failed"}, ${r.error}, ${r.domain ?? null},
        ${r.attempts ?? 3}, now() - ${r.minutesAgo ?? 5} * interval '1 minute')
      returning id`;
    ids.push(row!.id);
  }
  return ids;
}

Deno.test("getFailureGroups() merges exactly the errors of one cause, per task type", async () => {
  await using t = await testSchema();
  const ids = await insertFailures(t, GROUPING.map(([error]) => ({ error })));
  // The same error in another type is another group.
  const [otherType] = await insertFailures(t, [{ type: "fact_search", error: GROUPING[0]![0] }]);
  const result = await getFailureGroups(t.db, {});
  assert.equal(result.sampled, false);
  assert.equal(result.total, GROUPING.length + 1);
  const expected = new Map<string, string[]>();
  GROUPING.forEach(([, key], i) => expected.set(key, [...(expected.get(key) ?? []), ids[i]!]));
  const actual = result.groups.filter((g) => g.type === "graph_embed")
    .map((g) => g.sample_ids.toSorted());
  assert.deepEqual(
    actual.toSorted((a, b) => a[0]!.localeCompare(b[0]!)),
    [...expected.values()].map((v) => v.toSorted()).toSorted((a, b) => a[0]!.localeCompare(b[0]!)),
  );
  const other = result.groups.find((g) => g.type === "fact_search")!;
  assert.deepEqual(other.sample_ids, [otherType]);
  assert.equal(result.group_count, expected.size + 1);
  // Each group's id is the fingerprint's, as the library computes it.
  for (const g of result.groups) assert.equal(g.id, failureGroupId(g.type, g.fingerprint));
});

Deno.test("getFailureGroups() reports counts, share, trend, domains, attempts and an example", async () => {
  await using t = await testSchema();
  const now = new Date();
  await insertFailures(t, [
    { error: "connection refused to 10.0.0.1:5432", domain: "user_1", minutesAgo: 10, attempts: 3 },
    {
      error: "connection refused to 10.0.0.2:5432",
      domain: "user_1",
      minutesAgo: 20,
      attempts: 1,
      status: "retry",
    },
    { error: "connection refused to 10.0.0.3:5432", domain: "user_2", minutesAgo: 70, attempts: 3 },
    {
      error: "connection refused to 10.0.0.4:5432\nat db.ts:12",
      domain: null,
      minutesAgo: 5,
      attempts: 2,
    },
    { error: "disk full", domain: "user_3", minutesAgo: 90 },
    { error: "too old to count", minutesAgo: 60 * 30 },
    { error: "completed tasks are not failures", status: "completed" },
  ]);
  const r = await getFailureGroups(t.db, { now });
  assert.equal(r.total, 5);
  assert.equal(r.group_count, 2);
  const [g, disk] = r.groups;
  assert.equal(g!.fingerprint, "connection refused to <ip>");
  assert.equal(g!.count, 4);
  assert.equal(g!.share, 4 / 5);
  assert.deepEqual(g!.statuses, { failed: 3, retry: 1 });
  assert.deepEqual(g!.trend, { this_hour: 3, previous_hour: 1, complete: true });
  assert.deepEqual(g!.domains, [
    { domain: "user_1", count: 2 },
    { domain: "user_2", count: 1 },
    { domain: null, count: 1 },
  ]);
  assert.deepEqual(g!.attempts, { min: 1, max: 3 });
  assert.equal(g!.sample_ids.length, 4);
  assert.equal(
    g!.example_error,
    "connection refused to 10.0.0.4:5432\nat db.ts:12",
    "the newest, whole",
  );
  assert.equal(disk!.fingerprint, "disk full");
  assert.deepEqual(disk!.trend, { this_hour: 0, previous_hour: 1, complete: true });

  const narrow = await getFailureGroups(t.db, { now, domain: "user_1", statuses: ["retry"] });
  assert.equal(narrow.total, 1);
  assert.deepEqual(narrow.filter, { statuses: ["retry"], type: null, domain: "user_1" });
  const lastHour = await getFailureGroups(t.db, { now, sinceMs: 3_600_000 });
  assert.equal(lastHour.total, 3);
});

Deno.test("getFailureGroups() groups only the newest N of a large window, says so, and --exact reads all", async () => {
  await using t = await testSchema();
  await t.sql`
    insert into ${t.sql(t.table)} (type, status, error, updated_at)
    select 'graph_embed', 'failed',
      case when i % 3 = 0 then 'disk full on /dev/sd' || i else 'timeout after ' || i || 'ms' end,
      now() - i * interval '1 minute'
    from generate_series(1, 60) i`;
  const sampled = await getFailureGroups(t.db, { sample: 15 });
  assert.equal(sampled.sampled, true);
  assert.equal(sampled.total, 60);
  assert.equal(sampled.analyzed, 15);
  assert.equal(sampled.sample_limit, 15);
  assert.equal(sampled.groups.reduce((n, g) => n + g.count, 0), 15);
  const timeouts = sampled.groups.find((g) => g.fingerprint === "timeout after <n>ms")!;
  assert.equal(timeouts.count, 10, "the newest 15 minutes: 10 timeouts, 5 disk full");
  assert.equal(timeouts.estimated_total, 40);
  assert.equal(timeouts.trend.complete, false, "15 minutes cannot show the hour before");
  const exact = await getFailureGroups(t.db, { sample: 15, exact: true });
  assert.equal(exact.sampled, false);
  assert.equal(exact.analyzed, 60);
  assert.equal(exact.sample_limit, null);
  assert.equal(exact.groups.find((g) => g.fingerprint === "timeout after <n>ms")!.count, 40);
  // Under the limit nothing is marked.
  assert.equal((await getFailureGroups(t.db, { sample: 60 })).sampled, false);

  const cli = await runMain([...t.args, "failures", "--sample", "15", "--top", "1"]);
  assert.equal(cli.code, 0, cli.stderr);
  assert.match(cli.stdout, /^60 failures in the last 24h \(failed, retry\), in 2 groups\.$/m);
  assert.match(cli.stdout, /^SAMPLE: grouped the newest 15 /m);
  assert.match(cli.stdout, /10 failures \(67%, ~40 in all\)/);
  assert.match(cli.stdout, /^… and 1 more group \(--top to see more\)$/m);
});

/** Every row of the table, to compare what an action left alone. */
async function snapshot(t: TestSchema): Promise<Map<string, string>> {
  const rows = await t.sql`select * from ${t.sql(t.table)} order by id`;
  return new Map(rows.map((r) => [r.id as string, JSON.stringify(r)]));
}

Deno.test("retry --group and cancel --group touch exactly the group: dry run first, then --yes", async () => {
  await using t = await testSchema();
  await insertFixture(t);
  const inGroup = await insertFailures(t, [
    { error: "connection refused to 10.0.0.1:5432" },
    {
      error: "Max attempts (3) exceeded: connection refused to 10.0.0.2:5432",
      minutesAgo: 60 * 24 * 3,
    },
    { error: "connection refused to 10.0.0.3:5432", status: "cancelled" },
  ]);
  const retrying = await insertFailures(t, [
    { error: "connection refused to 10.0.0.4:5432", status: "retry", attempts: 1 },
  ]);
  await insertFailures(t, [
    { error: "connection refused to 10.0.0.5:5432", type: "fact_search" }, // another type
    { error: "connection reset by peer" }, // another cause
    { error: "connection refused to 10.0.0.6:5432", status: "completed" }, // not a failure
  ]);
  const group = failureGroupId("graph_embed", "connection refused to <ip>");
  const listed = await getFailureGroups(t.db, {});
  assert.ok(listed.groups.some((g) => g.id === group));

  const before = await snapshot(t);
  const dry = await runMain([...t.args, "retry", "--group", group, "--json"]);
  assert.equal(dry.code, 0, dry.stderr);
  const preview = JSON.parse(dry.stdout);
  assert.equal(preview.dry_run, true);
  assert.equal(preview.count, 3);
  assert.deepEqual(await snapshot(t), before, "a dry run changes nothing");

  const applied = await runMain([
    ...t.args,
    "retry",
    "--group",
    group.toUpperCase(),
    "--yes",
    "--json",
  ]);
  assert.equal(applied.code, 0, applied.stderr);
  const changed = JSON.parse(applied.stdout).changed.map((x: { id: string }) => x.id);
  assert.deepEqual(changed.toSorted(), inGroup.toSorted());
  const after = await snapshot(t);
  for (const [id, row] of before) {
    if (inGroup.includes(id)) {
      assert.equal(JSON.parse(after.get(id)!).status, "queued");
    } else assert.equal(after.get(id), row, `task ${id} is not in the group and is untouched`);
  }

  // cancel --group stops the group's retries: only its tasks waiting in retry.
  const cancel = await runMain([...t.args, "cancel", "--group", group, "--yes", "--json"]);
  assert.equal(cancel.code, 0, cancel.stderr);
  assert.deepEqual(JSON.parse(cancel.stdout).changed.map((x: { id: string }) => x.id), retrying);

  for (const bad of ["zz", "abc", "ba5e7e9727dbx", ""]) {
    const r = await runMain([...t.args, "retry", "--group", bad]);
    assert.equal(r.code, 2, bad);
    assert.match(r.stderr, /^error: invalid --group .*12-character id of a failure group/);
  }
  // ids with a group change only those of the group: eeee1000 is not in it, so it is refused
  const outside = await t.sql`select * from ${t.sql(t.table)} where id = ${IDS.failedRecent}`;
  const mixed = await runMain([...t.args, "retry", "--group", group, "eeee1000"]);
  assert.equal(mixed.code, 1, mixed.stderr);
  assert.deepEqual(
    await t.sql`select * from ${t.sql(t.table)} where id = ${IDS.failedRecent}`,
    outside,
  );
});

Deno.test("GET /failures answers as the CLI's --json; group actions need --allow-write and dry-run first", async () => {
  await using t = await testSchema();
  await insertFixture(t);
  const ids = await insertFailures(t, [
    { error: "disk full on /dev/sda1" },
    { error: "disk full on /dev/sdb2" },
  ]);
  const group = failureGroupId("graph_embed", "disk full on <path>");
  const app = createApp({ db: t.db, allowWrite: true, token: "insight-token" });
  const res = await app.request("/failures?since=3d&top=3");
  assert.equal(res.status, 200);
  const body = await res.json();
  const cli = JSON.parse(
    (await runMain([...t.args, "failures", "--since", "3d", "--top", "3", "--json"])).stdout,
  );
  const strip = (x: { generated_at: string; window: unknown }) => ({
    ...x,
    generated_at: 0,
    window: 0,
  });
  assert.deepEqual(strip(body), strip(cli));
  assert.equal(body.groups[0].id, group);

  const post = (path: string, body?: unknown, token = "insight-token") =>
    app.request(path, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  const before = await snapshot(t);
  const dry = await post(`/failures/${group}/retry`);
  assert.equal(dry.status, 200);
  assert.deepEqual(
    { ...(await dry.json()), sample: [] },
    { dry_run: true, count: 2, sample: [] },
  );
  assert.deepEqual(await snapshot(t), before);
  assert.equal((await post(`/failures/${group}/retry`, { dry_run: false }, "wrong")).status, 401);
  assert.equal((await post(`/failures/nope/retry`, { dry_run: false })).status, 400);
  assert.equal(
    (await post(`/failures/${group}/retry`, { dry_run: false, force: true })).status,
    400,
  );
  const done = await post(`/failures/${group}/retry`, { dry_run: false });
  assert.equal(done.status, 200);
  const answer = await done.json();
  assert.equal(answer.dry_run, false);
  assert.deepEqual(answer.changed.map((x: { id: string }) => x.id).toSorted(), ids.toSorted());

  const readOnly = createApp({ db: t.db, token: "insight-token" });
  const refused = await readOnly.request(`/failures/${group}/cancel`, {
    method: "POST",
    headers: { authorization: "Bearer insight-token" },
  });
  assert.equal(refused.status, 403);
  const badQuery = await app.request("/failures?status=broken");
  assert.equal(badQuery.status, 400);
  assert.match((await badQuery.json()).error.message, /Unknown status "broken"/);
});

Deno.test("seedtask failures: bad flags exit 2 and change nothing; an empty window says so", async () => {
  await using t = await testSchema();
  for (
    const args of [
      ["--since", "soon"],
      ["--since", "0s"],
      ["--top", "0"],
      ["--sample", "-1"],
      ["--status", "exploded"],
      ["--type", "a\u0000b"],
    ]
  ) {
    const r = await runMain([...t.args, "failures", ...args]);
    assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
    assert.equal(r.stdout, "");
    assert.match(r.stderr, /^error: (invalid|unknown) /i);
  }
  const empty = await runMain([...t.args, "failures"]);
  assert.equal(empty.code, 0);
  assert.equal(empty.stdout, "No failures in the last 24h (failed, retry).\n");
});
