/**
 * The task table contract, declared once: its statuses, its columns (what `migrate` creates,
 * what `doctor` accepts) and the indexes seedtask's queries rely on. The catalog of a real
 * table is read by ./catalog.ts and compared against what is declared here.
 */
import { InvalidInputError } from "../errors.ts";

/** Every status of the `taskstatus` enum, in lifecycle order. */
export const TASK_STATUSES = [
  "created",
  "queued",
  "running",
  "completed",
  "failed",
  "cancelled",
  "retry",
] as const;

/** One of {@link TASK_STATUSES}. */
export type TaskStatus = typeof TASK_STATUSES[number];

/**
 * Statuses a dispatcher claims from. A task in one of them is claimable once its ready time
 * ({@link READY_AT}) has passed: the claim query, the queue health and the claim index's
 * predicate are all built from these two.
 */
export const CLAIMABLE_STATUSES: readonly TaskStatus[] = ["queued", "retry"];

/**
 * `status in ('queued', 'retry')` as SQL text: literals, not parameters, so that the planner can
 * prove the claim index's predicate (the same statuses) from it.
 */
export function claimablePredicate(column = "status"): string {
  return `${column} in (${CLAIMABLE_STATUSES.map((s) => `'${s}'`).join(", ")})`;
}

/** When a claimable task becomes ready: its run_after (scheduled, backed off) or creation. */
export const READY_AT = "COALESCE(run_after, created_at)";

/**
 * The order of stuck running tasks, longest stuck first: the lease's end, or the claim time
 * for a task without a lease. The running index's key, so the stuck list is the first entries
 * of one range scan and `key < now()` bounds every stuck search.
 */
export const STUCK_ORDER = "COALESCE(lease_expires_at, locked_at)";

/** The text `list --search` matches, and the trigram index indexes. */
export const SEARCH_TEXT =
  "((COALESCE(description, ''::text) || ' '::text) || COALESCE(error, ''::text))";

/** Statuses a task never leaves by itself. */
export const TERMINAL_STATUSES: readonly TaskStatus[] = ["completed", "failed", "cancelled"];

/** The contract's columns of a row (see {@link Task} for a row as read). */
export interface ContractRow {
  /** The task's uuid. */
  id: string;
  /** Where it is in its life. */
  status: TaskStatus;
  /** What kind of work it is; dispatchers pick tasks by type. */
  type: string;
  /** Free text for humans. */
  description: string | null;
  /** Whom the work is for, e.g. a user or organisation. */
  domain: string | null;
  /** SeedCore's drift score. */
  drift_score: number;
  /** How many times it has been claimed. */
  attempts: number;
  /** The dispatcher that holds (or last held) it. */
  locked_by: string | null;
  /** When it was last claimed. */
  locked_at: Date | null;
  /** Not claimable before this instant (scheduled, or backed off after a failure). */
  run_after: Date | null;
  /** The task's JSON input. */
  params: unknown;
  /** The JSON result of a completed task. */
  result: unknown;
  /** The last failure's message. */
  error: string | null;
  /** When it was enqueued. */
  created_at: Date;
  /** When it last changed (maintained by a trigger). */
  updated_at: Date;
  /** The dispatcher holding the lease (lease columns, added by `migrate`). */
  owner_id?: string | null;
  /** When the lease runs out unless renewed. */
  lease_expires_at?: Date | null;
  /** When the holder last renewed the lease. */
  last_heartbeat?: Date | null;
}

/** One row of the task table. Extra columns of a SeedCore table appear as extra keys. */
export interface Task extends ContractRow {
  /** Columns beyond the contract, by name. */
  [extra: string]: unknown;
}

/** One column of the contract. */
export interface ContractColumn {
  name: keyof ContractRow;
  /**
   * The type `migrate` creates the column with. For `status` it is {@link STATUS_TYPE}, the
   * default name of the status enum: `migrate` keeps the enum the table already has, if any.
   */
  type: string;
  /** PRIMARY KEY, NOT NULL and DEFAULT, as CREATE TABLE takes them ("" for none). */
  constraints: string;
  /** The catalog types that serve (format_type spelling); `enum` stands for any enum type. */
  accepts: readonly string[];
  /** A lease column (SeedCore migration 006): needed by `dispatch`, optional elsewhere. */
  lease: boolean;
}

