/**
 * What PostgreSQL's catalog says about the task table, read in one statement: its columns
 * and their types, the status enum's labels, its indexes with their full definitions, the
 * updated_at trigger and pg_trgm. `migrate` plans from it, `doctor` reports from it, the
 * queries choose their shape from it (see {@link IndexSupport}) and lib/db.ts explains
 * failures with it.
 *
 * This module takes a {@link CatalogTarget} — the parts of a Db it reads through — rather
 * than importing lib/db.ts, so that db.ts can use it without an import cycle.
 */
import type postgres from "postgres";
import { IncompatibleTableError, TableNotFoundError } from "../errors.ts";
import {
  COLUMNS,
  indexDefinition,
  type IndexShape,
  LEASE_COLUMNS,
  PAUSES_TABLE,
  type RecommendedIndex,
  recommendedIndexes,
  STATUS_TYPE,
} from "./contract.ts";

/** The postgres.js tagged-template client (the same type as lib/db.ts's `Sql`). */
// deno-lint-ignore ban-types
type Sql = postgres.Sql<{}>;

/** What the catalog needs of a Db (lib/db.ts's Db is one). */
export interface CatalogTarget {
  /** The pool (or, in pooler mode, the operation's transaction) to read through. */
  readonly sql: Sql;
  /** The table as configured (`tasks` or `schema.tasks`). */
  readonly table: string;
  /** The table's schema, when configured. */
  readonly schema?: string;
  /** The table's name without its schema. */
  readonly tableName: string;
  /** `host:port/database`, for messages. */
  readonly target: string;
  /** Where the catalog is kept between reads (see {@link getCatalog}). */
  readonly cache: Map<string, unknown>;
}

/** A column of the table. */
export interface CatalogColumn {
  /** The column's name. */
  name: string;
  /** The type as the catalog prints it, with its modifier (`uuid`, `character varying(80)`). */
  type: string;
  /** The type's oid. */
  oid: number;
  /** The type's pg_type.typcategory (`E` for enums, `S` strings, …). */
  category: string;
  /** Whether the type is an enum. */
  isEnum: boolean;
}

/** An index of the table. */
export interface CatalogIndex {
  /** The index's name. */
  name: string;
  /** False for an index left half-built by an interrupted CREATE INDEX CONCURRENTLY. */
  valid: boolean;
  /** Access method: `btree`, `gin`, … */
  method: string;
  /** Key columns in order (not the INCLUDE ones); null where a key is an expression. */
  keys: (string | null)[];
  /** INCLUDE columns in order. */
  include: string[];
  /** Whether it has a predicate (a partial index). */
  partial: boolean;
  /**
   * Everything after `ON <table>` of its `pg_get_indexdef`: access method, keys with their
   * operator classes, collations and orderings, INCLUDE columns, predicate. Null when the
   * catalog was read while another session held (or waited for) an exclusive lock on the
   * table: printing a definition has to wait for that lock (see {@link readCatalog}).
   */
  definition: string | null;
}

/** The task table as the catalog describes it. */
export interface Catalog {
  /** Whether the configured schema exists (true when no schema is configured). */
  schemaExists: boolean;
  /** The table as PostgreSQL names it (regclass text); null when it does not exist. */
  relation: string | null;
  /** The table's columns in table order; empty when it does not exist. */
  columns: CatalogColumn[];
  /**
   * The type of the status column (or, without one, of a `taskstatus` type in the table's
   * schema) as SQL text, qualified when it is not on the search path; null when neither exists.
   */
  statusType: string | null;
  /** That type's enum labels in order; empty when it is not an enum. */
  enumLabels: string[];
  /** The table's indexes, by name; empty when it does not exist. */
  indexes: CatalogIndex[];
  /** A BEFORE trigger whose function mentions updated_at exists (seedtask's or SeedCore's). */
  updatedAtTrigger: boolean;
  /** The schema pg_trgm is installed in; null when it is not installed. */
  trgmSchema: string | null;
  /** Whether pg_trgm is installed or could be (`create extension`). */
  trgmAvailable: boolean;
  /** `seedtask_migrations` next to the table (regclass text), null when it does not exist. */
  migrationsTable: string | null;
  /** `seedtask_pauses` next to the table (regclass text), null when it does not exist. */
  pausesTable: string | null;
  /** `seedtask_workers` next to the table (regclass text), null when it does not exist. */
  workersTable: string | null;
  /** Names of relations in the table's schema that begin with `<table>_` (index names taken). */
  takenNames: string[];
}

