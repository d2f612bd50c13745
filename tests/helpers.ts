/**
 * Shared test fixtures: a throwaway schema per test on a real PostgreSQL, a mixed-state task
 * table with known contents, and a runner for the CLI as a separate process.
 */
import postgres from "postgres";
import { describeDsn, resolveConfig } from "../lib/config.ts";
import { startEmbedded } from "../lib/embedded.ts";
import { connect, type Db } from "../lib/db.ts";
import { migrate, type MigrationStep } from "../lib/table/migrate.ts";
import { NOTIFY_CHANNEL } from "../lib/ops/enqueue_task.ts";

const CONFIGURED_DSN = Deno.env.get("SEEDTASK_TEST_DSN") ??
  "postgres://postgres@127.0.0.1:5432/test";

/** Whether a server answers at `dsn` (any answer — even an auth error — counts as reachable). */
async function reachable(dsn: string): Promise<boolean> {
  const sql = postgres(dsn, { max: 1, connect_timeout: 3, onnotice: () => {} });
  try {
    await sql`select 1`;
    return true;
  } catch (err) {
    const code = (err as { code?: string }).code ?? "";
    return !/^(ECONNREFUSED|ENOTFOUND|EAI_AGAIN|EHOSTUNREACH|ENETUNREACH|ETIMEDOUT|CONNECT_TIMEOUT)$/
      .test(code);
  } finally {
    await sql.end({ timeout: 1 }).catch(() => {});
  }
}

/**
 * True when no PostgreSQL is reachable and the suite runs on an embedded PGlite instead
 * (DESIGN §10). Under CI=true a missing server is an error, not a fallback.
 */
export const EMBEDDED = !(await reachable(CONFIGURED_DSN));
if (EMBEDDED && Deno.env.get("CI") === "true") {
  throw new Error(
    `PostgreSQL is not reachable at ${describeDsn(CONFIGURED_DSN)} and CI=true: ` +
      "the CI run needs a real server (start it, or set SEEDTASK_TEST_DSN)",
  );
}
const embedded = EMBEDDED ? await startEmbedded() : undefined;

/** The DSN tests use: the configured server, or this test file's embedded PGlite. */
export const TEST_DSN = embedded?.dsn ?? CONFIGURED_DSN;

const skipped = new Set<string>();

/**
 * `Deno.test` for a test that needs a real server (several real connections, roles, NOTIFY);
 * on the embedded fallback it is skipped, and the reason is printed.
 */
export function serverTest(
  name: string,
  reason: string,
  fn: (t: Deno.TestContext) => Promise<void>,
): void {
  if (EMBEDDED && !skipped.has(name)) {
    skipped.add(name);
    // deno-lint-ignore no-console -- the suite must say what it skipped
    console.error(`skipped on embedded PGlite: "${name}" — ${reason}`);
  }
  Deno.test({ name, ignore: EMBEDDED, fn });
}

const MAIN = new URL("../main.ts", import.meta.url).pathname;

/** An admin connection for fixtures (not the code under test). */
export function adminSql(): postgres.Sql {
  return postgres(TEST_DSN, { max: EMBEDDED ? 1 : 2, onnotice: () => {} });
}

/** A schema that exists for one test and is dropped afterwards (`await using`). */
export interface TestSchema extends AsyncDisposable {
  schema: string;
  /** `schema.tasks`. */
  table: string;
  /** A Db bound to `schema.tasks`, as the CLI would open it. */
  db: Db;
  sql: postgres.Sql;
  /** CLI arguments selecting this table: `--dsn ... --table schema.tasks`. */
  args: string[];
}

/** Creates a fresh schema; with `migrated` (default) the task table contract is in place. */
export async function testSchema(options: { migrated?: boolean } = {}): Promise<TestSchema> {
  return await schemaIn(TEST_DSN, options);
}

/**
 * What migrate() ran to bring the first fresh schema of this process (on each DSN) up to the
 * contract, and that schema's name: the plan of every later one, but for the name.
 */
const firstMigration = new Map<string, { schema: string; steps: MigrationStep[] }>();

/**
 * Migrates `db`, the empty `schema`: the first time on a DSN with migrate(), later by running
 * the statements that migration ran, with this schema's name in them, as one transaction — the
 * same objects, without migrate's catalog reads and lock connection (about two thirds of a
 * testSchema()'s CPU, and there are some two hundred). Its plan depends on the schema's catalog
 * and data alone, and every schema here is new and empty: plans differ only by the name, which
 * is unique (`st_` and 12 hex digits) and so replaced nowhere else.
 */