/** The name `migrate` gives the status enum when it creates one. */
export const STATUS_TYPE = "taskstatus";

const TEXT = ["text", "character varying"];
const TIMESTAMPTZ = ["timestamp with time zone"];

function column(
  name: keyof ContractRow,
  type: string,
  constraints: string,
  accepts: readonly string[],
  lease = false,
): ContractColumn {
  return { name, type, constraints, accepts, lease };
}

/** The contract's columns, in table order; anything else on a row is an extra column. */
export const COLUMNS: readonly ContractColumn[] = [
  column("id", "uuid", "primary key default gen_random_uuid()", ["uuid"]),
  column("status", STATUS_TYPE, "not null default 'created'", ["enum"]),
  column("type", "text", "not null", TEXT),
  column("description", "text", "", TEXT),
  column("domain", "text", "", TEXT),
  column("drift_score", "double precision", "not null default 0", [
    "double precision",
    "real",
    "numeric",
  ]),
  column("attempts", "integer", "not null default 0", ["integer", "smallint", "bigint"]),
  column("locked_by", "text", "", TEXT),
  column("locked_at", "timestamptz", "", TIMESTAMPTZ),
  column("run_after", "timestamptz", "", TIMESTAMPTZ),
  column("params", "jsonb", "not null default '{}'::jsonb", ["jsonb"]),
  column("result", "jsonb", "", ["jsonb"]),
  column("error", "text", "", TEXT),
  column("created_at", "timestamptz", "not null default now()", TIMESTAMPTZ),
  column("updated_at", "timestamptz", "not null default now()", TIMESTAMPTZ),
  column("owner_id", "text", "", TEXT, true),
  column("lease_expires_at", "timestamptz", "", TIMESTAMPTZ, true),
  column("last_heartbeat", "timestamptz", "", TIMESTAMPTZ, true),
];

/** The contract's column names, in table order. */
export const CONTRACT_COLUMNS: readonly string[] = COLUMNS.map((c) => c.name);

/** The lease columns of SeedCore migration 006 (needed by dispatch, optional elsewhere). */
export const LEASE_COLUMNS: readonly string[] = COLUMNS.filter((c) => c.lease).map((c) => c.name);

export function isTaskStatus(value: string): value is TaskStatus {
  return (TASK_STATUSES as readonly string[]).includes(value);
}

/**
 * Parses `--status queued,retry` (or an array of such strings) into distinct statuses.
 * Unknown names are a usage error that lists the valid ones.
 */
export function parseStatuses(input: string | readonly string[]): TaskStatus[] {
  const parts = (typeof input === "string" ? [input] : input)
    .flatMap((s) => s.split(","))
    .map((s) => s.trim().toLowerCase())
    .filter((s) => s !== "");
  if (parts.length === 0) {
    throw new InvalidInputError(`Empty status list: expected one of ${TASK_STATUSES.join(", ")}`);
  }
  const out: TaskStatus[] = [];
  for (const p of parts) {
    if (!isTaskStatus(p)) {
      throw new InvalidInputError(
        `Unknown status "${p}": expected one of ${TASK_STATUSES.join(", ")}`,
      );
    }
    if (!out.includes(p)) out.push(p);
  }
  return out;
}

/** What an index is made of: everything its definition says (see {@link indexDefinition}). */
export interface IndexShape {
  /** Access method. */
  method: "btree" | "gin";
  /**
   * Key columns and expressions in order, each spelled as `pg_get_indexdef` prints it (an
   * expression that is not a function call in parentheses).
   */
  keys: readonly string[];
  /** The operator class of its keys, when not the type's default (pg_trgm's when {@link trgm}). */
  opclass?: string;
  /** INCLUDE columns. */
  include: readonly string[];
  /** The predicate of a partial index, given the status enum's name (SQL text). */
  where?: (statusType: string) => string;
  /** Needs the pg_trgm extension. */
  trgm: boolean;
}

