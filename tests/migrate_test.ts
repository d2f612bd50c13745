import assert from "node:assert/strict";
import { migrate, MIGRATIONS, planMigration } from "../lib/table/migrate.ts";
import { TASK_STATUSES } from "../lib/table/contract.ts";
import { runDoctor } from "../lib/table/doctor.ts";
import { runCli, testSchema } from "./helpers.ts";
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
  const cli = await runCli([...t.args, "migrate"]);
  assert.equal(cli.code, 0, cli.stderr);
  assert.match(cli.stdout, /is up to date: nothing to do/);
});

Deno.test("migrate --dry-run prints the SQL it would run and changes nothing", async () => {
  await using t = await testSchema({ migrated: false });
  const r = await runCli([...t.args, "migrate", "--dry-run"]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /create type "st_[0-9a-f]+"\.taskstatus as enum/);
  assert.match(r.stdout, /create table "st_[0-9a-f]+"\."tasks" \(/);
  assert.match(r.stdout, /create index if not exists "tasks_claim_idx"/);
  assert.match(r.stdout, /create or replace trigger "tasks_touch_updated_at"/);
  const [exists] = await t.sql`select to_regclass(${t.table}) is not null as e`;
  assert.equal(exists!.e, false, "dry run must not create the table");

  const json = await runCli([...t.args, "migrate", "--dry-run", "--json"]);
  assert.equal(json.code, 0, json.stderr);
  const doc = JSON.parse(json.stdout);
  assert.equal(doc.dry_run, true);
  assert.ok(doc.steps.length >= 10);
});

Deno.test("migrate() on an existing SeedCore table adds only what is missing, without a rewrite", async () => {
  await using t = await testSchema({ migrated: false });
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
  await using t = await testSchema({ migrated: false });
  await createSeedCoreTable(t.sql, t.schema);
  const s = `"${t.schema}"`;
  await t.sql.unsafe(`
    -- our name, SeedCore's definition: not the recommended (status) include (drift_score)
    create index tasks_status_idx on ${s}.tasks (status);
    -- the recommended claim and updated definitions under names of the operator's
    create index claim_order on ${s}.tasks (coalesce(run_after, created_at), id)
      include (run_after, created_at) where status in ('queued', 'retry');
    create index by_updated on ${s}.tasks (updated_at, id);
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

  const result = await migrate(t.db);
  const created = result.steps.map((st) => st.sql).filter((q) => /create index/.test(q));
  assert.ok(
    !created.some((q) => /"tasks_claim_idx"|"tasks_updated_idx"/.test(q)),
    created.join("\n"),
  );
  assert.match(result.notes.join("\n"), /tasks_status_idx.*another definition.*tasks_status_idx1/);
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
