import type { Command } from "commander";
import { connect } from "../lib/db.ts";
import { formatEvent } from "../lib/dispatch/events.ts";
import { createDispatcher, defaultDispatcherName } from "../lib/dispatch/dispatcher.ts";
import { InvalidInputError } from "../lib/errors.ts";
import { executorEnv } from "../lib/dispatch/exec_env.ts";
import { commandExecutor, type Executor, httpExecutor } from "../lib/dispatch/executors.ts";
import { DEFAULT_MAX_ATTEMPTS } from "../lib/dispatch/backoff.ts";
import { listenError, onStopSignals, urlHost } from "./listen.ts";
import { type Context, useEmoji, withDb } from "./context.ts";
import { collect, parseDurationFlag, parseIntFlag } from "./options.ts";

interface DispatchFlags {
  name?: string;
  concurrency: string;
  batch: string;
  lease: string;
  maxAttempts: string;
  types?: string;
  poll: string;
  listen?: boolean;
  listenDsn?: string;
  once?: boolean;
  logFormat: string;
  fullId?: boolean;
  metricsPort?: string;
  metricsHost: string;
  executorUrl?: string;
  exec?: string;
  execEnv: string[];
  killGrace: string;
  timeout: string;
  backoffBase: string;
  backoffMax: string;
  backoffJitter: string;
  shutdownTimeout: string;
}

function parseJitter(value: string): number {
  const n = Number(value);
  if (value.trim() === "" || !Number.isFinite(n) || n < 0 || n > 1) {
    throw new InvalidInputError(
      `Invalid --backoff-jitter "${value}": expected a fraction from 0 to 1`,
    );
  }
  return n;
}

