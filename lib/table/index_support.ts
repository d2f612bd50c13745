/**
 * Which indexes the task table actually has, so the read queries can take the shape that is
 * cheap on it. seedtask's recommended indexes (what `migrate` creates) make per-day and
 * per-status range counts nearly free; on a table that never ran `migrate` — SeedCore's own
 * schema has only (status), (created_at) and its partial claim index — each of those ranges
 * is a walk over every row of a status, and one grouped pass over the table is far cheaper.
 */
import type postgres from "postgres";
import { type Db, quoteQualified, type Sql } from "../db.ts";
import { indexPresent, type IndexState, recommendedIndexes } from "./migrate.ts";

/** The task table's indexes as far as the query builders care. */
export interface IndexSupport {
  /** Recommended indexes `seedtask migrate` would create that the table lacks (names). */
  missing: string[];
  /** A valid, non-partial btree index whose key starts with `columns`, in that order. */
  leads(...columns: string[]): boolean;
  /** The recommended index `<table>_<suffix>` (e.g. `claim_idx`) or an equivalent exists. */
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

interface IndexRow extends IndexState {
  btree: boolean;
  /** Key columns in order; null entries are expressions. */
  keys: (string | null)[];
}

/** How long a read is reused: a long-running `serve` sees a later `migrate` within this. */
const TTL_MS = 60_000;

/**
 * Reads the table's indexes (one catalog statement) and whether `migrate` could add the
 * trigram index at all. Cached on the Db for {@link TTL_MS}.
 */
export function getIndexSupport(db: Db): Promise<IndexSupport> {
  const cached = db.cache.get("indexSupport") as
    | { at: number; value: Promise<IndexSupport> }
    | undefined;
  if (cached && Date.now() - cached.at < TTL_MS) return cached.value;
  const value = readIndexSupport(db, db.sql);
  db.cache.set("indexSupport", { at: Date.now(), value });
  value.then(
    // Kept synchronously too, for the statement-timeout message (mapDbError).
    (support) => db.cache.set("missingIndexes", support.missing),
    () => db.cache.delete("indexSupport"),
  );
  return value;
}

/**
 * After a statement timeout: reads which recommended indexes are missing, under a short
 * timeout of its own (the server may be the reason the statement was slow), and records them
 * for the error message. Gives up after `timeoutMs` even while waiting for a free connection
 * (other statements of the command may hold the pool), so the error is never held back long.
 */
export async function learnMissingIndexes(db: Db, timeoutMs = 2000): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const read = db.sql.begin(async (tx) => {
    await tx`select set_config('statement_timeout', ${String(timeoutMs)}, true)`;
    return await readIndexSupport(db, tx);
  }).then((support) => void db.cache.set("missingIndexes", support.missing));
  try {
    await Promise.race([read, new Promise((resolve) => timer = setTimeout(resolve, timeoutMs))]);
  } finally {
    clearTimeout(timer);
    read.catch(() => {}); // settles later, or failed: the message just lacks the hint
  }
}

async function readIndexSupport(db: Db, sql: Sql | postgres.TransactionSql): Promise<IndexSupport> {
  const [row] = await sql<{ indexes: IndexRow[] | null; trgm: boolean }[]>`
    select (
      select json_agg(json_build_object(
        'name', c.relname, 'valid', i.indisvalid, 'partial', i.indpred is not null,
        'btree', am.amname = 'btree',
        'columns', case when 0 = any (i.indkey::int2[]) then null else cols.names end,
        'keys', cols.names[1:i.indnkeyatts]))
      from pg_index i
      join pg_class c on c.oid = i.indexrelid
      join pg_am am on am.oid = c.relam
      cross join lateral (
        select array_agg(a.attname::text order by k.ord) as names
        from unnest(i.indkey::int2[]) with ordinality as k(attnum, ord)
        left join pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.attnum
      ) cols
      where i.indrelid = to_regclass(${quoteQualified(db.table)})
    ) as indexes,
    exists (select 1 from pg_available_extensions where name = 'pg_trgm') as trgm`;
  const indexes = row?.indexes ?? [];
  const recommended = recommendedIndexes(db.tableName);
  const present = new Set(recommended.filter((i) => indexPresent(i, indexes)).map((i) => i.name));
  return {
    // Without pg_trgm on the server, migrate cannot add the search index either.
    missing: recommended.filter((i) => !present.has(i.name) && !(i.trgm && !row?.trgm))
      .map((i) => i.name),
    leads: (...columns) =>
      indexes.some((i) =>
        i.valid && i.btree && !i.partial && columns.every((c, n) => i.keys[n] === c)
      ),
    recommended: (suffix) => present.has(`${db.tableName}_${suffix}`),
  };
}
