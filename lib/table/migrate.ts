import {
  connect,
  type Db,
  guard,
  inTransaction,
  invalidateTableInfo,
  mapDbError,
  quoteIdent,
  quoteQualified,
  runUntimed,
} from "../db.ts";
import { formatDuration } from "../duration.ts";
import { SeedtaskError } from "../errors.ts";
import { TASK_STATUSES } from "./contract.ts";

/** One DDL statement of a migration plan. */
export interface MigrationStep {
  /** What the statement does, for humans. */
  description: string;
  sql: string;
  /**
   * False for statements PostgreSQL refuses inside a transaction block (CREATE INDEX
   * CONCURRENTLY) or whose effect later statements need committed (ALTER TYPE ... ADD VALUE).
   */
  transactional: boolean;
}

export interface MigrationPlan {
  steps: MigrationStep[];
  /** Things migrate chose not to do, and why (e.g. pg_trgm unavailable). */
  notes: string[];
}

export interface MigrationResult extends MigrationPlan {
  dryRun: boolean;
}

/** Names recorded in `seedtask_migrations` once the contract is in place. */
export const MIGRATIONS = ["001_task_table_contract", "002_task_indexes"] as const;

const COLUMNS: ReadonlyArray<[name: string, ddl: (statusType: string) => string]> = [
  ["id", () => "uuid primary key default gen_random_uuid()"],
  ["status", (t) => `${t} not null default 'created'`],
  ["type", () => "text not null"],
  ["description", () => "text"],
  ["domain", () => "text"],
  ["drift_score", () => "double precision not null default 0"],
  ["attempts", () => "integer not null default 0"],
  ["locked_by", () => "text"],
  ["locked_at", () => "timestamptz"],
  ["run_after", () => "timestamptz"],
  ["params", () => "jsonb not null default '{}'::jsonb"],
  ["result", () => "jsonb"],
  ["error", () => "text"],
  ["created_at", () => "timestamptz not null default now()"],
  ["updated_at", () => "timestamptz not null default now()"],
  ["owner_id", () => "text"],
  ["lease_expires_at", () => "timestamptz"],
  ["last_heartbeat", () => "timestamptz"],
];

/** An index seedtask's own queries rely on. `columns` is set for plain btree indexes. */
export interface RecommendedIndex {
  name: string;
  /** What it serves, shown by `doctor`. */
  purpose: string;
  /** Plain column list, so an equivalent index under another name is recognised. */
  columns?: string[];
  /** Text after `ON table` in CREATE INDEX. */
  definition: (statusType: string, trgmSchema?: string) => string;
  /** Needs the pg_trgm extension. */
  trgm?: boolean;
}

/** The indexes `migrate` creates and `doctor` looks for, named after the table. */
export function recommendedIndexes(tableName: string): RecommendedIndex[] {
  const n = (suffix: string) => `${tableName}_${suffix}`;
  return [
    {
      name: n("claim_idx"),
      purpose:
        "dispatcher claim order, queue lag and the ready count (claimable tasks by ready time)",
      // INCLUDE the expression's columns: PostgreSQL uses an expression index for an
      // index-only scan only when the columns it is computed from are in the index too.
      definition: (t) =>
        `(coalesce(run_after, created_at), id) include (run_after, created_at) ` +
        `where status in ('queued'::${t}, 'retry'::${t})`,
    },
    {
      name: n("running_idx"),
      purpose:
        "long-running and stuck tasks, the reaper (running tasks by lock time, with the lease)",
      definition: (t) => `(locked_at) include (lease_expires_at) where status = 'running'::${t}`,
    },
    {
      name: n("updated_idx"),
      purpose: "list sorted by updated (no filter), keyset pagination",
      columns: ["updated_at", "id"],
      definition: () => "(updated_at, id)",
    },
    {
      name: n("status_idx"),
      purpose: "status counts and drift score (a narrow index-only scan)",
      columns: ["status", "drift_score"],
      definition: () => "(status) include (drift_score)",
    },
    {
      name: n("status_updated_idx"),
      purpose: "list --status, recent completions and failures, running tasks",
      columns: ["status", "updated_at", "id"],
      definition: () => "(status, updated_at, id)",
    },
    {
      name: n("type_updated_idx"),
      purpose: "list --type, type counts (index-only)",
      columns: ["type", "updated_at", "id"],
      definition: () => "(type, updated_at, id)",
    },
    {
      name: n("domain_updated_idx"),
      purpose: "list --domain, domain counts (index-only)",
      columns: ["domain", "updated_at", "id"],
      definition: () => "(domain, updated_at, id)",
    },
    {
      name: n("created_idx"),
      purpose: "list --sort created, recent activity per day",
      columns: ["created_at", "id"],
      definition: () => "(created_at, id)",
    },
    {
      name: n("attempts_idx"),
      purpose: "high-attempt tasks, attempts distribution (index-only)",
      columns: ["attempts", "updated_at"],
      definition: () => "(attempts, updated_at)",
    },
    {
      name: n("search_trgm_idx"),
      purpose: "list --search (text in description or error)",
      trgm: true,
      definition: (_t, trgmSchema) =>
        `using gin ((coalesce(description, '') || ' ' || coalesce(error, '')) ${
          trgmSchema ? `${quoteIdent(trgmSchema)}.` : ""
        }gin_trgm_ops)`,
    },
  ];
}

