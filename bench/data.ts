/**
 * The benchmark database: `seedtask_bench` (created on demand), one schema per table size
 * (`bench_r1000000`), filled with the realistic mix of tests/fill.ts.
 *
 * Filling is set-based: the table is migrated, its secondary indexes are dropped,
 * INSERT ... SELECT over generate_series writes the rows (tests/fill.ts, in chunks: see
 * {@link FILL_CHUNK}), the indexes are rebuilt with plain CREATE INDEX (parallel, sorted —
 * much faster than maintaining nine indexes row by row, the trigram GIN index above all),
 * then VACUUM ANALYZE. `migrate` runs
 * once more at the end and must find nothing to do, which checks the rebuilt indexes match
 * the contract. With --keep a filled schema is reused by the next run.
 */
import postgres from "postgres";
import { resolveConfig } from "../lib/config.ts";
import { connect, type Db, quoteIdent } from "../lib/db.ts";
import { migrate } from "../lib/table/migrate.ts";
import { indexDefinition, recommendedIndexes } from "../lib/table/contract.ts";
import { fillTasks } from "../tests/fill.ts";
import { seedcoreIndexesSql, seedcoreTableSql } from "../tests/seedcore_schema.ts";
import { int, say } from "./common.ts";

/** Bump when the generator changes, so kept schemas from an older fill are rebuilt. */
const FILL_VERSION = 1;

export const DEFAULT_BENCH_DSN = "postgres://postgres@127.0.0.1:5432/seedtask_bench";

/** The DSN with another database name (the maintenance database, to create ours). */
export function withDatabase(dsn: string, database: string): string {
  const m = /^(postgres(?:ql)?:\/\/[^/?]*)(?:\/([^?]*))?(\?.*)?$/.exec(dsn);
  if (!m) throw new Error(`Invalid DSN ${dsn}`);
  return `${m[1]}/${database}${m[3] ?? ""}`;
}

export function databaseName(dsn: string): string {
  const m = /^postgres(?:ql)?:\/\/[^/?]*\/([^?]+)/.exec(dsn);
  return decodeURIComponent(m?.[1] ?? "postgres");
}

/** Opens `dsn`'s database, creating it first when it does not exist. */
export async function ensureDatabase(dsn: string): Promise<postgres.Sql> {
  const name = databaseName(dsn);
  const admin = postgres(withDatabase(dsn, "postgres"), { max: 1, onnotice: () => {} });
  try {
    const [row] = await admin`select 1 as ok from pg_database where datname = ${name}`;
    if (!row) {
      say(`creating database ${name}`);
      await admin.unsafe(`create database ${quoteIdent(name)}`);
    }
  } finally {
    await admin.end();
  }
  return postgres(dsn, { max: 2, onnotice: () => {}, connection: { application_name: "bench" } });
}

/** Opens a seedtask Db on `table`, as the CLI would. */
export function openDb(
  dsn: string,
  table: string,
  maxConnections?: number,
  statementTimeout?: string,
): Db {
  return connect(resolveConfig({ dsn, table, maxConnections, statementTimeout }, {}));
}

export function schemaForRows(rows: number): string {
  return `bench_r${rows}`;
}

export async function schemaExists(sql: postgres.Sql, schema: string): Promise<boolean> {
  const [row] = await sql`select 1 as ok from pg_namespace where nspname = ${schema}`;
  return !!row;
}

export async function dropSchema(sql: postgres.Sql, schema: string): Promise<void> {
  await sql`drop schema if exists ${sql(schema)} cascade`;
}

/** A freshly migrated, empty task table in `schema` (dropped and recreated). */
export async function createEmptyTable(
  sql: postgres.Sql,
  dsn: string,
  schema: string,
): Promise<string> {
  await dropSchema(sql, schema);
  await sql`create schema ${sql(schema)}`;
  const table = `${schema}.tasks`;
  const db = openDb(dsn, table);
  try {
    await migrate(db);
  } finally {
    await db.close();
  }
  return table;
}