async function migrateFresh(db: Db, dsn: string, schema: string): Promise<void> {
  const first = firstMigration.get(dsn);
  if (!first) {
    const { steps } = await migrate(db);
    // A step that runs outside a transaction (CREATE INDEX CONCURRENTLY on a table with rows,
    // ALTER TYPE ... ADD VALUE) does not occur on an empty schema; if it ever does, every
    // schema gets migrate() itself.
    if (steps.every((s) => s.transactional)) firstMigration.set(dsn, { schema, steps });
    return;
  }
  const script = first.steps.map((s) => s.sql.replaceAll(first.schema, schema)).join(";\n");
  await db.sql.begin((tx) => tx.unsafe(script).simple());
}

async function schemaIn(dsn: string, options: { migrated?: boolean }): Promise<TestSchema> {
  const schema = `st_${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`;
  const sql = postgres(dsn, { max: EMBEDDED ? 1 : 2, onnotice: () => {} });
  await sql`create schema ${sql(schema)}`;
  const table = `${schema}.tasks`;
  const db = connect(resolveConfig({ dsn, table, maxConnections: EMBEDDED ? 2 : 4 }, {}));
  if (options.migrated ?? true) await migrateFresh(db, dsn, schema);
  return {
    schema,
    table,
    db,
    sql,
    args: ["--dsn", dsn, "--table", table],
    async [Symbol.asyncDispose]() {
      await db.close();
      await sql`drop schema ${sql(schema)} cascade`;
      await sql.end();
    },
  };
}

/**
 * Like {@link testSchema}, in a database of its own that is dropped afterwards: for tests that
 * need VACUUM to see no other session's snapshot (plans that count on all-visible pages).
 * On the embedded fallback (one session anyway) it is a schema.
 */
export async function testDatabase(options: { migrated?: boolean } = {}): Promise<TestSchema> {
  if (EMBEDDED) return await testSchema(options);
  const name = `st_db_${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`;
  // DROP DATABASE waits until every backend of the cluster has acknowledged it; one that never
  // does (a runaway query elsewhere) must not hang the suite: hence the timeout.
  const admin = postgres(TEST_DSN, {
    max: 1,
    onnotice: () => {},
    connection: { statement_timeout: 60_000 },
  });
  try {
    await admin`create database ${admin(name)}`;
  } catch (err) {
    await admin.end();
    throw err;
  }
  const url = new URL(TEST_DSN);
  url.pathname = `/${name}`;
  let inner: TestSchema;
  try {
    inner = await schemaIn(url.toString(), options);
  } catch (err) {
    await admin`drop database if exists ${admin(name)} with (force)`.catch(() => {});
    await admin.end();
    throw err;
  }
  return {
    ...inner,
    async [Symbol.asyncDispose]() {
      try {
        await inner[Symbol.asyncDispose]();
      } finally {
        try {
          await admin`drop database if exists ${admin(name)} with (force)`;
        } catch (err) {
          // deno-lint-ignore no-console -- a leftover database is worth a line, not a failure
          console.error(`could not drop test database ${name}: ${(err as Error).message}`);
        }
        await admin.end();
      }
    },
  };
}

/** The outcome of one CLI run. */
export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** A `deno run main.ts ...args` command with a clean environment (NO_COLOR, PATH, HOME). */
function cliCommand(
  args: string[],
  options: { env?: Record<string, string>; cwd?: string; stdin?: "piped" | "null" },
): Deno.Command {
  const env: Record<string, string> = {
    PATH: Deno.env.get("PATH") ?? "",
    HOME: Deno.env.get("HOME") ?? "/tmp",
    NO_COLOR: "1",
    ...options.env,
  };
  const denoDir = Deno.env.get("DENO_DIR");
  if (denoDir) env.DENO_DIR = denoDir;
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", "--quiet", MAIN, ...args],
    env,
    clearEnv: true,
    cwd: options.cwd,
    stdin: options.stdin ?? "null",
    stdout: "piped",
    stderr: "piped",
  });
}