/** An index of the task table as the catalog describes it. */
export interface IndexState {
  name: string;
  valid: boolean;
  /** Key and INCLUDE columns in order; null for an expression index. */
  columns: string[] | null;
  partial: boolean;
}

/** The task table's indexes (read by migrate to plan, and by doctor to report). */
export async function readIndexes(db: Db): Promise<IndexState[]> {
  return [
    ...(await db.sql<IndexState[]>`
      select c.relname::text as name, i.indisvalid as valid, i.indpred is not null as partial,
        case when 0 = any (i.indkey::int2[]) then null else (
          select array_agg(a.attname::text order by k.ord)
          from unnest(i.indkey::int2[]) with ordinality as k(attnum, ord)
          join pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.attnum
        ) end as columns
      from pg_index i join pg_class c on c.oid = i.indexrelid
      where i.indrelid = to_regclass(${quoteQualified(db.table)})`),
  ];
}

/** Whether a BEFORE trigger whose function mentions updated_at exists (ours or SeedCore's). */
export async function hasUpdatedAtTrigger(db: Db): Promise<boolean> {
  const [row] = await db.sql<{ has: boolean }[]>`
    select exists (
      select 1 from pg_trigger t join pg_proc p on p.oid = t.tgfoid
      where t.tgrelid = to_regclass(${quoteQualified(db.table)}) and not t.tgisinternal
        and t.tgtype & 2 = 2 and p.prosrc ilike '%updated_at%'
    ) as has`;
  return row!.has;
}

interface DbState {
  schemaExists: boolean;
  tableExists: boolean;
  tableEmpty: boolean;
  statusType: string | null;
  enumLabels: string[];
  columns: Set<string>;
  hasUpdatedAtTrigger: boolean;
  indexes: IndexState[];
  trgmSchema: string | null;
  trgmAvailable: boolean;
  recorded: Set<string>;
}

