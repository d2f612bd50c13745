/**
 * The graphile-worker baseline of the dispatch suite, run with Node (not Deno):
 *
 *   node bench/graphile_noop.mjs --modules DIR --dsn URL --jobs N --concurrency C
 *     [--local-queue N] [--complete-batch-delay MS]
 *
 * Migrates graphile-worker's schema, inserts N `noop` jobs in one statement
 * (`graphile_worker.add_jobs`), VACUUM ANALYZEs the jobs table, then runs the worker with a
 * no-op task until every job has completed and `runner.stop()` has flushed the completions.
 * Prints one JSON line: {"jobs", "seconds", "remaining", "errors"}. Without --local-queue and
 * --complete-batch-delay the worker runs with its defaults, i.e. without batching.
 * DIR is the node_modules holding graphile-worker and pg (bench/.cache/npm/node_modules).
 */
import { EventEmitter } from "node:events";
import { createRequire } from "node:module";
import process from "node:process";
import { parseArgs } from "node:util";

const { values } = parseArgs({
  options: {
    modules: { type: "string" },
    dsn: { type: "string" },
    jobs: { type: "string" },
    concurrency: { type: "string", default: "16" },
    "local-queue": { type: "string" },
    "complete-batch-delay": { type: "string" },
  },
});
if (!values.modules || !values.dsn || !values.jobs) {
  process.stderr.write("usage: graphile_noop.mjs --modules DIR --dsn URL --jobs N\n");
  process.exit(2);
}
const require = createRequire(`${values.modules}/`);
const { run, runMigrations, Logger } = require("graphile-worker");
const pg = require("pg");

const jobs = Number(values.jobs);
const connectionString = values.dsn;
const logger = new Logger(() => (level, message) => {
  if (level === "error") process.stderr.write(`graphile-worker: ${message}\n`);
});

await runMigrations({ connectionString, logger });
const client = new pg.Client({ connectionString });
await client.connect();
try {
  await client.query(
    `select count(*) from graphile_worker.add_jobs(array(
       select row('noop', '{}'::json, null, null, null, null, null, null)::graphile_worker.job_spec
       from generate_series(1, $1::int)))`,
    [jobs],
  );
  await client.query("vacuum analyze graphile_worker._private_jobs");
  await client.query("vacuum analyze graphile_worker._private_tasks");

  const worker = {};
  if (values["local-queue"]) worker.localQueue = { size: Number(values["local-queue"]) };
  if (values["complete-batch-delay"]) {
    worker.completeJobBatchDelay = Number(values["complete-batch-delay"]);
  }
  const events = new EventEmitter();
  let completed = 0;
  let errors = 0;
  let allDone;
  const done = new Promise((resolve) => (allDone = resolve));
  events.on("job:error", () => errors++);
  events.on("job:complete", () => {
    if (++completed === jobs) allDone();
  });

  const t0 = performance.now();
  const runner = await run({
    connectionString,
    concurrency: Number(values.concurrency),
    noHandleSignals: true,
    pollInterval: 2000,
    logger,
    events,
    taskList: { noop: async () => {} },
    preset: { worker },
  });
  await done;
  await runner.stop();
  const seconds = (performance.now() - t0) / 1000;
  const { rows } = await client.query(
    "select count(*)::int as n from graphile_worker._private_jobs",
  );
  process.stdout.write(
    JSON.stringify({ jobs, seconds, remaining: rows[0].n, errors, worker }) + "\n",
  );
} finally {
  await client.end();
}
