/**
 * A task table as a SeedCore deployment that never ran `seedtask migrate` has it: SeedCore's
 * migration 001 (the enum, the columns, its three indexes and the updated_at trigger) plus
 * migration 006 (the lease columns, without an index). None of seedtask's recommended indexes.
 * Used by the tests of the read commands on such a table and by the benchmark's seedcore suite.
 */
import type postgres from "postgres";

function quote(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/** The enum, the table and the trigger in `schema` (which must exist), without indexes. */
export function seedcoreTableSql(schema: string): string {
  const s = quote(schema);
  return `
    create type ${s}.taskstatus as enum
      ('created','queued','running','completed','failed','cancelled','retry');
    create table ${s}.tasks (
      id uuid not null default gen_random_uuid(),
      status ${s}.taskstatus not null default 'created',
      attempts integer not null default 0,
      locked_by text, locked_at timestamptz, run_after timestamptz,
      type text not null, description text, domain text,
      drift_score double precision not null default 0.0,
      params jsonb not null default '{}'::jsonb, result jsonb, error text,
      created_at timestamptz not null default now(),
      updated_at timestamptz not null default now(),
      owner_id text, lease_expires_at timestamptz, last_heartbeat timestamptz
    );
    create function ${s}.update_tasks_updated_at() returns trigger as $$
    begin new.updated_at = now(); return new; end; $$ language plpgsql;
    create trigger trigger_tasks_updated_at before update on ${s}.tasks
      for each row execute function ${s}.update_tasks_updated_at();`;
}

/** SeedCore's primary key and its three indexes (built after a bulk fill, or right away). */
export function seedcoreIndexesSql(schema: string): string {
  const s = quote(schema);
  return `
    alter table ${s}.tasks add constraint tasks_pkey primary key (id);
    create index idx_tasks_status on ${s}.tasks (status);
    create index idx_tasks_created_at on ${s}.tasks (created_at);
    create index idx_tasks_claim on ${s}.tasks (status, run_after, created_at)
      where status in ('queued', 'failed', 'retry');`;
}

/** Creates the SeedCore table with its indexes in `schema` (an existing, empty schema). */
export async function createSeedCoreTable(sql: postgres.Sql, schema: string): Promise<void> {
  await sql.unsafe(seedcoreTableSql(schema) + seedcoreIndexesSql(schema)).simple();
}
