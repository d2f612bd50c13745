import { type Db, guard, mapDbError, type Sql } from "../db.ts";
import { ConnectionError, MIGRATE_HINT } from "../errors.ts";
import { matchRecommendedIndexes, readCatalog } from "./catalog.ts";
import { COLUMNS, LEASE_COLUMNS, PAUSES_TABLE, TASK_STATUSES } from "./contract.ts";
import { DEFAULT_MAX_ATTEMPTS } from "../dispatch/backoff.ts";

/** One finding of `seedtask doctor`. */
export interface DoctorCheck {
  /** Stable identifier, e.g. `connection`, `column.params`, `invariant.retry_without_run_after`. */
  name: string;
  /** True when the check passed. */
  ok: boolean;
  /** What was found, one line. */
  message: string;
  /** Up to five example task ids for a data invariant that does not hold. */
  examples?: string[];
  /** How many tasks break the invariant. */
  count?: number;
}

/** What {@link runDoctor} found: one entry per check. */
export interface DoctorReport {
  /** True when every check passed. */
  ok: boolean;
  /** The database, as `host:port/database`. */
  target: string;
  /** The task table that was checked. */
  table: string;
  /** The server's `server_version`, when it could be read. */
  server_version: string | null;
  /** Every check, passed or not. */
  checks: DoctorCheck[];
  /** How many checks failed. */
  problems: number;
}

/** What {@link runDoctor} holds the data to. */
export interface DoctorOptions {
  /** The dispatchers' --max-attempts; more attempts than this is a problem. Default 3. */
  maxAttempts?: number;
}

type Fragment = ReturnType<Sql>;
const INVARIANTS: Array<
  { name: string; message: string; where: (sql: Sql, max: number) => Fragment }
> = [
  {
    name: "running_without_locked_by",
    message: "running tasks without locked_by (no dispatcher owns them)",
    where: (sql) => sql`status = 'running' and locked_by is null`,
  },
  {
    name: "retry_without_run_after",
    message: "retry tasks without run_after (no backoff recorded)",
    where: (sql) => sql`status = 'retry' and run_after is null`,
  },
  {
    name: "completed_with_error",
    message: "completed tasks that carry an error",
    where: (sql) => sql`status = 'completed' and coalesce(error, '') <> ''`,
  },
  {
    name: "negative_attempts",
    message: "tasks with negative attempts",
    where: (sql) => sql`attempts < 0`,
  },
  {
    // The reaper of a live dispatcher returns these within half a lease: one that stays
    // means no seedtask dispatcher is running, or the owner died and nobody reaps.
    name: "expired_lease",
    message: "running tasks whose lease expired (their dispatcher stopped renewing it: " +
      "`seedtask leases` shows them, `seedtask requeue-stale` returns them)",
    where: (sql) => sql`status = 'running' and lease_expires_at < now()`,
  },
  {
    name: "attempts_above_max",
    message: "tasks with more attempts than the maximum",
    where: (sql, max) => sql`attempts > ${max}`,
  },
];

/**
 * Diagnoses the connection, the table's shape and its data. Never throws for a finding:
 * every problem becomes a failed check, so the operator sees all of them at once.
 */