interface CatalogRow {
  schema_exists: boolean;
  relation: string | null;
  columns: CatalogColumn[] | null;
  status_type: string | null;
  enum_labels: string[] | null;
  indexes: Array<Omit<CatalogIndex, "definition"> & { indexdef: string | null }> | null;
  updated_at_trigger: boolean;
  trgm_schema: string | null;
  trgm_available: boolean;
  migrations_table: string | null;
  pauses_table: string | null;
  workers_table: string | null;
  taken_names: string[] | null;
}

/** Options of {@link readCatalog}. */
export interface ReadCatalogOptions {
  /** Where to run the statement (a transaction of the caller's); default `target.sql`. */
  sql?: Sql | postgres.TransactionSql;
  /**
   * Print every index definition even when that means waiting for another session's
   * exclusive lock on the table (`migrate` and `doctor`, which must not guess). By default a
   * definition that would wait is left null, and the index is recognised by its shape.
   */
  definitions?: boolean;
}

/**
 * Reads the catalog of `target`'s table, uncached (see {@link getCatalog} for the cached
 * read), in one statement.
 *
 * Reading the catalog takes no lock, but printing an index definition (`pg_get_indexdef`)
 * takes a share lock on the table, and so waits behind an ACCESS EXCLUSIVE lock (ALTER TABLE,
 * VACUUM FULL, LOCK TABLE) held or awaited by another session. Unless
 * `options.definitions` is set, the definitions are then left out, so that the catalog can
 * still be read — by the queries before they run, and by lib/db.ts to explain a statement
 * timeout caused by just such a lock.
 */
