import assert from "node:assert/strict";
import type postgres from "postgres";
import { migrate, MIGRATIONS, type MigrationStep, planMigration } from "../lib/table/migrate.ts";
import { recommendedIndexes, TASK_STATUSES } from "../lib/table/contract.ts";
import { runDoctor } from "../lib/table/doctor.ts";
import { testDatabase, testSchema } from "./helpers.ts";
import { runMain } from "./run_main.ts";
import { createSeedCoreTable } from "./seedcore_schema.ts";

/** SeedCore's migration 001, as deployed before lease columns existed (no 006). */
function seedcore001(schema: string): string {
  return `
    set search_path = "${schema}";
    create type taskstatus as enum ('created','queued','running','completed','failed','cancelled','retry');
    create table tasks (
      id uuid primary key default gen_random_uuid(),
      status taskstatus not null default 'created',
      attempts integer not null default 0,
      locked_by text, locked_at timestamptz, run_after timestamptz,
      type text not null, description text, domain text,
      drift_score double precision not null default 0.0,
      params jsonb not null default '{}'::jsonb, result jsonb, error text,
      created_at timestamptz not null default now(),
      updated_at timestamptz not null default now(),
      organ_id text, snapshot_id bigint
    );
    create index idx_tasks_status on tasks(status);
    create index idx_tasks_created_at on tasks(created_at);
    create index idx_tasks_claim on tasks(status, run_after, created_at)
      where status in ('queued', 'failed', 'retry');
    create function update_tasks_updated_at() returns trigger as $$
    begin new.updated_at = now(); return new; end; $$ language plpgsql;
    create trigger trigger_tasks_updated_at before update on tasks
      for each row execute function update_tasks_updated_at();
    insert into tasks (status, type, description, domain, attempts, params, organ_id, snapshot_id)
    select (array['queued','completed','failed'])[1 + i % 3]::taskstatus, 'graph_embed',
           'existing ' || i, 'user_' || i % 4, i % 3, jsonb_build_object('i', i), 'organ-' || i, i
    from generate_series(1, 500) i;
    reset search_path;`;
}

Deno.test("migrate() creates the whole contract on an empty schema", async () => {
  await using t = await testSchema({ migrated: false });
  const result = await migrate(t.db);
  assert.equal(result.dryRun, false);

  const columns = await t.sql<{ column_name: string; data_type: string }[]>`
    select column_name, data_type from information_schema.columns
    where table_schema = ${t.schema} and table_name = 'tasks' order by ordinal_position`;
  assert.deepEqual(columns.map((c) => c.column_name), [
    "id",
    "status",
    "type",
    "description",
    "domain",
    "drift_score",
    "attempts",
    "locked_by",
    "locked_at",
    "run_after",
    "params",
    "result",
    "error",
    "created_at",
    "updated_at",
    "owner_id",
    "lease_expires_at",
    "last_heartbeat",
  ]);
  const labels = await t.sql<{ l: string }[]>`
    select e.enumlabel as l from pg_enum e join pg_type ty on ty.oid = e.enumtypid
    join pg_namespace n on n.oid = ty.typnamespace
    where ty.typname = 'taskstatus' and n.nspname = ${t.schema} order by e.enumsortorder`;
  assert.deepEqual(labels.map((r) => r.l), [...TASK_STATUSES]);

  const indexes = await t.sql<{ indexname: string }[]>`
    select indexname from pg_indexes where schemaname = ${t.schema} and tablename = 'tasks'
    order by indexname`;
  assert.deepEqual(indexes.map((i) => i.indexname), [
    "tasks_attempts_idx",
    "tasks_claim_idx",
    "tasks_created_idx",
    "tasks_domain_updated_idx",
    "tasks_params_idx",
    "tasks_pkey",
    "tasks_running_idx",
    "tasks_search_trgm_idx",
    "tasks_status_idx",
    "tasks_status_updated_idx",
    "tasks_type_updated_idx",
    "tasks_updated_idx",
  ]);

  const recorded = await t.sql<{ name: string }[]>`
    select name from ${t.sql(t.schema)}.seedtask_migrations order by name`;
  assert.deepEqual(recorded.map((r) => r.name), [...MIGRATIONS]);

  // The trigger keeps updated_at current on every update.
  const [row] = await t.sql`
    insert into ${t.sql(t.table)} (type, updated_at) values ('x', now() - interval '1 day')
    returning id, updated_at`;
  await t.sql`update ${t.sql(t.table)} set description = 'touched' where id = ${row!.id}`;
  const [after] = await t.sql`select updated_at > now() - interval '1 minute' as fresh
    from ${t.sql(t.table)} where id = ${row!.id}`;
  assert.equal(after!.fresh, true);
});

