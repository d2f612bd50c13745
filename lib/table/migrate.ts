import {
  connect,
  type Db,
  guard,
  inTransaction,
  mapDbError,
  quoteIdent,
  runUntimed,
} from "../db.ts";
import { formatDuration } from "../duration.ts";
import { SeedtaskError } from "../errors.ts";
import {
  type Catalog,
  invalidateCatalog,
  isOwnName,
  matchRecommendedIndexes,
  readCatalog,
  replacementName,
} from "./catalog.ts";
import {
  COLUMNS,
  type ContractColumn,
  indexDefinition,
  PAUSE_COLUMNS,
  PAUSE_INDEXES,
  PAUSES_TABLE,
  STATUS_TYPE,
  TASK_STATUSES,
  WORKER_COLUMNS,
  WORKERS_TABLE,
} from "./contract.ts";

/** One DDL statement of a migration plan. */
export interface MigrationStep {
  /** What the statement does, for humans. */
  description: string;
  /** The statement. */
  sql: string;
  /**
   * False for statements PostgreSQL refuses inside a transaction block (CREATE INDEX
   * CONCURRENTLY) or whose effect later statements need committed (ALTER TYPE ... ADD VALUE).
   */
  transactional: boolean;
}

/** What {@link migrate} has to do to bring a table up to the contract. */
export interface MigrationPlan {
  /** The statements, in order. */
  steps: MigrationStep[];
  /**
   * What migrate did otherwise than planned, or chose not to do, and why: the search index
   * skipped without pg_trgm, a recommended index created under a free name because its own
   * is another index's.
   */
  notes: string[];
}

/** What {@link migrate} did, or would do in a dry run. */
export interface MigrationResult extends MigrationPlan {
  /** True when nothing was changed (`--dry-run`). */
  dryRun: boolean;
}

/** Names recorded in `seedtask_migrations` once the contract is in place. */
export const MIGRATIONS = [
  "001_task_table_contract",
  "002_task_indexes",
  "003_workers",
  "004_queue_pauses",
] as const;

/** What the plan depends on: the catalog, and two reads of data. */
interface DbState {
  catalog: Catalog;
  /** The table has no rows: its indexes are built without CONCURRENTLY. */
  tableEmpty: boolean;
  /** The migrations `seedtask_migrations` records for this table. */
  recorded: Set<string>;
}

async function readState(db: Db): Promise<DbState> {
  const sql = db.sql;
  const catalog = await readCatalog(db, { definitions: true });
  let tableEmpty = true;
  if (catalog.relation !== null) {
    const [{ empty }] = await sql<{ empty: boolean }[]>`
      select not exists (select 1 from ${sql(db.table)}) as empty` as unknown as [
      { empty: boolean },
    ];
    tableEmpty = empty;
  }
  let recorded = new Set<string>();
  if (catalog.migrationsTable) {
    const rows = await sql<{ name: string }[]>`
      select name from ${sql(catalog.migrationsTable.replaceAll('"', ""))}
      where table_name = ${db.tableName}`;
    recorded = new Set(rows.map((r) => r.name));
  }
  return { catalog, tableEmpty, recorded };
}

/** `name`, or `name1`, `name2`, … : the first that no relation of the schema has. */
function freeName(name: string, taken: ReadonlySet<string>): string {
  if (!taken.has(name)) return name;
  for (let n = 1;; n++) if (!taken.has(`${name}${n}`)) return `${name}${n}`;
}