export async function readCatalog(
  target: CatalogTarget,
  options: ReadCatalogOptions = {},
): Promise<Catalog> {
  const sql = options.sql ?? target.sql;
  // Lists come as JSON: postgres.js parses a text[] only once it has loaded the server's
  // array types, which races with the first query on a new connection.
  const [row] = await sql<CatalogRow[]>`
    with target as (
      select ${target.schema ?? null}::text as schema, ${target.tableName}::text as name,
        coalesce(quote_ident(${target.schema ?? null}::text) || '.', '') as prefix
    ),
    rel as (select to_regclass(t.prefix || quote_ident(t.name)) as oid from target t),
    ns as (
      select coalesce(
        (select c.relnamespace from pg_class c join rel on c.oid = rel.oid),
        (select n.oid from pg_namespace n, target t
         where n.nspname = coalesce(t.schema, current_schema()))
      ) as oid
    ),
    status_type as (
      select coalesce(
        (select a.atttypid from pg_attribute a join rel on a.attrelid = rel.oid
         where a.attname = 'status' and not a.attisdropped),
        (select to_regtype(t.prefix || ${STATUS_TYPE})::oid from target t)
      ) as oid
    ),
    printable as (
      select ${options.definitions ?? false}::boolean or not exists (
        select 1 from pg_locks l join rel on l.relation = rel.oid
        where l.locktype = 'relation' and l.mode = 'AccessExclusiveLock'
          and l.pid <> pg_backend_pid()
          and l.database = (select oid from pg_database where datname = current_database())
      ) as yes
    )
    select
      (select t.schema is null or exists (select 1 from pg_namespace where nspname = t.schema)
       from target t) as schema_exists,
      (select oid::regclass::text from rel) as relation,
      (select json_agg(json_build_object(
          'name', a.attname, 'type', format_type(a.atttypid, a.atttypmod),
          'oid', a.atttypid::int, 'category', ty.typcategory, 'isEnum', ty.typtype = 'e')
          order by a.attnum)
       from rel join pg_attribute a on a.attrelid = rel.oid join pg_type ty on ty.oid = a.atttypid
       where a.attnum > 0 and not a.attisdropped) as columns,
      (select format_type(oid, null) from status_type where oid is not null) as status_type,
      (select json_agg(e.enumlabel order by e.enumsortorder)
       from pg_enum e join status_type s on e.enumtypid = s.oid) as enum_labels,
      (select json_agg(json_build_object(
          'name', c.relname, 'valid', i.indisvalid, 'method', am.amname,
          'partial', i.indpred is not null,
          'keys', (select array_agg(a.attname order by k.ord)
                   from unnest(i.indkey::int2[]) with ordinality as k(attnum, ord)
                   left join pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.attnum
                   where k.ord <= i.indnkeyatts),
          'include', (select coalesce(array_agg(a.attname order by k.ord), '{}')
                   from unnest(i.indkey::int2[]) with ordinality as k(attnum, ord)
                   join pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.attnum
                   where k.ord > i.indnkeyatts),
          'indexdef', case when p.yes then pg_get_indexdef(i.indexrelid) end)
          order by c.relname)
       from rel join pg_index i on i.indrelid = rel.oid
       join pg_class c on c.oid = i.indexrelid join pg_am am on am.oid = c.relam,
       printable p) as indexes,
      exists (
        select 1 from rel join pg_trigger tg on tg.tgrelid = rel.oid
        join pg_proc p on p.oid = tg.tgfoid
        where not tg.tgisinternal and tg.tgtype & 2 = 2 and p.prosrc ilike '%updated_at%'
      ) as updated_at_trigger,
      (select n.nspname::text from pg_extension x join pg_namespace n on n.oid = x.extnamespace
       where x.extname = 'pg_trgm') as trgm_schema,
      -- pg_available_extensions reads the server's extension directory: only when needed
      coalesce((select true from pg_extension where extname = 'pg_trgm'),
        exists (select 1 from pg_available_extensions where name = 'pg_trgm')) as trgm_available,
      (select to_regclass(t.prefix || 'seedtask_migrations')::text from target t)
        as migrations_table,
      (select to_regclass(t.prefix || ${PAUSES_TABLE})::text from target t) as pauses_table,
      (select to_regclass(t.prefix || 'seedtask_workers')::text from target t) as workers_table,
      (select json_agg(c.relname) from pg_class c join ns on c.relnamespace = ns.oid, target t
       where left(c.relname::text, length(t.name) + 1) = t.name || '_') as taken_names`;
  const r = row!;
  return {
    schemaExists: r.schema_exists,
    relation: r.relation,
    columns: r.columns ?? [],
    statusType: r.status_type,
    enumLabels: r.enum_labels ?? [],
    indexes: (r.indexes ?? []).map(({ indexdef, ...i }) => ({
      ...i,
      definition: indexdef === null ? null : definitionOf(indexdef),
    })),
    updatedAtTrigger: r.updated_at_trigger,
    trgmSchema: r.trgm_schema,
    trgmAvailable: r.trgm_available,
    migrationsTable: r.migrations_table,
    pausesTable: r.pauses_table,
    workersTable: r.workers_table,
    takenNames: r.taken_names ?? [],
  };
}

/** An identifier as PostgreSQL prints it: plain lowercase, or double-quoted. */
const IDENT = String.raw`(?:"(?:[^"]|"")*"|[A-Za-z_][A-Za-z0-9_$]*)`;
const INDEXDEF_HEAD = new RegExp(
  String.raw`^CREATE (?:UNIQUE )?INDEX ${IDENT} ON (?:ONLY )?${IDENT}\.${IDENT} `,
);

/** `CREATE INDEX name ON schema.table USING …` -> `USING …`. */
function definitionOf(indexdef: string): string {
  return indexdef.replace(INDEXDEF_HEAD, "");
}

const QUALIFIER = new RegExp(`${IDENT}\\.(?=["A-Za-z_])`, "g");

/**
 * An index definition with schema qualifiers dropped and white space collapsed, outside
 * string literals. PostgreSQL qualifies a type or operator class in `pg_get_indexdef` only
 * when it is not on the search path, so the same index prints differently from one session
 * to another; an index definition names no other table, so what is left identifies it.
 */