/** An index seedtask's own queries rely on: what `migrate` creates and `doctor` looks for. */
export interface RecommendedIndex extends IndexShape {
  /** `<table>_<suffix>`: the name `migrate` gives it (when no other relation has that name). */
  name: string;
  /** The name without the table's: `claim_idx`, `status_idx`, … */
  suffix: string;
  /** What it serves, shown by `doctor`. */
  purpose: string;
  /**
   * Definitions an older seedtask gave this index. An index of one of them under seedtask's
   * name for it is seedtask's own, outdated: `doctor` reports it and `migrate` replaces it
   * (builds the current definition beside it, drops it, renames the new one). An index of any
   * other definition is never touched.
   */
  replaces: readonly IndexShape[];
}

/**
 * An index's definition — everything after `ON <table>` in its CREATE INDEX — as
 * `pg_get_indexdef` prints it, so that the catalog recognises the index by it, whatever its
 * name. Both arguments are SQL text: `statusType` names the status enum in the predicate's
 * casts, `trgmSchema` (when given) qualifies the operator class.
 */
export function indexDefinition(
  index: IndexShape,
  statusType: string,
  trgmSchema?: string,
): string {
  const qualifier = index.trgm && trgmSchema ? `${trgmSchema}.` : "";
  const opclass = index.opclass ? ` ${qualifier}${index.opclass}` : "";
  const include = index.include.length > 0 ? ` INCLUDE (${index.include.join(", ")})` : "";
  const where = index.where ? ` WHERE ${index.where(statusType)}` : "";
  return `USING ${index.method} (${
    index.keys.map((k) => `${k}${opclass}`).join(", ")
  })${include}${where}`;
}

/** `(status = 'running'::t)`, or `(status = ANY (ARRAY[...]))` for several, as printed. */
function statusPredicate(statuses: readonly TaskStatus[]): (statusType: string) => string {
  return (t) => {
    const literals = statuses.map((s) => `'${s}'::${t}`);
    return literals.length === 1
      ? `(status = ${literals[0]})`
      : `(status = ANY (ARRAY[${literals.join(", ")}]))`;
  };
}

/** The recommended indexes, named after the table. */
export function recommendedIndexes(tableName: string): RecommendedIndex[] {
  const btree = (
    suffix: string,
    purpose: string,
    keys: string[],
    more: Partial<RecommendedIndex> = {},
  ): RecommendedIndex => ({
    name: `${tableName}_${suffix}`,
    suffix,
    purpose,
    method: "btree",
    keys,
    include: [],
    trgm: false,
    replaces: [],
    ...more,
  });
  return [
    btree(
      "claim_idx",
      "dispatcher claim order, queue lag and the ready count (claimable tasks by ready time)",
      [READY_AT, "id"],
      {
        // INCLUDE the expression's columns: PostgreSQL uses an expression index for an
        // index-only scan only when the columns it is computed from are in the index too.
        include: ["run_after", "created_at"],
        where: statusPredicate(CLAIMABLE_STATUSES),
      },
    ),
    btree(
      "running_idx",
      "stuck tasks, leases, workers, long-running tasks, the reaper (running tasks, " +
        "longest-expired lease or oldest lock first; index-only)",
      // The key is the stuck order, so the stuck list is the first entries of one range scan;
      // the INCLUDE columns (the key's own among them, as for the claim index) answer stuck
      // counts, running counts per type, workers per owner, leases and long-running tasks
      // from the index alone. On 10M rows with 200,000 running: workers 400 ms -> 40 ms,
      // the stuck list 490 ms -> 0.03 ms.
      [STUCK_ORDER],
      {
        include: [
          "locked_at",
          "lease_expires_at",
          "type",
          "attempts",
          "locked_by",
          "owner_id",
          "last_heartbeat",
          "id",
        ],
        where: statusPredicate(["running"]),
        // seedtask before the stuck order: running tasks by lock time, with the lease.
        replaces: [{
          method: "btree",
          keys: ["locked_at"],
          include: ["lease_expires_at"],
          where: statusPredicate(["running"]),
          trgm: false,
        }],
      },
    ),
    btree("updated_idx", "list sorted by updated (no filter), keyset pagination", [
      "updated_at",
      "id",
    ]),
    btree("status_idx", "status counts and drift score (a narrow index-only scan)", ["status"], {
      include: ["drift_score"],
    }),
    btree(
      "status_updated_idx",
      "list --status, recent completions and failures, running tasks",
      ["status", "updated_at", "id"],
    ),
    btree("type_updated_idx", "list --type, type counts (index-only)", [
      "type",
      "updated_at",
      "id",
    ]),
    btree("domain_updated_idx", "list --domain, domain counts (index-only)", [
      "domain",
      "updated_at",
      "id",
    ]),
    btree("created_idx", "list --sort created, recent activity per day", ["created_at", "id"]),
    btree("attempts_idx", "high-attempt tasks, attempts distribution (index-only)", [
      "attempts",
      "updated_at",
    ]),
    btree("params_idx", "list --param (params containing key=value: find the task of an entity)", [
      "params",
    ], { method: "gin", opclass: "jsonb_path_ops" }),
    btree("search_trgm_idx", "list --search (text in description or error)", [
      `(${SEARCH_TEXT})`,
    ], { method: "gin", opclass: "gin_trgm_ops", trgm: true }),
  ];
}