function buildPlan(db: Db, { catalog, tableEmpty, recorded }: DbState): MigrationPlan {
  const steps: MigrationStep[] = [];
  const notes: string[] = [];
  const schemaPrefix = db.schema ? `${quoteIdent(db.schema)}.` : "";
  const table = `${schemaPrefix}${quoteIdent(db.tableName)}`;
  const statusType = catalog.statusType ?? `${schemaPrefix}${STATUS_TYPE}`;
  const tx = (description: string, sql: string) =>
    steps.push({ description, sql, transactional: true });
  const columnDdl = (c: ContractColumn) =>
    `${c.name} ${c.type === STATUS_TYPE ? statusType : c.type}${
      c.constraints ? ` ${c.constraints}` : ""
    }`;

  if (!catalog.schemaExists) {
    tx(`create schema ${db.schema}`, `create schema if not exists ${quoteIdent(db.schema!)}`);
  }
  if (catalog.statusType === null) {
    tx(
      "create the taskstatus enum",
      `create type ${statusType} as enum (${TASK_STATUSES.map((s) => `'${s}'`).join(", ")})`,
    );
  } else if (catalog.enumLabels.length > 0) {
    for (const s of TASK_STATUSES) {
      if (!catalog.enumLabels.includes(s)) {
        steps.push({
          description: `add status "${s}" to ${statusType}`,
          sql: `alter type ${statusType} add value if not exists '${s}'`,
          transactional: false,
        });
      }
    }
  }
  if (catalog.relation === null) {
    tx(
      `create table ${db.table}`,
      `create table ${table} (\n${COLUMNS.map((c) => `  ${columnDdl(c)}`).join(",\n")}\n)`,
    );
  } else {
    const present = new Set(catalog.columns.map((c) => c.name));
    const missing = COLUMNS.filter((c) => !present.has(c.name));
    if (missing.length > 0) {
      // A constant default is a catalog-only change since PostgreSQL 11: no table rewrite.
      tx(
        `add missing columns ${missing.map((c) => c.name).join(", ")}`,
        `alter table ${table}\n${
          missing.map((c) => `  add column if not exists ${columnDdl(c)}`).join(",\n")
        }`,
      );
    }
  }
  if (!catalog.updatedAtTrigger) {
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
  const concurrently = catalog.relation !== null && !tableEmpty;
  let trgmSchema = catalog.trgmSchema;
  const taken = new Set(catalog.takenNames);
  // Statements that must run outside a transaction on a table with rows (CONCURRENTLY).
  const index = (description: string, sql: string) =>
    concurrently ? steps.push({ description, sql, transactional: false }) : tx(description, sql);
  const qualified = (name: string) => `${schemaPrefix}${quoteIdent(name)}`;
  // An index is recognised by its definition, under any name (see matchRecommendedIndexes).
  for (const match of matchRecommendedIndexes(db.tableName, catalog)) {
    const { index: idx, present, broken, other, outdated, replacement } = match;
    if (present && outdated.length === 0 && !replacement) continue;
    // The name the recommended index is built under, when it has to be built.
    let name: string | undefined;
    if (!present) {
      if (idx.trgm && trgmSchema === null) {
        if (!catalog.trgmAvailable) {
          notes.push(
            `skipped ${idx.name}: the pg_trgm extension is not available on this server; ` +
              "list --search still works, by scanning",
          );
          continue;
        }
        tx("install pg_trgm for the search index", "create extension if not exists pg_trgm");
        trgmSchema = "";
      }
      const def = indexDefinition(idx, statusType, trgmSchema ? quoteIdent(trgmSchema) : undefined);
      if (broken) {
        steps.push({
          description: `drop the invalid index ${broken.name} left by an interrupted build`,
          sql: `drop index concurrently if exists ${qualified(broken.name)}`,
          transactional: false,
        });
        taken.delete(broken.name);
      }
      if (outdated.length > 0) {
        // Built beside the outdated index, which serves until the new one is ready.
        name = freeName(replacementName(idx), taken);
      } else if (broken) {
        name = broken.name;
      } else if (taken.has(idx.name)) {
        // Never touch what is not ours: the recommended index goes in under a free name.
        name = freeName(idx.name, taken);
        notes.push(
          other
            ? `${idx.name} is an index of another definition (${other.definition}), not ` +
              `seedtask's (${def}): the recommended index is created as ${name}`
            : `the name ${idx.name} is taken by another relation: the recommended index is ` +
              `created as ${name}`,
        );
      } else {
        name = idx.name;
      }
      taken.add(name);
      index(
        outdated.length > 0
          ? `create index ${name} (${idx.purpose}), to replace the outdated ${
            outdated.map((o) => o.name).join(", ")
          }`
          : `create index ${name} (${idx.purpose})`,
        `create index${concurrently ? " concurrently" : ""} if not exists ${
          quoteIdent(name)
        } on ${table} ${def}`,
      );
    }
    // Replacing seedtask's own older definition: only once the new index is built, so that
    // the table is never without one of the two. Each step leaves a state the next run
    // recognises (a replacement under its temporary name, an outdated index, an invalid
    // leftover) and finishes from.
    for (const old of outdated) {
      index(
        `drop ${old.name}, an older seedtask's definition of ${idx.name} (${old.definition})`,
        `drop index${concurrently ? " concurrently" : ""} if exists ${qualified(old.name)}`,
      );
      taken.delete(old.name);
    }
    if (replacement && replacement !== present) {
      // Another index has the definition by now: the replacement is not needed.
      index(
        `drop ${replacement.name}, a second index of the definition of ${present!.name}`,
        `drop index${concurrently ? " concurrently" : ""} if exists ${qualified(replacement.name)}`,
      );
      continue;
    }
    if (outdated.length === 0 && !replacement) continue;
    // The replacement takes the name the outdated index had (the first free one of
    // `migrate`'s names): built now, left by an interrupted run, or built under a numbered
    // name by a migrate that did not know the older definition yet.
    const ours = name ?? replacement?.name ??
      (present && isOwnName(idx, present.name) ? present.name : undefined);
    if (ours === undefined) continue;
    taken.delete(ours);
    const final = freeName(idx.name, taken);
    taken.add(final);
    if (final !== ours) {
      tx(
        `rename ${ours} to ${final}`,
        `alter index if exists ${qualified(ours)} rename to ${quoteIdent(final)}`,
      );
    }
  }

  if (catalog.workersTable === null) {
    tx(
      `create ${WORKERS_TABLE}, where dispatchers register themselves (seedtask workers)`,
      `create table if not exists ${schemaPrefix}${WORKERS_TABLE} (\n${
        WORKER_COLUMNS.map((c) => `  ${c}`).join(",\n")
      }\n)`,
    );
  }

  if (catalog.pausesTable === null) {
    const pauses = `${schemaPrefix}${PAUSES_TABLE}`;
    tx(
      `create ${PAUSES_TABLE} (queue pauses: seedtask pause, resume, paused)`,
      `create table if not exists ${pauses} (\n${
        PAUSE_COLUMNS.map((c) => `  ${c}`).join(",\n")
      }\n)`,
    );
    for (const index of PAUSE_INDEXES) {
      tx(
        `create the unique index ${PAUSES_TABLE}_${index.suffix}`,
        `create unique index if not exists ${
          quoteIdent(`${PAUSES_TABLE}_${index.suffix}`)
        } on ${pauses} ${index.definition}`,
      );
    }
  }

  const pending = MIGRATIONS.filter((m) => !recorded.has(m));
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
 * Creates the task table contract (./contract.ts) or adds only what an existing table lacks,
 * and replaces a recommended index an older seedtask created with an older definition (the
 * new one is built under a temporary name, the old one dropped, the new one renamed; a rerun
 * finishes an interrupted replacement). Idempotent: a second run plans nothing. Concurrent migrations of the same database
 * serialise on an advisory lock (see {@link withMigrateLock}), which works the same through a
 * transaction pooler. Consecutive transactional steps run as one transaction; CREATE INDEX
 * CONCURRENTLY and ALTER TYPE ... ADD VALUE on their own, outside a transaction and without
 * the statement timeout (see {@link runUntimed}).
 *
 * @example
 * ```ts
 * console.log(migrationScript(await planMigration(db))); // what it would run
 * await migrate(db);
 * ```
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
    invalidateCatalog(db);
  }
}