export function normalizeDefinition(definition: string): string {
  return definition.split(/('(?:[^']|'')*')/).map((part, i) =>
    i % 2 === 1 ? part : part.replace(QUALIFIER, "").replace(/\s+/g, " ")
  ).join("").trim();
}

/** How the table stands with one recommended index. */
export interface IndexMatch {
  /** The recommended index (see lib/table/contract.ts). */
  index: RecommendedIndex;
  /** Its definition, normalised (see {@link normalizeDefinition}). */
  expected: string;
  /** A valid index of the table with that definition, whatever its name. */
  present?: CatalogIndex;
  /**
   * An invalid index with that definition, named like the recommended one (or like it with a
   * number after it): left by an interrupted build of seedtask's.
   */
  broken?: CatalogIndex;
  /**
   * The index named like the recommended one, when its definition is another one (and not
   * one of {@link outdated}): not seedtask's, never touched.
   */
  other?: CatalogIndex;
  /**
   * Indexes named like the recommended one (or like it with a number after it) with a
   * definition an older seedtask gave it ({@link RecommendedIndex.replaces}): seedtask's own,
   * to be replaced.
   */
  outdated: CatalogIndex[];
  /**
   * A valid index with the recommended definition under the temporary name of a replacement
   * (see {@link replacementName}): built by a `migrate` that was interrupted before it could
   * drop the outdated index or rename this one.
   */
  replacement?: CatalogIndex;
}

/**
 * Whether `name` is one `migrate` gives `index`: its own, or its own with a number after it
 * (`name1`, `name2`, …: the first free one when its own is taken).
 */
export function isOwnName(index: RecommendedIndex, name: string): boolean {
  return named(name, index.name);
}

/** `base`, or `base` with a number after it. */
function named(name: string, base: string): boolean {
  return name.startsWith(base) && /^\d*$/.test(name.slice(base.length));
}

/**
 * The name `migrate` builds a replacement of an outdated index under (`<name>_new`, with a
 * number after it when that is taken), so that the outdated index keeps serving until the new
 * one is built: the new one takes the recommended name once the outdated one is dropped.
 */
export function replacementName(index: RecommendedIndex): string {
  return `${index.name}_new`;
}

const COLUMN_NAME = /^[a-z_][a-z0-9_]*$/;

/**
 * Whether `actual` is built as `shape` (normalised definition `expected`): by its definition
 * (access method, keys with their operator classes, orderings and collations, INCLUDE
 * columns, predicate). When the definition could not be printed (see {@link readCatalog}),
 * by what the catalog says without printing it: access method, key columns in order
 * (expressions as such), INCLUDE columns and whether it is partial.
 */
function hasShape(actual: CatalogIndex, shape: IndexShape, expected: string): boolean {
  if (actual.definition !== null) return normalizeDefinition(actual.definition) === expected;
  const same = (a: readonly (string | null)[], b: readonly (string | null)[]) =>
    a.length === b.length && a.every((x, n) => x === b[n]);
  return actual.method === shape.method && actual.partial === (shape.where !== undefined) &&
    same(actual.keys, shape.keys.map((k) => COLUMN_NAME.test(k) ? k : null)) &&
    same(actual.include, shape.include);
}

/** Matches each recommended index against the table's indexes. */
export function matchRecommendedIndexes(tableName: string, catalog: Catalog): IndexMatch[] {
  const statusType = catalog.statusType ?? STATUS_TYPE;
  const normalized = (shape: IndexShape) => normalizeDefinition(indexDefinition(shape, statusType));
  return recommendedIndexes(tableName).map((index) => {
    const expected = normalized(index);
    const same = catalog.indexes.filter((i) => hasShape(i, index, expected));
    const ownName = (name: string) => isOwnName(index, name);
    const tempName = (name: string) => named(name, replacementName(index));
    const outdated = catalog.indexes.filter((i) =>
      ownName(i.name) && !same.includes(i) &&
      index.replaces.some((shape) => hasShape(i, shape, normalized(shape)))
    );
    return {
      index,
      expected,
      // The replacement only when no other index has the definition.
      present: same.find((i) => i.valid && !tempName(i.name)) ?? same.find((i) => i.valid),
      broken: same.find((i) => !i.valid && (ownName(i.name) || tempName(i.name))),
      other: catalog.indexes.find((i) =>
        i.name === index.name && !same.includes(i) && !outdated.includes(i)
      ),
      outdated,
      replacement: same.find((i) => i.valid && tempName(i.name)),
    };
  });
}

