/**
 * Drains a task table with the library dispatcher and a no-op handler, then prints one JSON
 * line: `{"seconds", "completed", "claimed", "failed", "retried"}`. Run as its own process by
 * the dispatch suite, so the measurement has the process to itself.
 *
 * ```sh
 * deno run -A bench/noop_dispatcher.ts --dsn postgres://… --table bench_dispatch.tasks \
 *   --concurrency 16 --batch 8
 * ```
 *
 * The pool is sized like `seedtask dispatch`'s: min(concurrency, 8) + 2 connections.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { resolveConfig } from "../lib/config.ts";
import { connect } from "../lib/db.ts";
import { createDispatcher } from "../lib/dispatch/dispatcher.ts";
import { say } from "./common.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    dsn: { type: "string" },
    table: { type: "string" },
    concurrency: { type: "string", default: "16" },
    batch: { type: "string", default: "8" },
  },
});
if (!values.dsn || !values.table) {
  throw new TypeError(
    "usage: noop_dispatcher.ts --dsn URL --table NAME [--concurrency N --batch N]",
  );
}
const concurrency = Number(values.concurrency);
const batch = Number(values.batch);
const db = connect(
  resolveConfig({
    dsn: values.dsn,
    table: values.table,
    maxConnections: Math.min(concurrency, 8) + 2,
  }, {}),
);
try {
  const dispatcher = createDispatcher({
    db,
    handlers: { noop: () => null },
    concurrency,
    batch,
    once: true,
    name: `bench-noop-${Deno.pid}`,
  });
  const t0 = performance.now();
  const stats = await dispatcher.run();
  const seconds = (performance.now() - t0) / 1000;
  say(JSON.stringify({ seconds, ...stats }));
} finally {
  await db.close();
}