Deno.test("migrate() is idempotent: the second run plans nothing and changes nothing", async () => {
  await using t = await testSchema();
  const plan = await planMigration(t.db);
  assert.deepEqual(plan.steps, []);
  const again = await migrate(t.db);
  assert.deepEqual(again.steps, []);
  const cli = await runMain([...t.args, "migrate"]);
  assert.equal(cli.code, 0, cli.stderr);
  assert.match(cli.stdout, /is up to date: nothing to do/);
});

Deno.test("migrate --dry-run prints the SQL it would run and changes nothing", async () => {
  await using t = await testSchema({ migrated: false });
  const r = await runMain([...t.args, "migrate", "--dry-run"]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /create type "st_[0-9a-f]+"\.taskstatus as enum/);
  assert.match(r.stdout, /create table "st_[0-9a-f]+"\."tasks" \(/);
  assert.match(r.stdout, /create index if not exists "tasks_claim_idx"/);
  assert.match(r.stdout, /create or replace trigger "tasks_touch_updated_at"/);
  const [exists] = await t.sql`select to_regclass(${t.table}) is not null as e`;
  assert.equal(exists!.e, false, "dry run must not create the table");

  const json = await runMain([...t.args, "migrate", "--dry-run", "--json"]);
  assert.equal(json.code, 0, json.stderr);
  const doc = JSON.parse(json.stdout);
  assert.equal(doc.dry_run, true);
  assert.ok(doc.steps.length >= 10);
});

Deno.test("migrate() on an existing SeedCore table adds only what is missing, without a rewrite", async () => {
  // a database of its own: CREATE INDEX CONCURRENTLY waits for no other test's transaction
  await using t = await testDatabase({ migrated: false });
  await t.sql.unsafe(seedcore001(t.schema)).simple();
  const snapshot = async () =>
    await t.sql<{ j: unknown }[]>`
      select to_jsonb(x) - 'updated_at' as j from ${t.sql(t.table)} x order by id`;
  const before = await snapshot();
  const [{ node: nodeBefore }] = await t.sql`
    select pg_relation_filenode(${t.table}::regclass) as node` as unknown as [{ node: number }];

  const plan = await planMigration(t.db);
  const what = plan.steps.map((s) => s.description).join("\n");
  assert.match(what, /add missing columns owner_id, lease_expires_at, last_heartbeat/);
  assert.doesNotMatch(what, /create table|create the taskstatus enum|updated_at trigger/);
  // Indexes go in without blocking writers on a table that already has rows.
  assert.ok(plan.steps.some((s) => /create index concurrently/.test(s.sql)));

  await migrate(t.db);
  const after = await snapshot();
  const [{ node: nodeAfter }] = await t.sql`
    select pg_relation_filenode(${t.table}::regclass) as node` as unknown as [{ node: number }];
  assert.equal(nodeAfter, nodeBefore, "the table must not be rewritten");
  assert.equal(after.length, 500);
  // Every original value is intact; the only new keys are the three lease columns (null).
  after.forEach((row, i) => {
    const { owner_id, lease_expires_at, last_heartbeat, ...rest } = row.j as Record<
      string,
      unknown
    >;
    assert.deepEqual([owner_id, lease_expires_at, last_heartbeat], [null, null, null]);
    assert.deepEqual(rest, before[i]!.j);
  });
  // SeedCore's own indexes and trigger are kept; ours are added next to them.
  const idx = (await t.sql<{ indexname: string }[]>`
    select indexname from pg_indexes where schemaname = ${t.schema} and tablename = 'tasks'`)
    .map((r) => r.indexname);
  for (
    const name of ["idx_tasks_status", "idx_tasks_claim", "tasks_claim_idx", "tasks_updated_idx"]
  ) {
    assert.ok(idx.includes(name), `${name} in ${idx}`);
  }
  const triggers = await t.sql`select tgname from pg_trigger
    where tgrelid = ${t.table}::regclass and not tgisinternal`;
  assert.deepEqual(triggers.map((r) => r.tgname), ["trigger_tasks_updated_at"]);
  assert.deepEqual((await planMigration(t.db)).steps, []);
});

Deno.test("migrate() adds statuses missing from an existing taskstatus enum", async () => {
  await using t = await testSchema({ migrated: false });
  await t.sql.unsafe(`
    create type "${t.schema}".taskstatus as enum ('created', 'queued', 'running', 'completed', 'failed');
    create table "${t.schema}".tasks (id uuid primary key default gen_random_uuid(),
      status "${t.schema}".taskstatus not null default 'created', type text not null);
  `).simple();
  const result = await migrate(t.db);
  assert.ok(result.steps.some((s) => s.sql.includes("add value if not exists 'cancelled'")));
  const labels = await t.sql<{ l: string }[]>`
    select unnest(enum_range(null::${t.sql(t.schema)}.taskstatus))::text as l`;
  assert.deepEqual(labels.map((r) => r.l), [...TASK_STATUSES]);
  const [row] = await t.sql`insert into ${t.sql(t.table)} (type, status) values ('x', 'retry')
    returning status, attempts, params`;
  assert.deepEqual({ ...row }, { status: "retry", attempts: 0, params: {} });
});

Deno.test("migrate and doctor recognise a recommended index by its definition, not its name", async () => {
  await using t = await testDatabase({ migrated: false });
  await createSeedCoreTable(t.sql, t.schema);
  const s = `"${t.schema}"`;
  await t.sql.unsafe(`
    -- our name, SeedCore's definition: not the recommended (status) include (drift_score)
    create index tasks_status_idx on ${s}.tasks (status);
    -- the recommended claim and updated definitions under names of the operator's
    create index claim_order on ${s}.tasks (coalesce(run_after, created_at), id)
      include (run_after, created_at) where status in ('queued', 'retry');
    create index by_updated on ${s}.tasks (updated_at, id);
    -- our running index's name, close to but not an older seedtask's definition: not replaced
    create index tasks_running_idx on ${s}.tasks (locked_at) where status = 'running';
  `).simple();
  const indexDefs = async () =>
    Object.fromEntries(
      (await t.sql<{ name: string; def: string }[]>`
        select indexname::text as name, indexdef as def from pg_indexes
        where schemaname = ${t.schema} and tablename = 'tasks'`).map((r) => [r.name, r.def]),
    );
  const before = await indexDefs();

  const doctor = await runDoctor(t.db);
  const failed = doctor.checks.filter((c) => !c.ok).map((c) => c.name);
  assert.ok(failed.includes("index.tasks_status_idx"), failed.join(", "));
  assert.ok(!failed.includes("index.tasks_claim_idx"), "claim_order is the claim index");
  assert.ok(!failed.includes("index.tasks_updated_idx"), "by_updated is the updated index");
  const statusCheck = doctor.checks.find((c) => c.name === "index.tasks_status_idx")!;
  assert.match(statusCheck.message, /tasks_status_idx is missing/);
  assert.match(statusCheck.message, /another definition/);
  const runningCheck = doctor.checks.find((c) => c.name === "index.tasks_running_idx")!;
  assert.match(runningCheck.message, /tasks_running_idx is missing .*another definition/);

  const result = await migrate(t.db);
  const created = result.steps.map((st) => st.sql).filter((q) => /create index/.test(q));
  assert.ok(
    !created.some((q) => /"tasks_claim_idx"|"tasks_updated_idx"/.test(q)),
    created.join("\n"),
  );
  assert.match(result.notes.join("\n"), /tasks_status_idx.*another definition.*tasks_status_idx1/);
  assert.match(
    result.notes.join("\n"),
    /tasks_running_idx is an index of another definition.*tasks_running_idx1/,
  );
  assert.ok(!result.steps.some((st) => /drop index|alter index/.test(st.sql)));
  const after = await indexDefs();
  // The operator's indexes are untouched; the recommended status index is there, named apart.
  for (const name of Object.keys(before)) assert.equal(after[name], before[name], name);
  assert.match(after.tasks_status_idx1 ?? "", /USING btree \(status\) INCLUDE \(drift_score\)$/);
  assert.deepEqual(
    (await runDoctor(t.db)).checks.filter((c) => !c.ok).map((c) => c.name),
    [],
  );
  assert.deepEqual((await planMigration(t.db)).steps, []);
});

/** seedtask's running index before the stuck order, as an older migrate created it. */
const OLD_RUNNING = "(locked_at) include (lease_expires_at) where status = 'running'";

/** The running index's definition today, as pg_get_indexdef prints it (schema not on the path). */
function runningDef(schema: string, name = "tasks_running_idx"): string {
  return `CREATE INDEX ${name} ON ${schema}.tasks USING btree ` +
    "(COALESCE(lease_expires_at, locked_at)) INCLUDE (locked_at, lease_expires_at, type, " +
    `attempts, locked_by, owner_id, last_heartbeat, id) WHERE (status = 'running'::${schema}.taskstatus)`;
}

/** Every index of the table with a running-status predicate: name -> [definition, valid]. */
async function runningIndexes(
  t: { sql: postgres.Sql; table: string },
): Promise<Record<string, [string, boolean]>> {
  const rows = await t.sql<{ name: string; def: string; valid: boolean }[]>`
    select c.relname::text as name, pg_get_indexdef(i.indexrelid) as def, i.indisvalid as valid
    from pg_index i join pg_class c on c.oid = i.indexrelid
    where i.indrelid = ${t.table}::regclass
      and pg_get_indexdef(i.indexrelid) like '%''running''::%' order by 1`;
  return Object.fromEntries(rows.map((r) => [r.name, [r.def, r.valid]]));
}

/** Two running tasks with the same lease expiry, and tasks of other statuses. */
async function insertRunning(t: { sql: postgres.Sql; table: string }): Promise<void> {
  await t.sql`insert into ${t.sql(t.table)}
    (type, status, locked_by, locked_at, owner_id, lease_expires_at, last_heartbeat) values
    ('a', 'running', 'w1', now() - interval '1 hour', 'w1', now() + interval '5 minutes', now()),
    ('b', 'running', 'w2', now() - interval '2 hours', 'w2', now() + interval '5 minutes', now()),
    ('c', 'queued', null, null, null, null, null), ('d', 'completed', null, null, null, null, null)`;
}

Deno.test("migrate replaces the running index of an older seedtask, which doctor reports outdated", async () => {
  // a database of its own: CREATE and DROP INDEX CONCURRENTLY wait for no other test
  await using t = await testDatabase();
  const s = `"${t.schema}"`;
  await t.sql.unsafe(`
    drop index ${s}.tasks_running_idx;
    create index tasks_running_idx on ${s}.tasks ${OLD_RUNNING};
    -- the old definition under an operator's name: not seedtask's, never touched
    create index ops_running on ${s}.tasks ${OLD_RUNNING};`).simple();
  const old = await runningIndexes(t);
  assert.deepEqual(Object.keys(old), ["ops_running", "tasks_running_idx"]);
  assert.match(old.tasks_running_idx![0], /USING btree \(locked_at\) INCLUDE \(lease_expires_at\)/);

  // On an empty table: no CONCURRENTLY, one transaction.
  // (Any plan ends by recording the migrations, on conflict doing nothing.)
  const indexSteps = (steps: MigrationStep[]) =>
    steps.filter((st) => !/migrations record|applied migrations/.test(st.description));
  const empty = indexSteps((await planMigration(t.db)).steps);
  assert.deepEqual(empty.map((st) => [st.sql.split(" on ")[0], st.transactional]), [
    [`create index if not exists "tasks_running_idx_new"`, true],
    [`drop index if exists ${s}."tasks_running_idx"`, true],
    [`alter index if exists ${s}."tasks_running_idx_new" rename to "tasks_running_idx"`, true],
  ]);

  await insertRunning(t);
  const doctor = await runMain([...t.args, "doctor"]);
  assert.equal(doctor.code, 1, doctor.stdout + doctor.stderr);
  const fails = doctor.stdout.split("\n").filter((l) => l.startsWith("FAIL"));
  assert.equal(fails.length, 1, doctor.stdout);
  assert.match(
    fails[0]!,
    new RegExp(
      "^FAIL recommended index tasks_running_idx is outdated \\(serves stuck tasks, .*\\): " +
        "tasks_running_idx has an older seedtask's definition \\(USING btree \\(locked_at\\) " +
        "INCLUDE \\(lease_expires_at\\) WHERE \\(status = 'running'::.*taskstatus\\)\\); " +
        "run `seedtask migrate` to replace it$",
    ),
  );
  const report = await runDoctor(t.db);
  assert.deepEqual(report.checks.filter((c) => !c.ok).map((c) => c.name), [
    "index.tasks_running_idx",
  ]);

  const dry = await runMain([...t.args, "migrate", "--dry-run"]);
  assert.equal(dry.code, 0, dry.stderr);
  assert.equal(dry.stderr, "");
  const statements = dry.stdout.split(/;\n/).map((st) => st.replace(/^\s*--.*\n/, ""))
    .filter((st) => st.trim() !== "" && !/seedtask_migrations/.test(st)).map((st) => `${st};`);
  assert.deepEqual(statements, [
    `create index concurrently if not exists "tasks_running_idx_new" on ${s}."tasks" ${
      runningDef(t.schema).replace(/^CREATE INDEX \S+ ON \S+ /, "")
    };`,
    `drop index concurrently if exists ${s}."tasks_running_idx";`,
    `alter index if exists ${s}."tasks_running_idx_new" rename to "tasks_running_idx";`,
  ]);
  assert.match(
    dry.stdout,
    /^-- drop tasks_running_idx, an older seedtask's definition of tasks_running_idx \(USING btree \(locked_at\)/m,
  );
  assert.deepEqual(await runningIndexes(t), old, "a dry run changes nothing");

  const r = await runMain([...t.args, "migrate"]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(
    r.stdout,
    /^applied: create index tasks_running_idx_new \(.*\), to replace the outdated tasks_running_idx$/m,
  );
  assert.match(r.stdout, /^applied: rename tasks_running_idx_new to tasks_running_idx$/m);
  assert.deepEqual(await runningIndexes(t), {
    ops_running: old.ops_running,
    tasks_running_idx: [runningDef(t.schema), true],
  });
  assert.deepEqual((await planMigration(t.db)).steps, []);
  assert.equal((await runDoctor(t.db)).ok, true);
  const again = await runMain([...t.args, "migrate"]);
  assert.match(again.stdout, /is up to date: nothing to do/);
});

Deno.test("migrate finishes an interrupted replacement of the running index, whatever step it stopped at", async () => {
  await using t = await testDatabase();
  const s = `"${t.schema}"`;
  await insertRunning(t);
  const doctorFailures = async () =>
    (await runDoctor(t.db)).checks.filter((c) => !c.ok).map((c) => c.message);
  const plannedIndexWork = async () =>
    (await planMigration(t.db)).steps.map((st) => st.description)
      .filter((d) => !/migrations record|applied migrations/.test(d));
  const finish = async () => {
    await migrate(t.db);
    assert.deepEqual(await runningIndexes(t), { tasks_running_idx: [runningDef(t.schema), true] });
    assert.deepEqual(await plannedIndexWork(), []);
    assert.deepEqual(await doctorFailures(), []);
  };

  // Stopped while building: the concurrent build failed (here: as a unique index, on the two
  // equal lease expiries) and left an invalid index with the definition under the temporary
  // name, next to the old one.
  await t.sql.unsafe(`
    drop index ${s}.tasks_running_idx;
    create index tasks_running_idx on ${s}.tasks ${OLD_RUNNING};`).simple();
  const unique = runningDef(t.schema, "tasks_running_idx_new")
    .replace(/^CREATE INDEX (\S+) ON \S+/, `create unique index concurrently $1 on ${s}.tasks`);
  await assert.rejects(t.sql.unsafe(unique).simple(), /could not create unique index/);
  assert.deepEqual((await runningIndexes(t)).tasks_running_idx_new?.[1], false);
  assert.match((await doctorFailures()).join("\n"), /tasks_running_idx is outdated/);
  assert.deepEqual(await plannedIndexWork(), [
    "drop the invalid index tasks_running_idx_new left by an interrupted build",
    `create index tasks_running_idx_new (${
      recommendedIndexes("tasks").find((i) => i.suffix === "running_idx")!.purpose
    }), to replace the outdated tasks_running_idx`,
    `drop tasks_running_idx, an older seedtask's definition of tasks_running_idx (USING btree ` +
    `(locked_at) INCLUDE (lease_expires_at) WHERE (status = 'running'::${t.schema}.taskstatus))`,
    "rename tasks_running_idx_new to tasks_running_idx",
  ]);
  await finish();

  // Stopped after building: the new index is there under the temporary name, the old one too.
  await t.sql.unsafe(`
    alter index ${s}.tasks_running_idx rename to tasks_running_idx_new;
    create index tasks_running_idx on ${s}.tasks ${OLD_RUNNING};`).simple();
  assert.match((await doctorFailures()).join("\n"), /tasks_running_idx is outdated/);
  assert.deepEqual((await plannedIndexWork()).map((d) => d.split(",")[0]), [
    "drop tasks_running_idx",
    "rename tasks_running_idx_new to tasks_running_idx",
  ]);
  await finish();

  // A migrate that knew the new definition but not the old one built it as
  // tasks_running_idx1 beside the old: the old one goes, the new one takes its name.
  await t.sql.unsafe(`
    alter index ${s}.tasks_running_idx rename to tasks_running_idx1;
    create index tasks_running_idx on ${s}.tasks ${OLD_RUNNING};`).simple();
  assert.deepEqual((await plannedIndexWork()).map((d) => d.split(",")[0]), [
    "drop tasks_running_idx",
    "rename tasks_running_idx1 to tasks_running_idx",
  ]);
  await finish();

  // Stopped after dropping the old one: only the rename is left.
  await t.sql.unsafe(`alter index ${s}.tasks_running_idx rename to tasks_running_idx_new`)
    .simple();
  assert.deepEqual(await doctorFailures(), [
    "recommended index tasks_running_idx is present as tasks_running_idx_new, left by an " +
    "interrupted replacement; run `seedtask migrate` to finish it",
  ]);
  assert.deepEqual(await plannedIndexWork(), ["rename tasks_running_idx_new to tasks_running_idx"]);
  await finish();
});