/**
 * Names of the recommended indexes the table lacks — leaving out the trigram index when
 * pg_trgm is not available, since `migrate` could not add it either.
 */
export function missingIndexes(tableName: string, catalog: Catalog): string[] {
  return missingOf(matchRecommendedIndexes(tableName, catalog), catalog);
}

function missingOf(matches: IndexMatch[], catalog: Catalog): string[] {
  return matches.filter((m) => !m.present && !(m.index.trgm && !catalog.trgmAvailable))
    .map((m) => m.index.name);
}

/** The task table's indexes as far as the query builders care. */
export interface IndexSupport {
  /** Recommended indexes `seedtask migrate` would create that the table lacks (names). */
  missing: string[];
  /** A valid, non-partial btree index whose key starts with `columns`, in that order. */
  leads(...columns: string[]): boolean;
  /** The recommended index `<table>_<suffix>` (e.g. `claim_idx`), under any name, exists. */
  recommended(suffix: string): boolean;
}

/**
 * What the builders assume when they are not told: every recommended index is there (the
 * table `migrate` creates). Lets tests and the unlimited export build queries without a read.
 */
export const ALL_RECOMMENDED: IndexSupport = {
  missing: [],
  leads: () => true,
  recommended: () => true,
};

/**
 * Which indexes the table has, so the read queries can take the shape that is cheap on it.
 * seedtask's recommended indexes make per-day and per-status range counts nearly free; on a
 * table that never ran `migrate` — SeedCore's own schema has only (status), (created_at) and
 * its partial claim index — each of those ranges is a walk over every row of a status, and
 * one grouped pass over the table is far cheaper.
 */
export function indexSupport(tableName: string, catalog: Catalog): IndexSupport {
  // Matching normalises every index definition against every recommended one: worked out once
  // per catalog read, not on each query (it was a quarter of serve's CPU per GET /tasks).
  let byTable = supportCache.get(catalog);
  if (!byTable) supportCache.set(catalog, byTable = new Map());
  const cached = byTable.get(tableName);
  if (cached) return cached;
  const matches = matchRecommendedIndexes(tableName, catalog);
  const present = new Set(matches.filter((m) => m.present).map((m) => m.index.suffix));
  const support: IndexSupport = {
    missing: missingOf(matches, catalog),
    leads: (...columns) =>
      catalog.indexes.some((i) =>
        i.valid && i.method === "btree" && !i.partial && columns.every((c, n) => i.keys[n] === c)
      ),
    recommended: (suffix) => present.has(suffix),
  };
  byTable.set(tableName, support);
  return support;
}

/** {@link indexSupport} per catalog read and table name. */
const supportCache = new WeakMap<Catalog, Map<string, IndexSupport>>();

/** {@link indexSupport} of the cached catalog (see {@link getCatalog}). */
export async function getIndexSupport(target: CatalogTarget): Promise<IndexSupport> {
  return indexSupport(target.tableName, await getCatalog(target));
}

/** Column metadata of the task table. */
export interface TableInfo {
  /** column name -> type as the catalog prints it (`uuid`, `taskstatus`, `timestamp with time zone`). */
  columns: Map<string, string>;
  /** column name -> its type's oid and pg_type.typcategory (`E` for enums, `S` strings, …). */
  columnTypes: Map<string, { oid: number; category: string }>;
  /** owner_id, lease_expires_at and last_heartbeat are all present (SeedCore migration 006). */
  hasLease: boolean;
}

/**
 * The table's columns from `catalog`. Throws {@link TableNotFoundError} when the table does
 * not exist, so every command reports a missing table the same way.
 */
