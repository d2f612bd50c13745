/**
 * Set-based generator of a realistic task table (used by the EXPLAIN tests and the benchmarks):
 * one INSERT ... SELECT over generate_series, no per-row round trips.
 *
 * Mix: 70% completed, 10% failed, 5% cancelled, 8% queued, 2% retry, 3% created, 2% running;
 * 12 types, 200 domains plus 10% NULL, created over the last 30 days.
 */
import type postgres from "postgres";

/** Inserts `rows` tasks into `table` (a migrated task table), then VACUUM ANALYZE. */
export async function fillTasks(sql: postgres.Sql, table: string, rows: number): Promise<void> {
  if (!Number.isInteger(rows) || rows < 1) throw new RangeError(`Invalid row count ${rows}`);
  const [row] = await sql<{ t: string }[]>`
    select format_type(atttypid, null) as t from pg_attribute
    where attrelid = ${table}::regclass and attname = 'status'`;
  const enumType = row!.t;
  const target = table.split(".").map((p) => `"${p.replaceAll('"', '""')}"`).join(".");
  await sql.unsafe(`
    insert into ${target} (status, type, description, domain, drift_score, attempts,
      locked_by, locked_at, run_after, params, result, error, created_at, updated_at,
      owner_id, lease_expires_at)
    select s.status::${enumType}, s.type, s.type || ' task #' || s.i,
      case when s.i % 10 = 0 then null else 'user_' || (s.i::bigint * 7919 % 200) end,
      (s.i % 1000) / 1000.0,
      case s.status when 'created' then 0 when 'queued' then s.i % 2 else 1 + s.i % 4 end,
      case when s.status in ('running', 'completed', 'failed') then 'dispatcher-' || s.i % 8 end,
      case when s.status in ('running', 'completed', 'failed') then s.created + interval '3 seconds' end,
      case when s.status = 'retry' then s.created + interval '10 minutes' end,
      jsonb_build_object('graph_id', s.i % 5000, 'k', 8),
      case when s.status = 'completed' then '{"ok": true}'::jsonb end,
      case when s.status in ('failed', 'retry') then 'upstream error ' || s.i % 97 end,
      s.created,
      s.created + (s.i % 600) * interval '1 second',
      case when s.status = 'running' then 'dispatcher-' || s.i % 8 end,
      case when s.status = 'running' then now() + interval '90 seconds' end
    from (
      select i,
        case
          when i % 100 < 70 then 'completed' when i % 100 < 80 then 'failed'
          when i % 100 < 85 then 'cancelled' when i % 100 < 93 then 'queued'
          when i % 100 < 95 then 'retry' when i % 100 < 98 then 'created' else 'running'
        end as status,
        (array['graph_embed', 'graph_rag_query', 'fact_search', 'fact_ingest', 'graph_sync',
               'summarize', 'classify', 'route', 'plan', 'reflect', 'tune', 'audit'])[1 + i % 12]
          as type,
        now() - (${rows} - i) * (interval '30 days' / ${rows}) as created
      from generate_series(1, ${rows}) as i
    ) s`);
  await sql.unsafe(`vacuum analyze ${target}`);
}