/** Reads everything the plan depends on from the catalog. */
async function readState(db: Db): Promise<DbState> {
  const sql = db.sql;
  const schemaName = db.schema ?? null;
  const qualified = db.schema
    ? `${quoteIdent(db.schema)}.${quoteIdent(db.tableName)}`
    : quoteIdent(db.tableName);
  const enumName = db.schema ? `${quoteIdent(db.schema)}.taskstatus` : "taskstatus";
  const migrationsTable = db.schema
    ? `${quoteIdent(db.schema)}.seedtask_migrations`
    : "seedtask_migrations";

  const [base] = await sql<
    {
      schema_exists: boolean;
      rel: string | null;
      status_type: string | null;
      enum_labels: string[] | null;
      trgm_schema: string | null;
      trgm_available: boolean;
      migrations: string | null;
    }[]
  >`
    with rel as (select to_regclass(${qualified}) as oid),
    status_col as (
      select a.atttypid from pg_attribute a, rel
      where a.attrelid = rel.oid and a.attname = 'status' and not a.attisdropped
    ),
    enum_type as (
      select coalesce((select atttypid from status_col), to_regtype(${enumName})::oid) as oid
    )
    select
      ${schemaName}::text is null
        or exists (select 1 from pg_namespace where nspname = ${schemaName}) as schema_exists,
      (select oid::regclass::text from rel) as rel,
      (select format_type(oid, null) from enum_type where oid is not null) as status_type,
      (select array_agg(e.enumlabel::text order by e.enumsortorder)
         from pg_enum e, enum_type where e.enumtypid = enum_type.oid) as enum_labels,
      (select n.nspname::text from pg_extension x join pg_namespace n on n.oid = x.extnamespace
         where x.extname = 'pg_trgm') as trgm_schema,
      exists (select 1 from pg_available_extensions where name = 'pg_trgm') as trgm_available,
      to_regclass(${migrationsTable})::text as migrations`;

  const state: DbState = {
    schemaExists: base!.schema_exists,
    tableExists: base!.rel !== null,
    tableEmpty: true,
    statusType: base!.status_type,
    enumLabels: base!.enum_labels ?? [],
    columns: new Set(),
    hasUpdatedAtTrigger: false,
    indexes: [],
    trgmSchema: base!.trgm_schema,
    trgmAvailable: base!.trgm_available,
    recorded: new Set(),
  };

  if (state.tableExists) {
    const table = sql(db.table);
    const cols = await sql<{ name: string }[]>`
      select attname::text as name from pg_attribute
      where attrelid = to_regclass(${qualified}) and attnum > 0 and not attisdropped`;
    state.columns = new Set(cols.map((c) => c.name));
    const [{ empty }] = await sql<{ empty: boolean }[]>`
      select not exists (select 1 from ${table}) as empty` as unknown as [{ empty: boolean }];
    state.tableEmpty = empty;
    state.hasUpdatedAtTrigger = await hasUpdatedAtTrigger(db);
    state.indexes = await readIndexes(db);
  }
  if (base!.migrations) {
    const rows = await sql<{ name: string }[]>`
      select name from ${sql(base!.migrations.replaceAll('"', ""))}
      where table_name = ${db.tableName}`;
    state.recorded = new Set(rows.map((r) => r.name));
  }
  return state;
}

/** Whether `idx` (or an equivalent valid index under another name) exists. */
export function indexPresent(
  idx: RecommendedIndex,
  existing: ReadonlyArray<
    { name: string; valid: boolean; columns: string[] | null; partial: boolean }
  >,
): boolean {
  return existing.some((e) =>
    e.valid && (e.name === idx.name ||
      (idx.columns !== undefined && !e.partial && e.columns !== null &&
        e.columns.join(",") === idx.columns.join(",")))
  );
}