export function tableInfo(target: CatalogTarget, catalog: Catalog): TableInfo {
  if (catalog.relation === null) {
    throw new TableNotFoundError(`Table "${target.table}" does not exist in ${target.target}`);
  }
  const columns = new Map(catalog.columns.map((c) => [c.name, c.type]));
  return {
    columns,
    columnTypes: new Map(
      catalog.columns.map((c) => [c.name, { oid: c.oid, category: c.category }]),
    ),
    hasLease: LEASE_COLUMNS.every((c) => columns.has(c)),
  };
}

/** How long a read is reused: a long-running `serve` sees a later `migrate` within this. */
const TTL_MS = 60_000;
const CACHE_KEY = "catalog";

interface CacheEntry {
  at: number;
  value: Promise<Catalog>;
  /** The catalog once read, for synchronous use (see {@link cachedMissingIndexes}). */
  read?: Catalog;
}

/**
 * The catalog, read at most once per {@link TTL_MS} per Db and shared by everything that
 * asks meanwhile. A missing table is not remembered: it may be created any moment.
 * {@link invalidateCatalog} forgets it (after `migrate`).
 */
export function getCatalog(target: CatalogTarget): Promise<Catalog> {
  const cached = target.cache.get(CACHE_KEY) as CacheEntry | undefined;
  if (cached && Date.now() - cached.at < TTL_MS) return cached.value;
  return remember(target, readCatalog(target));
}

function remember(target: CatalogTarget, value: Promise<Catalog>): Promise<Catalog> {
  const entry: CacheEntry = { at: Date.now(), value };
  target.cache.set(CACHE_KEY, entry);
  const forget = () => {
    if (target.cache.get(CACHE_KEY) === entry) target.cache.delete(CACHE_KEY);
  };
  value.then((catalog) => {
    if (catalog.relation === null) forget();
    else entry.read = catalog;
  }, forget);
  return value;
}

/** Forgets the cached catalog: the next read sees the table as it is now. */
export function invalidateCatalog(target: CatalogTarget): void {
  target.cache.delete(CACHE_KEY);
}

/**
 * The recommended indexes the table lacks, when a catalog has been read (by this command or
 * by {@link learnMissingIndexes}); undefined otherwise. Synchronous, for error messages.
 */
export function cachedMissingIndexes(target: CatalogTarget): string[] | undefined {
  const read = (target.cache.get(CACHE_KEY) as CacheEntry | undefined)?.read;
  return read ? missingIndexes(target.tableName, read) : undefined;
}

/**
 * After a statement timeout: reads the catalog under a short timeout of its own (the server
 * may be the reason the statement was slow), so that the error can say which recommended
 * indexes are missing. Gives up after `timeoutMs` even while waiting for a free connection
 * (other statements of the command may hold the pool), so the error is never held back long.
 */
export async function learnMissingIndexes(target: CatalogTarget, timeoutMs = 2000): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const read = target.sql.begin(async (tx) => {
    await tx`select set_config('statement_timeout', ${String(timeoutMs)}, true)`;
    return await readCatalog(target, { sql: tx });
  });
  const learnt = read.then((catalog) => void remember(target, Promise.resolve(catalog)));
  try {
    await Promise.race([learnt, new Promise((resolve) => timer = setTimeout(resolve, timeoutMs))]);
  } finally {
    clearTimeout(timer);
    learnt.catch(() => {}); // settles later, or failed: the message just lacks the hint
  }
}

/**
 * A type mismatch in seedtask's own queries means the table is not a task table — most often
 * an `id` that is not a uuid (a `--table` pointing at some other table). Says so when that is
 * the case; otherwise returns `mapped`.
 */
export async function explainMismatch(target: CatalogTarget, mapped: Error): Promise<Error> {
  try {
    const id = (await getCatalog(target)).columns.find((c) => c.name === "id");
    const accepts = COLUMNS.find((c) => c.name === "id")!.accepts;
    if (id && !accepts.includes(id.type)) {
      return new IncompatibleTableError(
        `Table "${target.table}" is not a task table: its id is ${id.type}, not ${
          accepts.join(" or ")
        }`,
        mapped,
      );
    }
  } catch {
    // keep the original error
  }
  return mapped;
}
