import type { Command } from "commander";
import { resolveConfig } from "../lib/config.ts";
import { connect } from "../lib/db.ts";
import { demoHandlers, enqueueDemoTasks } from "../lib/demo.ts";
import { formatEvent } from "../lib/dispatch/events.ts";
import { createDispatcher } from "../lib/dispatch/dispatcher.ts";
import { delay } from "../lib/duration.ts";
import { formatFailureGroups } from "../lib/format/insight.ts";
import { formatStatistics } from "../lib/format/stats.ts";
import { formatTaskDetails, formatTaskTable } from "../lib/format/tasks.ts";
import { getFailureGroups } from "../lib/queries/failure_groups.ts";
import { getTask } from "../lib/queries/get_task.ts";
import { listTasks } from "../lib/queries/list_tasks.ts";
import { migrate } from "../lib/table/migrate.ts";
import { getTaskStatistics } from "../lib/queries/task_stats.ts";
import { listenError } from "./listen.ts";
import { type Context, useEmoji } from "./context.ts";
import { parseIntFlag } from "./options.ts";

interface DemoFlags {
  dir?: string;
  tasks: string;
  serve?: boolean;
  port: string;
  seconds: string;
}

export function registerDemo(program: Command, ctx: Context): void {
  program
    .command("demo")
    .description(
      "Everything on an embedded PostgreSQL: migrate, enqueue SeedCore-like tasks, dispatch " +
        "them, then show stats, the latest tasks and a failed task's details",
    )
    .option("--dir <dir>", "keep the embedded database in this directory (default: in memory)")
    .option("--tasks <n>", "how many tasks to enqueue", "40")
    .option("--seconds <n>", "longest time the dispatcher runs", "12")
    .option(
      "--serve",
      "then keep the web console and HTTP API running on the demo data until Ctrl-C",
    )
    .option("--port <port>", "port for --serve", "8080")
    .action(async (opts: DemoFlags, cmd: Command) => {
      const count = parseIntFlag(opts.tasks, "tasks", 1, 100_000);
      const seconds = parseIntFlag(opts.seconds, "seconds", 1, 3600);
      const port = parseIntFlag(opts.port, "port", 0, 65_535);
      const emoji = useEmoji(ctx, cmd);
      const say = (text: string) => ctx.out(text);

      const { startEmbedded } = await import("../lib/embedded.ts");
      const embedded = await startEmbedded({ dir: opts.dir });
      const db = connect(
        {
          ...resolveConfig({ dsn: embedded.dsn }, {}),
          dsnSource: "embedded",
          maxConnections: embedded.maxConnections,
        },
      );
      try {
        await say(
          `Embedded PostgreSQL (PGlite) ${opts.dir ? `in ${opts.dir}` : "in memory"}\n`,
        );
        const migration = await migrate(db);
        await say(
          `Migrated: ${migration.steps.length} step${
            migration.steps.length === 1 ? "" : "s"
          } applied\n`,
        );
        const ids = await enqueueDemoTasks(db, count);
        await say(
          `Enqueued ${ids.length} tasks (graph_embed, graph_rag_query, fact_search, fact_ingest, graph_sync)\n\n`,
        );

        let queue = Promise.resolve();
        const dispatcher = createDispatcher({
          db,
          name: "demo-dispatcher",
          concurrency: 8,
          batch: 8,
          pollMs: 100,
          maxAttempts: 3,
          backoff: { baseMs: 300, maxMs: 2000, jitter: 0.2 },
          shutdownTimeoutMs: 3000,
          handlers: demoHandlers(),
          onEvent: (e) => {
            queue = queue.then(() => say(formatEvent(e, "text", { emoji }) + "\n"));
          },
        });
        const run = dispatcher.run();
        const deadline = Date.now() + seconds * 1000;
        while (Date.now() < deadline) {
          const [row] = await db.sql`select count(*)::int as n from ${db.sql(db.table)}
            where status not in ('completed', 'failed', 'cancelled')`;
          if (row!.n === 0) break;
          await delay(200);
        }
        dispatcher.stop("demo finished");
        await run;
        await queue;

        await say(
          "\n" + formatStatistics(await getTaskStatistics(db, { top: 5, days: 1 }), { emoji }),
        );
        const latest = await listTasks(db, { limit: 10 });
        await say(`\nLatest tasks:\n\n${formatTaskTable(latest.items, { emoji })}`);
        const failed = await listTasks(db, { statuses: ["failed"], limit: 1 });
        if (failed.items[0]) {
          await say(
            `\nA failed task:\n\n${
              formatTaskDetails(await getTask(db, failed.items[0].id), { emoji })
            }`,
          );
        }
        // Why they failed: the failure groups, as `seedtask failures` shows them.
        const groups = await getFailureGroups(db, { top: 3 });
        if (groups.groups.length > 0) {
          await say(`\nWhy tasks failed (seedtask failures):\n\n${formatFailureGroups(groups)}`);
        }
        if (opts.serve) {
          const { createApp } = await import("../server/app.ts");
          const { LineLog } = await import("../server/line_log.ts");
          // The request log is bounded like serve's: a slow terminal never grows the process.
          const lines = new LineLog(ctx.out);
          const app = createApp({ db, log: (l) => lines.line(l), logCounters: lines });
          const stop = new AbortController();
          const onSignal = () => stop.abort();
          Deno.addSignalListener("SIGINT", onSignal);
          try {
            const server = Deno.serve({
              hostname: "127.0.0.1",
              port,
              signal: stop.signal,
              onListen: ({ port }) =>
                void say(
                  `\nWeb console on the demo data: http://127.0.0.1:${port}/ui\n` +
                    `HTTP API: http://127.0.0.1:${port}/tasks  /stats  /failures  /workers  ` +
                    "/metrics  /openapi.json (Ctrl-C to stop)\n" +
                    `Watch it live from another terminal: seedtask top --url http://127.0.0.1:${port}\n`,
                ),
            }, app.fetch);
            await server.finished;
          } catch (err) {
            throw listenError(err, "127.0.0.1", port, "--port");
          } finally {
            Deno.removeSignalListener("SIGINT", onSignal);
            await lines.flush(2000);
          }
        } else {
          await say(
            "\nTry next (keep the data with --dir DIR, then add --embedded DIR to each):\n" +
              "  seedtask top             the live view: counts, throughput, failures, workers\n" +
              "  seedtask failures        why tasks fail, grouped by cause; retry a group\n" +
              "  seedtask list            the tasks, newest first\n" +
              "  seedtask demo --serve    the web console and the HTTP API on this data\n",
          );
        }
      } finally {
        await db.close();
        await embedded.close();
      }
    });
}