function buildPlan(db: Db, state: DbState): MigrationPlan {
  const steps: MigrationStep[] = [];
  const notes: string[] = [];
  const schemaPrefix = db.schema ? `${quoteIdent(db.schema)}.` : "";
  const table = `${schemaPrefix}${quoteIdent(db.tableName)}`;
  const statusType = state.statusType ?? `${schemaPrefix}taskstatus`;
  const tx = (description: string, sql: string) =>
    steps.push({ description, sql, transactional: true });

  if (!state.schemaExists) {
    tx(`create schema ${db.schema}`, `create schema if not exists ${quoteIdent(db.schema!)}`);
  }
  if (state.statusType === null) {
    tx(
      "create the taskstatus enum",
      `create type ${statusType} as enum (${TASK_STATUSES.map((s) => `'${s}'`).join(", ")})`,
    );
  } else if (state.enumLabels.length > 0) {
    for (const s of TASK_STATUSES) {
      if (!state.enumLabels.includes(s)) {
        steps.push({
          description: `add status "${s}" to ${statusType}`,
          sql: `alter type ${statusType} add value if not exists '${s}'`,
          transactional: false,
        });
      }
    }
  }
  if (!state.tableExists) {
    tx(
      `create table ${db.table}`,
      `create table ${table} (\n${
        COLUMNS.map(([name, ddl]) => `  ${name} ${ddl(statusType)}`).join(",\n")
      }\n)`,
    );
  } else {
    const missing = COLUMNS.filter(([name]) => !state.columns.has(name));
    if (missing.length > 0) {
      // A constant default is a catalog-only change since PostgreSQL 11: no table rewrite.
      tx(
        `add missing columns ${missing.map(([n]) => n).join(", ")}`,
        `alter table ${table}\n${
          missing.map(([name, ddl]) => `  add column if not exists ${name} ${ddl(statusType)}`)
            .join(",\n")
        }`,
      );
    }
  }
  if (!state.hasUpdatedAtTrigger) {
    const fn = `${schemaPrefix}seedtask_touch_updated_at`;
    tx(
      "create the function that keeps updated_at current",
      `create or replace function ${fn}() returns trigger language plpgsql as $fn$\n` +
        `begin\n  new.updated_at := now();\n  return new;\nend\n$fn$`,
    );
    tx(
      "create the updated_at trigger",
      `create or replace trigger ${quoteIdent(`${db.tableName}_touch_updated_at`)}\n` +
        `  before update on ${table}\n  for each row execute function ${fn}()`,
    );
  }

  // On a table that already holds rows, build indexes without blocking writers.
  const concurrently = state.tableExists && !state.tableEmpty;
  let trgmSchema = state.trgmSchema;
  for (const idx of recommendedIndexes(db.tableName)) {
    if (indexPresent(idx, state.indexes)) continue;
    if (idx.trgm && trgmSchema === null) {
      if (!state.trgmAvailable) {
        notes.push(
          `skipped ${idx.name}: the pg_trgm extension is not available on this server; ` +
            "list --search still works, by scanning",
        );
        continue;
      }
      tx("install pg_trgm for the search index", "create extension if not exists pg_trgm");
      trgmSchema = "";
    }
    const invalid = state.indexes.find((e) => e.name === idx.name && !e.valid);
    if (invalid) {
      steps.push({
        description: `drop the invalid index ${idx.name} left by an interrupted build`,
        sql: `drop index concurrently if exists ${schemaPrefix}${quoteIdent(idx.name)}`,
        transactional: false,
      });
    }
    const def = idx.definition(statusType, trgmSchema || undefined);
    const using = def.startsWith("using ") ? def : `using btree ${def}`;
    const create = `create index${concurrently ? " concurrently" : ""} if not exists ${
      quoteIdent(idx.name)
    } on ${table} ${using}`;
    const step = { description: `create index ${idx.name} (${idx.purpose})`, sql: create };
    if (concurrently) steps.push({ ...step, transactional: false });
    else tx(step.description, step.sql);
  }

  const pending = MIGRATIONS.filter((m) => !state.recorded.has(m));
  if (pending.length > 0 || steps.length > 0) {
    tx(
      "create the migrations record",
      `create table if not exists ${schemaPrefix}seedtask_migrations (\n` +
        "  table_name text not null,\n  name text not null,\n" +
        "  applied_at timestamptz not null default now(),\n  primary key (table_name, name)\n)",
    );
    tx(
      "record the applied migrations",
      `insert into ${schemaPrefix}seedtask_migrations (table_name, name) values ${
        MIGRATIONS.map((m) => `('${db.tableName.replaceAll("'", "''")}', '${m}')`).join(", ")
      } on conflict do nothing`,
    );
  }
  return { steps, notes };
}

/** Computes what `migrate` would run against the current database, without changing it. */
export function planMigration(db: Db): Promise<MigrationPlan> {
  return guard(db, async () => buildPlan(db, await readState(db)));
}

/** Renders a plan as an SQL script (what `migrate --dry-run` prints). */
export function migrationScript(plan: MigrationPlan): string {
  if (plan.steps.length === 0) return "-- nothing to do: the task table is up to date\n";
  return plan.steps.map((s) => `-- ${s.description}\n${s.sql};\n`).join("\n");
}

/**
 * The advisory lock every seedtask migrate of a database takes, in the two-key space. (Before
 * it was transaction-scoped, seedtask used the one-key `hashtext('seedtask.migrate')` as a
 * session lock: a migrate of that older kind waits with a snapshot held, which stalls a
 * CREATE INDEX CONCURRENTLY of this one, so the two protocols do not share a lock.)
 */
const MIGRATE_LOCK = "hashtext('seedtask'), hashtext('migrate')";

/** Longest single wait for the migrate lock (see {@link withMigrateLock}). */
const LOCK_SLICE_MS = 100;

/**
 * Runs `fn` while holding the migrate lock: a transaction-scoped advisory lock
 * (`pg_advisory_xact_lock`), held by a transaction that stays open — idle, without a snapshot —
 * on a connection of its own while `fn` works on others, and released when that transaction
 * ends: at the end of the migration, or when its connection drops. A session lock would not do
 * through a transaction pooler: taken on one server connection and "released" on another, it
 * stays behind on a connection other clients get, and the next migrate waits for it forever.
 *
 * The wait is cut into slices of 100ms (`lock_timeout`), each in a transaction of
 * its own. A waiting statement holds a snapshot, and CREATE INDEX CONCURRENTLY in the running
 * migration waits for older snapshots to go: unsliced, the two would wait for each other
 * for good. Gives up after the statement timeout (never, with 0), as one waiting statement
 * would.
 */
async function withMigrateLock<T>(db: Db, fn: () => Promise<T>): Promise<T> {
  // An embedded database (PGlite) belongs to one process and has one session, shared by
  // every connection: there is no one to serialise with, and a transaction held open on one
  // connection would hold up all the others.
  const [{ embedded }] = await guard(
    db,
    () => db.sql`select version() like '%PGlite%' as embedded`,
  ) as unknown as [{ embedded: boolean }];
  if (embedded) return await fn();
  // The holder gets a connection of its own, not one of db's pool: with a pool of one, `fn`
  // would wait for the connection the lock is held on.
  await using holder = connect({ ...db.config, maxConnections: 1 });
  const patience = db.config.statementTimeoutMs;
  const started = Date.now();
  for (;;) {
    const left = patience - (Date.now() - started);
    const slice = patience > 0 ? Math.max(1, Math.min(LOCK_SLICE_MS, left)) : LOCK_SLICE_MS;
    let locked = false;
    try {
      return await inTransaction(holder, async (tx) => {
        // The simple protocol, on purpose: an extended-protocol portal keeps its snapshot
        // (and this backend's xmin) until the transaction ends, and CREATE INDEX
        // CONCURRENTLY in `fn` would wait for that snapshot — for this very transaction.
        await tx.unsafe(
          `select set_config('lock_timeout', '${slice}', true); ` +
            `select pg_advisory_xact_lock(${MIGRATE_LOCK})`,
        );
        locked = true;
        return await fn();
      });
    } catch (err) {
      if (locked || (err as { code?: string }).code !== "55P03") throw err;
      if (patience > 0 && Date.now() - started >= patience) {
        throw new SeedtaskError(
          "migration_in_progress",
          `Another migration of ${db.target} is running: waited ${
            formatDuration(patience)
          } for it to finish`,
          { hint: "try again when it is done, or wait longer with --statement-timeout" },
        );
      }
    }
  }
}

/**
 * Creates the task table contract (DESIGN §4) or adds only what an existing table lacks.
 * Idempotent: a second run plans nothing. Concurrent migrations of the same database
 * serialise on an advisory lock (see {@link withMigrateLock}), which works the same through a
 * transaction pooler. Consecutive transactional steps run as one transaction; CREATE INDEX
 * CONCURRENTLY and ALTER TYPE ... ADD VALUE on their own, outside a transaction and without
 * the statement timeout (see {@link runUntimed}).
 */
export async function migrate(
  db: Db,
  options: { dryRun?: boolean } = {},
): Promise<MigrationResult> {
  if (options.dryRun) {
    return await guard(db, async () => ({ ...buildPlan(db, await readState(db)), dryRun: true }));
  }
  try {
    return await withMigrateLock(db, async () => {
      const plan = await guard(db, async () => buildPlan(db, await readState(db)));
      let batch: string[] = [];
      const flush = async () => {
        if (batch.length === 0) return;
        const script = batch.join(";\n");
        batch = [];
        await inTransaction(db, (tx) => tx.unsafe(script).simple());
      };
      for (const step of plan.steps) {
        if (step.transactional) {
          batch.push(step.sql);
          continue;
        }
        await flush();
        await runUntimed(db, step.sql);
      }
      await flush();
      return { ...plan, dryRun: false };
    });
  } catch (err) {
    throw mapDbError(err, db);
  } finally {
    invalidateTableInfo(db);
  }
}