/**
 * The table of queue pauses, next to the task table (one per schema, shared by its task
 * tables, like `seedtask_migrations`): a row pauses a task type of one table — in every domain
 * (domain null) or in one. `migrate` creates it; dispatchers claim nothing a row pauses.
 */
export const PAUSES_TABLE = "seedtask_pauses";

/** The columns of {@link PAUSES_TABLE}, as CREATE TABLE takes them. */
export const PAUSE_COLUMNS: readonly string[] = [
  "table_name text not null",
  "type text not null",
  "domain text",
  "reason text",
  "paused_by text not null",
  "paused_at timestamptz not null default now()",
];

/**
 * Its unique indexes, as CREATE UNIQUE INDEX takes them after `ON <table>`: one pause per type
 * (every domain), one per type and domain. Two partial indexes rather than one over a
 * nullable domain, which would let a type be paused twice (NULL is distinct from NULL).
 */
export const PAUSE_INDEXES: readonly { suffix: string; definition: string }[] = [
  { suffix: "type_key", definition: "(table_name, type) where domain is null" },
  {
    suffix: "domain_key",
    definition: "(table_name, type, domain) where domain is not null",
  },
];

/**
 * The table where seedtask dispatchers register themselves (`seedtask workers`), created by
 * `migrate` next to the task table (in its schema). One row per running dispatcher of a task
 * table: written at start, refreshed with its heartbeat, deleted on a clean stop. A row whose
 * `last_seen_at` is older than its `lease_ms` belongs to a dispatcher that died.
 */
export const WORKERS_TABLE = "seedtask_workers";

/** The columns of {@link WORKERS_TABLE}, as CREATE TABLE takes them. */
export const WORKER_COLUMNS: readonly string[] = [
  "table_name text not null",
  "name text not null",
  "host text",
  "pid integer",
  "version text",
  "started_at timestamptz not null default now()",
  "last_seen_at timestamptz not null default now()",
  "concurrency integer",
  "types text[]",
  "lease_ms integer",
  "in_flight integer not null default 0",
  "claimed bigint not null default 0",
  "completed bigint not null default 0",
  "retried bigint not null default 0",
  "failed bigint not null default 0",
  "primary key (table_name, name)",
];

/** `seedtask_workers`, qualified with the task table's schema when it has one. */
export function workersTableName(schema: string | undefined): string {
  return schema ? `${schema}.${WORKERS_TABLE}` : WORKERS_TABLE;
}