/** Runs the CLI to completion and returns its exit code and output. */
export async function runCli(
  args: string[],
  options: { env?: Record<string, string>; cwd?: string; stdin?: string } = {},
): Promise<CliResult> {
  const child = cliCommand(args, {
    ...options,
    stdin: options.stdin === undefined ? "null" : "piped",
  }).spawn();
  if (options.stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(options.stdin));
    await w.close();
  }
  const out = await child.output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** Ids of the fixture's tasks, by role. Chosen so prefixes "aaaa" (ambiguous) and "aaaa1" work. */
export const IDS = {
  created1: "aaaa1000-0000-4000-8000-000000000001",
  created2NoDomain: "aaaa2000-0000-4000-8000-000000000002",
  queuedOld: "bbbb1000-0000-4000-8000-000000000003",
  queuedRecent: "bbbb2000-0000-4000-8000-000000000004",
  queuedScheduled: "bbbb3000-0000-4000-8000-000000000005",
  runningHealthy: "cccc1000-0000-4000-8000-000000000006",
  runningLong: "cccc2000-0000-4000-8000-000000000007",
  runningStuck: "cccc3000-0000-4000-8000-000000000008",
  completedRecent1: "dddd1000-0000-4000-8000-000000000009",
  completedRecent2: "dddd2000-0000-4000-8000-00000000000a",
  completed3h: "dddd3000-0000-4000-8000-00000000000b",
  completed3d: "dddd4000-0000-4000-8000-00000000000c",
  failedRecent: "eeee1000-0000-4000-8000-00000000000d",
  failed5h: "eeee2000-0000-4000-8000-00000000000e",
  failed2d: "eeee3000-0000-4000-8000-00000000000f",
  cancelled1: "ffff1000-0000-4000-8000-000000000010",
  cancelled2: "ffff2000-0000-4000-8000-000000000011",
  retryReady: "12341000-0000-4000-8000-000000000012",
  retryLater: "12342000-0000-4000-8000-000000000013",
} as const;

const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;

interface Row {
  id: string;
  status: string;
  type: string;
  domain: string | null;
  description: string;
  attempts: number;
  drift: number;
  created: number; // ms before now
  updated: number;
  locked?: number;
  lockedBy?: string;
  lease?: number; // ms before now (negative = future)
  runAfter?: number;
  error?: string;
  result?: unknown;
}

/**
 * The mixed-state fixture: every status, long-running and stuck tasks, high attempts, NULL
 * domains, and two extra columns a SeedCore table might have. 19 tasks; counts are asserted
 * exactly by the tests, so change them together.
 */