/** A filled table of `rows` tasks, and how it came to be. */
export interface FilledTable {
  schema: string;
  table: string;
  rows: number;
  reused: boolean;
  /**
   * What `migrate` of the current code added to a reused table (an index or table the contract
   * gained since the fill), with the seconds it took; empty when nothing.
   */
  upgraded?: string[];
  /** Insert, index build, vacuum: seconds each (0 when reused). */
  timings: { insert: number; indexes: number; vacuum: number };
}

/**
 * Returns the schema's table when it already holds a complete fill of `rows` (from a --keep
 * run), otherwise builds it.
 */
export async function prepareFilledTable(
  sql: postgres.Sql,
  dsn: string,
  rows: number,
): Promise<FilledTable> {
  const schema = schemaForRows(rows);
  const table = `${schema}.tasks`;
  if (await schemaExists(sql, schema)) {
    const [meta] = await sql<{ rows: number; version: number }[]>`
      select rows, version from ${sql(schema)}.bench_meta`.catch(() => []);
    if (meta && meta.rows === rows && meta.version === FILL_VERSION) {
      say(`reusing ${table} (${int(rows)} rows, kept by an earlier --keep run)`);
      const upgraded = await upgradeKept(dsn, table);
      return {
        schema,
        table,
        rows,
        reused: true,
        timings: { insert: 0, indexes: 0, vacuum: 0 },
        upgraded,
      };
    }
  }
  say(`filling ${table} with ${int(rows)} tasks (set-based INSERT ... SELECT)`);
  await createEmptyTable(sql, dsn, schema);
  const indexes = recommendedIndexes("tasks");
  // The GIN index definition names pg_trgm's schema; read it the way migrate does.
  const [trgm] = await sql<{ schema: string }[]>`
    select n.nspname::text as schema from pg_extension x
    join pg_namespace n on n.oid = x.extnamespace where x.extname = 'pg_trgm'`;
  const [statusType] = await sql<{ t: string }[]>`
    select format_type(atttypid, null) as t from pg_attribute
    where attrelid = ${table}::regclass and attname = 'status'`;
  const present = new Set(
    (await sql<{ name: string }[]>`
      select indexname::text as name from pg_indexes where schemaname = ${schema}`)
      .map((r) => r.name),
  );
  for (const idx of indexes) {
    if (present.has(idx.name)) await sql`drop index ${sql(schema)}.${sql(idx.name)}`;
  }

  let t0 = performance.now();
  // A dedicated session: no statement timeout, enough memory to sort the index builds.
  const filler = postgres(dsn, { max: 1, onnotice: () => {} });
  try {
    await filler`set maintenance_work_mem = '1GB'`;
    await filler`set max_parallel_maintenance_workers = 2`;
    await fillInChunks(dsn, table, rows);
    const insert = (performance.now() - t0) / 1000;
    say(`  inserted in ${insert.toFixed(1)} s; building ${indexes.length} indexes`);
    t0 = performance.now();
    for (const idx of indexes) {
      if (idx.trgm && !trgm) continue; // migrate skips it too, with a note
      const def = indexDefinition(
        idx,
        statusType!.t,
        idx.trgm ? quoteIdent(trgm!.schema) : undefined,
      );
      await filler.unsafe(
        `create index ${quoteIdent(idx.name)} on ${quoteIdent(schema)}.tasks ${def}`,
      );
    }
    const indexSeconds = (performance.now() - t0) / 1000;
    t0 = performance.now();
    await filler.unsafe(`vacuum analyze ${quoteIdent(schema)}.tasks`);
    const vacuum = (performance.now() - t0) / 1000;
    say(`  indexes in ${indexSeconds.toFixed(1)} s, VACUUM ANALYZE in ${vacuum.toFixed(1)} s`);

    const db = openDb(dsn, table);
    try {
      const plan = await migrate(db);
      const extra = plan.steps.filter((s) => !/migrations/.test(s.description));
      if (extra.length > 0) {
        throw new Error(
          `migrate still had work after the fill: ${extra.map((s) => s.description).join("; ")}`,
        );
      }
    } finally {
      await db.close();
    }
    await filler`
      create table ${filler(schema)}.bench_meta as
      select ${rows}::int as rows, ${FILL_VERSION}::int as version, now() as filled_at`;
    return {
      schema,
      table,
      rows,
      reused: false,
      timings: { insert, indexes: indexSeconds, vacuum },
    };
  } finally {
    await filler.end();
  }
}