export function registerDispatch(program: Command, ctx: Context): void {
  program
    .command("dispatch")
    .description("Run the queue dispatcher: claim tasks, execute them, record results with retries")
    .option("--name <name>", "dispatcher name written to locked_by (default: host-pid)")
    .option("--concurrency <n>", "executions at once", "16")
    .option("--batch <n>", "most tasks per claim", "8")
    .option("--lease <duration>", "lease per task, renewed by heartbeats every third of it", "90s")
    .option(
      "--max-attempts <n>",
      "executions per task before it fails for good",
      String(DEFAULT_MAX_ATTEMPTS),
    )
    .option("--types <types>", "only claim these task types, comma-separated")
    .option("--poll <duration>", "idle wait between claims", "1s")
    .option("--listen", "wake at once on NOTIFY tasks_new (seedtask enqueue sends it)")
    .option(
      "--listen-dsn <url>",
      "LISTEN on this direct connection to PostgreSQL when --dsn is a pooler (implies --listen)",
    )
    .option("--once", "drain what is claimable now, then exit")
    .option(
      "--log-format <format>",
      "text (the seed's lines, short task ids) or json (full ids)",
      "text",
    )
    .option("--full-id", "full task ids in text logs")
    .option("--metrics-port <port>", "serve Prometheus metrics on this port at /metrics")
    .option("--metrics-host <host>", "address for --metrics-port", "127.0.0.1")
    .option("--executor-url <url>", "POST each task as JSON to this URL")
    .option(
      "--exec <command>",
      "run this shell command per task (payload on stdin, result on stdout)",
    )
    .option(
      "--exec-env <NAME[=value]>",
      "pass this variable to --exec commands (repeatable); nothing else is inherited",
      collect,
      [],
    )
    .option(
      "--kill-grace <duration>",
      "a stopped --exec command's processes get SIGTERM, then SIGKILL after this",
      "5s",
    )
    .option("--timeout <duration>", "executor timeout per task", "5m")
    .option("--backoff-base <duration>", "retry delay after the first failure", "10s")
    .option("--backoff-max <duration>", "longest retry delay (before jitter)", "300s")
    .option("--backoff-jitter <fraction>", "random extra delay, as a fraction of the delay", "0.1")
    .option(
      "--shutdown-timeout <duration>",
      "on SIGINT/SIGTERM, wait this long for in-flight work",
      "30s",
    )
    .action(async (opts: DispatchFlags, cmd: Command) => {
      if (!!opts.executorUrl === !!opts.exec) {
        throw new InvalidInputError(
          "dispatch needs exactly one executor: --executor-url URL or --exec COMMAND",
        );
      }
      const format = opts.logFormat;
      if (format !== "text" && format !== "json") {
        throw new InvalidInputError(`Invalid --log-format "${format}": expected text or json`);
      }
      const timeoutMs = parseDurationFlag(opts.timeout, "timeout");
      const concurrency = parseIntFlag(opts.concurrency, "concurrency", 1, 10_000);
      const settings = {
        name: opts.name ?? defaultDispatcherName(),
        concurrency,
        batch: parseIntFlag(opts.batch, "batch", 1, 10_000),
        leaseMs: parseDurationFlag(opts.lease, "lease"),
        maxAttempts: parseIntFlag(opts.maxAttempts, "max-attempts", 1, 1_000_000),
        types: opts.types?.split(",").map((s) => s.trim()).filter((s) => s !== ""),
        pollMs: parseDurationFlag(opts.poll, "poll"),
        listen: !!opts.listen || opts.listenDsn !== undefined,
        once: !!opts.once,
        backoff: {
          baseMs: parseDurationFlag(opts.backoffBase, "backoff-base"),
          maxMs: parseDurationFlag(opts.backoffMax, "backoff-max"),
          jitter: parseJitter(opts.backoffJitter),
        },
        shutdownTimeoutMs: parseDurationFlag(opts.shutdownTimeout, "shutdown-timeout"),
      };
      if (settings.leaseMs < 1000) throw new InvalidInputError("--lease must be at least 1s");
      if (opts.executorUrl) {
        try {
          new URL(opts.executorUrl);
        } catch {
          throw new InvalidInputError(`Invalid --executor-url "${opts.executorUrl}"`);
        }
      }
      const metricsPort = opts.metricsPort === undefined
        ? undefined
        : parseIntFlag(opts.metricsPort, "metrics-port", 0, 65_535);
      const killGraceMs = parseDurationFlag(opts.killGrace, "kill-grace");
      // Only what is named here reaches a command: never PG_DSN, a token or the like.
      // The environment is the run's (ctx.env: the process's, or what main() was given).
      const execEnv = opts.exec ? executorEnv(ctx.env, opts.execEnv) : {};
      const executor: Executor = opts.executorUrl
        ? httpExecutor(opts.executorUrl, { timeoutMs })
        : commandExecutor(opts.exec!, { timeoutMs, env: execEnv, killGraceMs });

      const emoji = useEmoji(ctx, cmd);
      const { DispatcherMetrics } = await import("../lib/dispatch/metrics.ts"); // prom-client
      const metrics = new DispatcherMetrics(settings.name);
      // Log lines are this command's output; they are written in order, one per event.
      let queue = Promise.resolve();
      const log = (line: string) => {
        queue = queue.then(() => ctx.out(line + "\n"));
      };

      if (opts.listenDsn !== undefined && !/^postgres(ql)?:\/\/./.test(opts.listenDsn)) {
        throw new InvalidInputError(
          "Invalid --listen-dsn: expected postgres://user@host:port/database",
        );
      }

      await withDb(ctx, cmd, async (db) => {
        // Only LISTEN uses it: postgres.js opens one dedicated connection for it, on demand.
        // It runs no query a timeout could bound, so none is sent (a pooler given here by
        // mistake then accepts the connection, and the LISTEN self-test reports it).
        await using listenDb = opts.listenDsn === undefined ? undefined : connect({
          ...db.config,
          dsn: opts.listenDsn,
          dsnSource: "flag",
          statementTimeoutMs: 0,
          pooler: false,
          prepare: true,
          maxConnections: 1,
          label: undefined,
        });
        const dispatcher = createDispatcher({
          db,
          listenDb,
          executor,
          metrics,
          ...settings,
          onEvent: (e) => log(formatEvent(e, format, { emoji, fullId: opts.fullId })),
        });
        let server: Deno.HttpServer | undefined;
        if (metricsPort !== undefined) {
          try {
            server = Deno.serve(
              {
                port: metricsPort,
                hostname: opts.metricsHost,
                // The bound port, which --metrics-port 0 lets the system choose.
                onListen: ({ hostname, port }) =>
                  log(formatEvent(
                    {
                      event: "metrics",
                      dispatcher: settings.name,
                      url: `http://${urlHost(hostname)}:${port}/metrics`,
                    },
                    format,
                    { emoji },
                  )),
              },
              async (req) =>
                new URL(req.url).pathname === "/metrics"
                  ? new Response(await metrics.text(), {
                    headers: { "content-type": metrics.contentType },
                  })
                  : new Response("not found\n", { status: 404 }),
            );
          } catch (err) {
            throw listenError(err, opts.metricsHost, metricsPort, "--metrics-port");
          }
        }
        let signals = 0;
        const removeSignalListeners = onStopSignals((name) => {
          signals++;
          dispatcher.stop(signals === 1 ? `${name} received` : `${name} received again`);
        });
        try {
          await dispatcher.run();
        } finally {
          await executor.close?.();
          removeSignalListeners();
          await server?.shutdown();
          await queue;
        }
      }, { maxConnections: Math.min(concurrency, 8) + 2 });
    });
}