// deno-fmt-ignore
export const FIXTURE: readonly Row[] = [
  { id: IDS.created1, status: "created", type: "graph_embed", domain: "user_1", description: "embed user graph", attempts: 0, drift: 0.1, created: 20 * MIN, updated: 20 * MIN },
  { id: IDS.created2NoDomain, status: "created", type: "fact_search", domain: null, description: "search facts", attempts: 0, drift: 0, created: 5 * MIN, updated: 5 * MIN },
  { id: IDS.queuedOld, status: "queued", type: "graph_embed", domain: "user_1", description: "old queued embed", attempts: 0, drift: 0.5, created: 2 * HOUR, updated: 2 * HOUR },
  { id: IDS.queuedRecent, status: "queued", type: "graph_rag_query", domain: "user_2", description: "rag query", attempts: 0, drift: 0.2, created: 10 * MIN, updated: 10 * MIN },
  { id: IDS.queuedScheduled, status: "queued", type: "graph_embed", domain: null, description: "scheduled embed", attempts: 0, drift: 0, created: 30 * MIN, updated: 30 * MIN, runAfter: -HOUR },
  { id: IDS.runningHealthy, status: "running", type: "graph_embed", domain: "user_1", description: "running embed", attempts: 1, drift: 0.3, created: 3 * MIN, updated: 1 * MIN, locked: 1 * MIN, lockedBy: "disp-a", lease: -MIN },
  { id: IDS.runningLong, status: "running", type: "graph_rag_query", domain: "user_2", description: "long rag query", attempts: 1, drift: 0.4, created: 40 * MIN, updated: 30 * MIN, locked: 30 * MIN, lockedBy: "disp-a", lease: -MIN },
  { id: IDS.runningStuck, status: "running", type: "fact_search", domain: "user_3", description: "stuck search", attempts: 2, drift: 0.9, created: 20 * MIN, updated: 5 * MIN, locked: 5 * MIN, lockedBy: "disp-dead", lease: 2 * MIN },
  { id: IDS.completedRecent1, status: "completed", type: "graph_embed", domain: "user_1", description: "done embed one", attempts: 1, drift: 0.1, created: 30 * MIN, updated: 10 * MIN, locked: 10 * MIN + 10_000, lockedBy: "disp-a", result: { vectors: 3 } },
  { id: IDS.completedRecent2, status: "completed", type: "graph_embed", domain: "user_2", description: "done embed two", attempts: 3, drift: 0.1, created: 40 * MIN, updated: 20 * MIN, locked: 20 * MIN + 30_000, lockedBy: "disp-a", result: { vectors: 5 } },
  { id: IDS.completed3h, status: "completed", type: "fact_search", domain: "user_3", description: "done search", attempts: 1, drift: 0, created: 4 * HOUR, updated: 3 * HOUR, locked: 3 * HOUR + 60_000, lockedBy: "disp-b", result: { hits: 12 } },
  { id: IDS.completed3d, status: "completed", type: "graph_rag_query", domain: "user_1", description: "old rag", attempts: 1, drift: 0, created: 3 * DAY, updated: 3 * DAY, locked: 3 * DAY + 5_000, lockedBy: "disp-b", result: { answer: "42" } },
  { id: IDS.failedRecent, status: "failed", type: "graph_embed", domain: "user_2", description: "broken embed", attempts: 3, drift: 0.7, created: 50 * MIN, updated: 15 * MIN, locked: 15 * MIN + 2_000, lockedBy: "disp-a", error: "Max attempts (3) exceeded: connection reset by organism" },
  { id: IDS.failed5h, status: "failed", type: "fact_search", domain: null, description: "bad search", attempts: 1, drift: 0, created: 6 * HOUR, updated: 5 * HOUR, locked: 5 * HOUR + 1_000, lockedBy: "disp-b", error: "index missing" },
  { id: IDS.failed2d, status: "failed", type: "graph_rag_query", domain: "user_3", description: "ancient failure", attempts: 5, drift: 1.5, created: 2 * DAY + HOUR, updated: 2 * DAY, locked: 2 * DAY + 1_000, lockedBy: "disp-b", error: "timeout talking to LLM" },
  { id: IDS.cancelled1, status: "cancelled", type: "graph_embed", domain: "user_1", description: "cancelled embed", attempts: 0, drift: 0, created: 7 * HOUR, updated: 6 * HOUR },
  { id: IDS.cancelled2, status: "cancelled", type: "fact_search", domain: "user_2", description: "cancelled search", attempts: 1, drift: 0, created: 9 * HOUR, updated: 8 * HOUR },
  { id: IDS.retryReady, status: "retry", type: "graph_rag_query", domain: "user_3", description: "retry rag", attempts: 1, drift: 0.2, created: HOUR, updated: 15 * MIN, runAfter: 5 * MIN, error: "transient 503" },
  { id: IDS.retryLater, status: "retry", type: "graph_embed", domain: "user_1", description: "retry embed later", attempts: 2, drift: 0.2, created: HOUR, updated: 2 * MIN, runAfter: -10 * MIN, error: "transient 429" },
];

/**
 * Inserts {@link FIXTURE} with times relative to `now`, and adds two extra columns
 * (`priority integer`, `labels text[]`) as a SeedCore table may have.
 */
export async function insertFixture(t: TestSchema, now: Date = new Date()): Promise<void> {
  const sql = t.sql;
  const at = (ms: number | undefined) => ms === undefined ? null : new Date(now.getTime() - ms);
  await sql`alter table ${
    sql(t.table)
  } add column priority integer default 5, add column labels text[]`;
  for (const r of FIXTURE) {
    await sql`
      insert into ${sql(t.table)} (id, status, type, domain, description, attempts, drift_score,
        created_at, updated_at, locked_at, locked_by, lease_expires_at, owner_id, last_heartbeat,
        run_after, error, result, params, priority, labels)
      values (${r.id}, ${r.status}, ${r.type}, ${r.domain}, ${r.description}, ${r.attempts},
        ${r.drift}, ${at(r.created)}, ${at(r.updated)}, ${at(r.locked)}, ${r.lockedBy ?? null},
        ${at(r.lease)}, ${r.status === "running" ? r.lockedBy! : null},
        ${r.status === "running" ? at(r.updated) : null}, ${at(r.runAfter)}, ${r.error ?? null},
        ${r.result === undefined ? null : sql.json(r.result as postgres.JSONValue)},
        ${sql.json({ description: r.description, n: r.attempts })},
        ${r.attempts + 1}, ${["fixture", r.status]})`;
  }
}