/**
 * Brings a table kept from an earlier run up to the current contract: what `migrate` would add
 * (an index the contract gained since the fill, a side table) is built here, indexes without
 * CONCURRENTLY and with 1 GB of maintenance memory (nobody else uses the bench table), then
 * `migrate` must find nothing left. Returns what was done.
 */
async function upgradeKept(dsn: string, table: string): Promise<string[]> {
  const db = openDb(dsn, table);
  const done: string[] = [];
  const filler = postgres(dsn, { max: 1, onnotice: () => {} });
  try {
    // A run that wrote to the table and was interrupted may leave dead rows (and autovacuum
    // may be off): vacuum them away, so every run reads the same table.
    const [schema, name] = table.split(".") as [string, string];
    const [dead] = await filler<{ dead: number; live: number }[]>`
      select n_dead_tup::float8 as dead, greatest(n_live_tup, 1)::float8 as live
      from pg_stat_user_tables where schemaname = ${schema} and relname = ${name}`;
    if (dead && dead.dead > dead.live * 0.001) {
      const t0 = performance.now();
      say(`  vacuuming the kept table (${int(dead.dead)} dead rows)`);
      await filler.unsafe(`vacuum analyze ${quoteIdent(schema)}.${quoteIdent(name)}`);
      done.push(
        `VACUUM ANALYZE of ${int(dead.dead)} dead rows (${
          ((performance.now() - t0) / 1000).toFixed(0)
        } s)`,
      );
    }
    const plan = await migrate(db, { dryRun: true });
    const work = plan.steps.filter((s) => !/migrations/.test(s.description));
    if (work.length === 0) return done;
    await filler`set maintenance_work_mem = '1GB'`;
    await filler`set max_parallel_maintenance_workers = 2`;
    for (const step of work) {
      const t0 = performance.now();
      say(`  upgrading the kept table: ${step.description}`);
      await filler.unsafe(step.sql.replace(/^create index concurrently /i, "create index "))
        .simple();
      done.push(`${step.description} (${((performance.now() - t0) / 1000).toFixed(0)} s)`);
    }
    await filler.unsafe(`analyze ${table.split(".").map(quoteIdent).join(".")}`);
    await migrate(db);
    const left = (await migrate(db, { dryRun: true })).steps;
    if (left.length > 0) {
      throw new Error(
        `migrate still had work after upgrading ${table}: ${
          left.map((s) => s.description).join("; ")
        }`,
      );
    }
    return done;
  } finally {
    await filler.end();
    await db.close();
  }
}

/**
 * tests/fill.ts computes `i * 7919` in int4 (the domain of row i), which overflows above
 * 271,180 rows ("integer out of range"). So larger tables are filled by several calls of at
 * most this many rows each — every call lays its rows over the same 30 days with the same
 * status/type/domain mix, so the table's distribution is the same as one call would give.
 */
export const FILL_CHUNK = 250_000;

/**
 * Calls fillTasks for chunks of at most {@link FILL_CHUNK} rows, two at a time on two sessions
 * (both cores). Each call ends with VACUUM ANALYZE of the heap, which only visits new pages.
 */
async function fillInChunks(dsn: string, table: string, rows: number): Promise<void> {
  const count = Math.ceil(rows / FILL_CHUNK);
  const sizes = Array.from(
    { length: count },
    (_, i) => Math.floor(rows / count) + (i < rows % count ? 1 : 0),
  );
  let next = 0;
  let done = 0;
  const worker = async () => {
    const sql = postgres(dsn, { max: 1, onnotice: () => {} });
    try {
      while (next < sizes.length) {
        const size = sizes[next++]!;
        await fillTasks(sql, table, size);
        done += size;
        if (count > 1) say(`  ${int(done)} / ${int(rows)} rows`);
      }
    } finally {
      await sql.end();
    }
  };
  await Promise.all(Array.from({ length: Math.min(2, count) }, worker));
}

