import type { Command } from "commander";
import { InvalidInputError } from "../lib/errors.ts";
import { SERVE_CONNECT_OPTIONS } from "../server/db_gate.ts";
import { LineLog } from "../server/line_log.ts";
import { type Context, withDb } from "./context.ts";
import { parseDurationFlag, parseIntFlag } from "./options.ts";

interface ServeFlags {
  host: string;
  port: string;
  token?: string;
  allowWrite?: boolean;
  cacheTtl: string;
  pool: string;
}

/** 127.0.0.0/8, ::1 and localhost: addresses only this machine can reach. */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, "").toLowerCase();
  return h === "localhost" || h === "::1" || /^127\.\d+\.\d+\.\d+$/.test(h);
}

export function registerServe(program: Command, ctx: Context): void {
  program
    .command("serve")
    .description("Serve the same operations over HTTP: JSON API, Prometheus metrics, OpenAPI")
    .option("--host <address>", "address to bind", "127.0.0.1")
    .option("--port <port>", "port to listen on", "8080")
    .option(
      "--token <token>",
      "bearer token (default: SEEDTASK_TOKEN); needed for writes and non-loopback binds",
    )
    .option(
      "--allow-write",
      "enable POST /tasks, /tasks/:id/cancel and /tasks/:id/retry (token required)",
    )
    .option("--cache-ttl <duration>", "reuse /stats, /metrics and /check answers this long", "1s")
    .option("--pool <n>", "most database connections", "10")
    .action(async (opts: ServeFlags, cmd: Command) => {
      const port = parseIntFlag(opts.port, "port", 0, 65_535);
      const cacheTtlMs = parseDurationFlag(opts.cacheTtl, "cache-ttl");
      const pool = parseIntFlag(opts.pool, "pool", 1, 100);
      const token = opts.token ?? ctx.env.SEEDTASK_TOKEN;
      if (token !== undefined && token.length < 8) {
        throw new InvalidInputError("The token must be at least 8 characters");
      }
      const loopback = isLoopback(opts.host);
      if (!loopback && !token) {
        throw new InvalidInputError(
          `Refusing to listen on ${opts.host} without a token: anyone on the network could read ` +
            "the task table",
          "set --token or SEEDTASK_TOKEN, or bind 127.0.0.1",
        );
      }
      if (opts.allowWrite && !token) {
        throw new InvalidInputError(
          "--allow-write needs a token: write routes always require one",
          "set --token or SEEDTASK_TOKEN",
        );
      }
      const { createApp } = await import("../server/app.ts"); // hono, zod, prom-client: only here
      await withDb(ctx, cmd, async (db) => {
        // One write at a time, a bounded backlog, dropped lines counted (server/line_log.ts):
        // a slow stdout must not grow the process without bound.
        const lines = new LineLog(ctx.out);
        const log = (line: string) => lines.line(line);
        const app = createApp({
          db,
          allowWrite: !!opts.allowWrite,
          token,
          requireTokenForReads: !loopback,
          cacheTtlMs,
          log,
          logCounters: lines,
        });
        const stop = new AbortController();
        const onSignal = () => stop.abort();
        const signals: Deno.Signal[] = Deno.build.os === "windows"
          ? ["SIGINT"]
          : ["SIGINT", "SIGTERM"];
        for (const s of signals) Deno.addSignalListener(s, onSignal);
        try {
          const server = Deno.serve({
            hostname: opts.host,
            port,
            signal: stop.signal,
            onListen: ({ hostname, port }) => {
              const host = hostname.includes(":") ? `[${hostname}]` : hostname;
              log(
                `seedtask serve listening on http://${host}:${port} (${
                  opts.allowWrite ? "read-write" : "read-only"
                }, ${db.table} on ${db.target})`,
              );
            },
          }, app.fetch);
          await server.finished;
          log("seedtask serve stopped");
        } finally {
          for (const s of signals) Deno.removeSignalListener(s, onSignal);
          await lines.flush(2000);
          lines.close();
        }
      }, { maxConnections: pool, connect: SERVE_CONNECT_OPTIONS });
    });
}