/** Counts of FIXTURE per status. */
export function fixtureCounts(): Record<string, number> {
  const counts: Record<string, number> = {
    created: 0,
    queued: 0,
    running: 0,
    completed: 0,
    failed: 0,
    cancelled: 0,
    retry: 0,
  };
  for (const r of FIXTURE) counts[r.status]!++;
  return counts;
}

/**
 * The least time a test waits for something before giving up (`eventually`, `waitFor`). These
 * are safety nets against a hang, never a measure of speed: on a loaded machine a process can
 * take a minute to start, and a test must not fail for that. SEEDTASK_TEST_WAIT_MS overrides.
 */
export const MIN_WAIT_MS = Number(Deno.env.get("SEEDTASK_TEST_WAIT_MS") ?? 180_000);

/** `work`'s result, or a failure naming `what` when it takes longer than `ms`: a hang's net. */
export async function within<T>(work: Promise<T>, what: string, ms = MIN_WAIT_MS): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      work,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what}: no answer after ${ms}ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** A CLI process left running (dispatch), with its output collected as it arrives. */
export interface RunningCli {
  child: Deno.ChildProcess;
  /** stdout so far. */
  stdout(): string;
  stderr(): string;
  /** Resolves when stdout matches `pattern` (rejects after `timeoutMs`, at least MIN_WAIT_MS). */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<void>;
  /** Resolves with the exit code. */
  exit(): Promise<number>;
}

export function spawnCli(
  args: string[],
  options: { env?: Record<string, string> } = {},
): RunningCli {
  const child = cliCommand(args, options).spawn();
  let out = "";
  let err = "";
  const pump = async (stream: ReadableStream<Uint8Array>, add: (s: string) => void) => {
    const dec = new TextDecoder();
    for await (const chunk of stream) add(dec.decode(chunk, { stream: true }));
  };
  const pumps = Promise.all([
    pump(child.stdout, (s) => (out += s)),
    pump(child.stderr, (s) => (err += s)),
  ]);
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    async waitFor(pattern, timeoutMs = MIN_WAIT_MS) {
      const deadline = Date.now() + Math.max(timeoutMs, MIN_WAIT_MS);
      while (!pattern.test(out)) {
        if (Date.now() > deadline) {
          throw new Error(`timed out waiting for ${pattern}; stdout:\n${out}\nstderr:\n${err}`);
        }
        await new Promise((r) => setTimeout(r, 25));
      }
    },
    async exit() {
      const status = await child.status;
      await pumps;
      return status.code;
    },
  };
}

/** Polls `check` until it returns true (rejects after `timeoutMs`, at least MIN_WAIT_MS). */
export async function eventually(
  check: () => Promise<boolean>,
  timeoutMs = MIN_WAIT_MS,
  what = "condition",
): Promise<void> {
  const deadline = Date.now() + Math.max(timeoutMs, MIN_WAIT_MS);
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * The NOTIFYs on the enqueue channel during `fn` whose payload is one of this table's ids (other
 * tests notify the same channel, which is the database's). A notification of our own, sent
 * after `fn`, arrives after every earlier one (NOTIFY is delivered in commit order): when it
 * has, all of them have. PGlite delivers no NOTIFY to another connection: check `EMBEDDED`.
 */
export async function notificationsDuring(
  t: TestSchema,
  fn: () => Promise<void>,
): Promise<string[]> {
  const payloads: string[] = [];
  const sub = await t.sql.listen(NOTIFY_CHANNEL, (p) => payloads.push(p));
  try {
    await fn();
    if (EMBEDDED) return [];
    const marker = `marker-${crypto.randomUUID()}`;
    await t.sql`select pg_notify(${NOTIFY_CHANNEL}, ${marker})`;
    await eventually(() => Promise.resolve(payloads.includes(marker)), 0, "our own notification");
  } finally {
    await sub.unlisten();
  }
  const ids = new Set(
    (await t.sql<{ id: string }[]>`select id::text from ${t.sql(t.table)}`).map((r) => r.id),
  );
  return payloads.filter((p) => ids.has(p));
}