/** One task id whose first 8 hex digits match no other task (so `show <prefix>` is unique). */
export async function uniquePrefixId(sql: postgres.Sql, table: string): Promise<string> {
  const [schema, name] = table.split(".") as [string, string];
  const sample = await sql<{ id: string }[]>`
    select id::text as id from ${sql(schema)}.${sql(name)} tablesample system (1)
    limit 200`;
  const candidates = sample.length > 0
    ? sample
    : await sql<{ id: string }[]>`select id::text as id from ${sql(schema)}.${sql(name)} limit 200`;
  for (const { id } of candidates) {
    const p = id.slice(0, 8);
    const [{ n }] = await sql<{ n: number }[]>`
      select count(*)::int as n from (
        select 1 from ${sql(schema)}.${sql(name)}
        where id between ${`${p}-0000-0000-0000-000000000000`}::uuid
                     and ${`${p}-ffff-ffff-ffff-ffffffffffff`}::uuid
        limit 2) s` as unknown as [{ n: number }];
    if (n === 1) return id;
  }
  throw new Error(`no task in ${table} has a unique 8-character prefix`);
}

/** Bump when the SeedCore-schema generator changes. */
const SEEDCORE_FILL_VERSION = 1;

export function seedcoreSchemaForRows(rows: number): string {
  return `seedcore_r${rows}`;
}

/**
 * A task table exactly as a SeedCore deployment that never ran `seedtask migrate` has it:
 * SeedCore's migration 001 (enum, columns, its three indexes and the updated_at trigger) plus
 * migration 006 (the lease columns, no index), filled with the same mix as
 * {@link prepareFilledTable}. None of seedtask's recommended indexes exist, so the read
 * commands run on the plans a never-migrated table gets. Built in `dsn`'s database (kept
 * with --keep, like the other fills).
 */
export async function prepareSeedCoreTable(
  sql: postgres.Sql,
  dsn: string,
  rows: number,
): Promise<FilledTable> {
  const schema = seedcoreSchemaForRows(rows);
  const table = `${schema}.tasks`;
  if (await schemaExists(sql, schema)) {
    const [meta] = await sql<{ rows: number; version: number }[]>`
      select rows, version from ${sql(schema)}.bench_meta`.catch(() => []);
    if (meta && meta.rows === rows && meta.version === SEEDCORE_FILL_VERSION) {
      say(`reusing ${table} (SeedCore schema, ${int(rows)} rows, kept by an earlier --keep run)`);
      return { schema, table, rows, reused: true, timings: { insert: 0, indexes: 0, vacuum: 0 } };
    }
  }
  say(`filling ${table} with ${int(rows)} tasks (SeedCore's schema and indexes only)`);
  await dropSchema(sql, schema);
  const s = quoteIdent(schema);
  // The primary key and SeedCore's indexes are built after the insert (faster than
  // maintaining them row by row); the resulting table is the same.
  await sql`create schema ${sql(schema)}`;
  await sql.unsafe(seedcoreTableSql(schema)).simple();

  let t0 = performance.now();
  const filler = postgres(dsn, { max: 1, onnotice: () => {} });
  try {
    await filler`set maintenance_work_mem = '1GB'`;
    await filler`set max_parallel_maintenance_workers = 2`;
    await fillInChunks(dsn, table, rows);
    const insert = (performance.now() - t0) / 1000;
    say(`  inserted in ${insert.toFixed(1)} s; building SeedCore's primary key and 3 indexes`);
    t0 = performance.now();
    await filler.unsafe(seedcoreIndexesSql(schema)).simple();
    const indexSeconds = (performance.now() - t0) / 1000;
    t0 = performance.now();
    await filler.unsafe(`vacuum analyze ${s}.tasks`);
    const vacuum = (performance.now() - t0) / 1000;
    say(`  indexes in ${indexSeconds.toFixed(1)} s, VACUUM ANALYZE in ${vacuum.toFixed(1)} s`);
    await filler`
      create table ${filler(schema)}.bench_meta as
      select ${rows}::int as rows, ${SEEDCORE_FILL_VERSION}::int as version, now() as filled_at`;
    return {
      schema,
      table,
      rows,
      reused: false,
      timings: { insert, indexes: indexSeconds, vacuum },
    };
  } finally {
    await filler.end();
  }
}
