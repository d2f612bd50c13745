import assert from "node:assert/strict";
import { runDoctor } from "../lib/table/doctor.ts";
import { describeDsn } from "../lib/config.ts";
import { IDS, insertFixture, runCli, TEST_DSN, testSchema } from "./helpers.ts";

Deno.test("seedtask doctor passes on a migrated table with consistent data", async () => {
  await using t = await testSchema();
  await t.sql`insert into ${
    t.sql(t.table)
  } (type, status) values ('a', 'queued'), ('b', 'completed')`;
  const r = await runCli([...t.args, "doctor"]);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(
    r.stdout,
    new RegExp(`^ok {3}connected to ${describeDsn(TEST_DSN).replaceAll(".", "\\.")}$`, "m"),
  );
  assert.match(r.stdout, /^ok {3}PostgreSQL 1\d/m);
  assert.match(r.stdout, /^ok {3}all recommended indexes are present$/m);
  assert.match(r.stdout, /^No problems found\.$/m);
  const json = await runCli([...t.args, "doctor", "--json"]);
  const doc = JSON.parse(json.stdout);
  assert.equal(doc.ok, true);
  assert.equal(doc.problems, 0);
  assert.ok(doc.checks.every((c: { ok: boolean }) => c.ok));
});

Deno.test("runDoctor() names each broken data invariant with counts and examples", async () => {
  await using t = await testSchema();
  await insertFixture(t);
  const tbl = t.sql(t.table);
  await t.sql`update ${tbl} set locked_by = null where id = ${IDS.runningHealthy}`;
  await t.sql`update ${tbl} set run_after = null where status = 'retry'`;
  await t.sql`update ${tbl} set error = 'oops' where id = ${IDS.completed3h}`;
  await t.sql`update ${tbl} set attempts = -1 where id = ${IDS.cancelled1}`;
  const report = await runDoctor(t.db, { maxAttempts: 3 });
  assert.equal(report.ok, false);
  const failed = Object.fromEntries(
    report.checks.filter((c) => !c.ok).map((c) => [c.name, [c.count, c.examples?.length]]),
  );
  assert.deepEqual(failed, {
    "invariant.running_without_locked_by": [1, 1],
    "invariant.retry_without_run_after": [2, 2],
    "invariant.completed_with_error": [1, 1],
    "invariant.negative_attempts": [1, 1],
    "invariant.expired_lease": [1, 1], // runningStuck: its owner disp-dead is gone
    "invariant.attempts_above_max": [1, 1], // failed2d has 5 attempts
  });
  assert.equal(report.problems, 6);

  const r = await runCli([...t.args, "doctor"]);
  assert.equal(r.code, 1);
  assert.match(r.stdout, /^FAIL 2 retry tasks without run_after \(no backoff recorded\)$/m);
  assert.match(r.stdout, new RegExp(`^ {5}e\\.g\\. ${IDS.runningHealthy}$`, "m"));
  assert.match(r.stdout, /^FAIL 1 tasks with more attempts than the maximum \(3\)$/m);
  assert.match(r.stdout, /^6 problems found\.$/m);
  const lenient = await runCli([...t.args, "doctor", "--max-attempts", "5", "--json"]);
  assert.equal(JSON.parse(lenient.stdout).problems, 5);
});

Deno.test("seedtask doctor reports missing columns, indexes, trigger and a missing table", async () => {
  await using t = await testSchema({ migrated: false });
  await t.sql.unsafe(`
    create type "${t.schema}".taskstatus as enum ('created', 'queued', 'running', 'completed', 'failed');
    create table "${t.schema}".tasks (id uuid primary key, status "${t.schema}".taskstatus not null,
      type text not null, description text, domain text, drift_score float8 not null default 0,
      attempts int not null default 0, locked_by text, locked_at timestamp, run_after timestamptz,
      params jsonb not null default '{}', result jsonb, error text,
      created_at timestamptz not null default now(), updated_at timestamptz not null default now());
  `).simple();
  const r = await runCli([...t.args, "doctor"]);
  assert.equal(r.code, 1);
  assert.match(
    r.stdout,
    /^FAIL column locked_at is timestamp without time zone, expected timestamp with time zone$/m,
  );
  assert.match(
    r.stdout,
    /^FAIL lease columns missing \(owner_id, lease_expires_at, last_heartbeat\)/m,
  );
  assert.match(r.stdout, /^FAIL .*taskstatus lacks "cancelled", "retry"$/m);
  assert.match(r.stdout, /^FAIL the table does not match the contract; run `seedtask migrate`$/m);

  await t.sql.unsafe(`alter table "${t.schema}".tasks alter column locked_at type timestamptz;
    alter type "${t.schema}".taskstatus add value 'cancelled'; alter type "${t.schema}".taskstatus add value 'retry';
    alter table "${t.schema}".tasks add column owner_id text, add column lease_expires_at timestamptz,
      add column last_heartbeat timestamptz`).simple();
  const r2 = await runCli([...t.args, "doctor"]);
  assert.equal(r2.code, 1);
  assert.match(
    r2.stdout,
    /^FAIL recommended index tasks_claim_idx is missing \(serves dispatcher claim order/m,
  );
  assert.match(r2.stdout, /^FAIL no trigger keeps updated_at current; run `seedtask migrate`$/m);
  assert.doesNotMatch(r2.stdout, /FAIL .*invariant|FAIL \d+ /);

  const none = await runCli(["--dsn", t.args[1]!, "--table", `${t.schema}.absent`, "doctor"]);
  assert.equal(none.code, 1);
  assert.match(
    none.stdout,
    /^FAIL table ".*\.absent" does not exist in .*: run `seedtask migrate` to create it$/m,
  );
  const down = await runCli(["--dsn", "postgres://postgres@127.0.0.1:1/test", "doctor", "--json"]);
  assert.equal(down.code, 1);
  const doc = JSON.parse(down.stdout);
  assert.deepEqual(doc.checks.map((c: { name: string; ok: boolean }) => [c.name, c.ok]), [[
    "connection",
    false,
  ]]);
});