export async function runDoctor(db: Db, options: DoctorOptions = {}): Promise<DoctorReport> {
  const maxAttempts = options.maxAttempts ?? DEFAULT_MAX_ATTEMPTS;
  const checks: DoctorCheck[] = [];
  const report = (serverVersion: string | null): DoctorReport => {
    const problems = checks.filter((c) => !c.ok).length;
    return {
      ok: problems === 0,
      target: db.target,
      table: db.table,
      server_version: serverVersion,
      checks,
      problems,
    };
  };

  let serverVersion: string | null = null;
  try {
    const [row] = await db.sql`select current_setting('server_version') as v`;
    serverVersion = row!.v as string;
    checks.push({ name: "connection", ok: true, message: `connected to ${db.target}` });
    const major = Number(serverVersion.split(".")[0]);
    checks.push({
      name: "server_version",
      ok: major >= 14,
      message: major >= 14
        ? `PostgreSQL ${serverVersion}`
        : `PostgreSQL ${serverVersion}: seedtask needs 14 or later`,
    });
  } catch (err) {
    const mapped = mapDbError(err, db);
    if (!(mapped instanceof ConnectionError)) throw mapped;
    checks.push({ name: "connection", ok: false, message: mapped.message });
    return report(null);
  }

  return await guard(db, async () => {
    const catalog = await readCatalog(db, { definitions: true });
    if (catalog.relation === null) {
      checks.push({
        name: "table",
        ok: false,
        message: `table "${db.table}" does not exist in ${db.target}: ${MIGRATE_HINT}`,
      });
      return report(serverVersion);
    }
    checks.push({ name: "table", ok: true, message: `table ${db.table} exists` });

    const byName = new Map(catalog.columns.map((c) => [c.name, c]));
    const missingLease = LEASE_COLUMNS.filter((c) => !byName.has(c));
    for (const { name, accepts, lease } of COLUMNS) {
      if (name === "status" || (lease && missingLease.length > 0)) continue;
      const col = byName.get(name);
      if (!col) {
        checks.push({ name: `column.${name}`, ok: false, message: `column ${name} is missing` });
      } else if (!accepts.includes(col.type)) {
        checks.push({
          name: `column.${name}`,
          ok: false,
          message: `column ${name} is ${col.type}, expected ${accepts.join(" or ")}`,
        });
      }
    }
    if (missingLease.length > 0) {
      checks.push({
        name: "column.lease",
        ok: false,
        message: `lease columns missing (${missingLease.join(", ")}): dispatch needs them; ` +
          "run `seedtask migrate`",
      });
    }
    const status = byName.get("status");
    if (!status) {
      checks.push({ name: "column.status", ok: false, message: "column status is missing" });
    } else if (!status.isEnum) {
      checks.push({
        name: "column.status",
        ok: false,
        message: `column status is ${status.type}, expected the taskstatus enum`,
      });
    } else {
      const missing = TASK_STATUSES.filter((s) => !catalog.enumLabels.includes(s));
      checks.push(
        missing.length === 0
          ? { name: "enum", ok: true, message: `${status.type} has all seven statuses` }
          : {
            name: "enum",
            ok: false,
            message: `${status.type} lacks ${missing.map((s) => `"${s}"`).join(", ")}`,
          },
      );
    }
    if (checks.some((c) => !c.ok && c.name.startsWith("column."))) {
      // Index and data checks would fail on missing columns; report the shape first.
      checks.push({
        name: "columns",
        ok: false,
        message: "the table does not match the contract; run `seedtask migrate`",
      });
      return report(serverVersion);
    }
    checks.push({
      name: "columns",
      ok: true,
      message: "all contract columns have the right types",
    });

    // Recognised by definition, under any name: an index named like ours that is defined
    // otherwise does not serve our queries. One finding per recommended index that `migrate`
    // would create or change.
    let indexProblems = 0;
    for (const m of matchRecommendedIndexes(db.tableName, catalog)) {
      const { index: idx, present, broken, other, outdated, replacement } = m;
      let message: string;
      if (outdated.length > 0) {
        // seedtask's own older definition: migrate replaces it.
        message = `recommended index ${idx.name} is outdated (serves ${idx.purpose}): ${
          outdated.map((o) => `${o.name} has an older seedtask's definition (${o.definition})`)
            .join(", ")
        }; run \`seedtask migrate\` to replace it`;
      } else if (!present) {
        const why = broken
          ? `: ${broken.name} is invalid, left by an interrupted build`
          : other
          ? `: the index of that name has another definition (${other.definition})`
          : "";
        message = `recommended index ${idx.name} is missing (serves ${idx.purpose})${why}; ` +
          "run `seedtask migrate`";
      } else if (replacement) {
        message = `recommended index ${idx.name} is present as ${replacement.name}, left by ` +
          "an interrupted replacement; run `seedtask migrate` to finish it";
      } else {
        continue;
      }
      indexProblems++;
      checks.push({ name: `index.${idx.name}`, ok: false, message });
    }
    if (indexProblems === 0) {
      checks.push({ name: "indexes", ok: true, message: "all recommended indexes are present" });
    }
    checks.push(
      catalog.updatedAtTrigger
        ? { name: "trigger", ok: true, message: "an updated_at trigger keeps updated_at current" }
        : {
          name: "trigger",
          ok: false,
          message: "no trigger keeps updated_at current; run `seedtask migrate`",
        },
    );

    if (catalog.pausesTable === null) {
      checks.push({
        name: "pauses",
        ok: false,
        message: `table ${PAUSES_TABLE} is missing (seedtask pause and resume need it; ` +
          "dispatchers claim as if nothing were paused); run `seedtask migrate`",
      });
    } else {
      const paused = await db.sql<{ type: string; domain: string | null }[]>`
        select type, domain from ${db.sql.unsafe(catalog.pausesTable)}
        where table_name = ${db.tableName} order by paused_at`;
      checks.push({
        name: "pauses",
        ok: true,
        message: paused.length === 0
          ? `${PAUSES_TABLE} exists; nothing is paused`
          : `${PAUSES_TABLE} exists; paused (not claimed): ${
            paused.map((p) => p.domain === null ? p.type : `${p.type} (domain ${p.domain})`)
              .join(", ")
          }`,
      });
    }

    // One pass over the table counts every invariant at once.
    const t = db.sql(db.table);
    const cond = (inv: typeof INVARIANTS[number]) => inv.where(db.sql, maxAttempts);
    const counts = INVARIANTS.map((inv) =>
      db.sql`count(*) filter (where ${cond(inv)})::int as ${db.sql(inv.name)}`
    ).reduce((acc, f) => db.sql`${acc}, ${f}`);
    const [row] = await db.sql`select ${counts} from ${t}`;
    for (const inv of INVARIANTS) {
      const count = row![inv.name] as number;
      const message = inv.name === "attempts_above_max"
        ? `${inv.message} (${maxAttempts})`
        : inv.message;
      if (count === 0) {
        checks.push({ name: `invariant.${inv.name}`, ok: true, message: `no ${message}` });
        continue;
      }
      const examples = await db.sql<{ id: string }[]>`
        select id from ${t} where ${cond(inv)} order by updated_at desc limit 5`;
      checks.push({
        name: `invariant.${inv.name}`,
        ok: false,
        message: `${count} ${message}`,
        count,
        examples: examples.map((e) => e.id),
      });
    }
    return report(serverVersion);
  });
}
