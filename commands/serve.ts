import type { Command } from "commander";
import { InvalidInputError } from "../lib/errors.ts";
import { SERVE_CONNECT_OPTIONS } from "../server/db_gate.ts";
import { LineLog } from "../server/line_log.ts";
import { normaliseBasePath, withBasePath } from "../server/base_path.ts";
import { type Context, withDb } from "./context.ts";
import { listenError, onStopSignals, urlHost } from "./listen.ts";
import { parseDurationFlag, parseIntFlag } from "./options.ts";

interface ServeFlags {
  host: string;
  port: string;
  token?: string;
  allowWrite?: boolean;
  cacheTtl: string;
  pool: string;
  basePath: string;
}

/** RFC 6750's b64token: the only tokens a `Bearer` header carries (and hono/bearer-auth reads). */
const TOKEN_SYNTAX = /^[A-Za-z0-9._~+/-]+=*$/;

/** 127.0.0.0/8, ::1 and localhost: addresses only this machine can reach. */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, "").toLowerCase();
  return h === "localhost" || h === "::1" || /^127\.\d+\.\d+\.\d+$/.test(h);
}

/**
 * Checks `--host` before anything starts: an IPv4 address, an IPv6 address (bracketed or not),
 * or a DNS name of letters, digits, hyphens and dots.
 */
export function checkHost(host: string): void {
  const h = host.replace(/^\[(.*)\]$/, "$1");
  const ipv4 = /^\d{1,3}(\.\d{1,3}){3}$/.test(h);
  const valid = ipv4
    ? h.split(".").every((n) => Number(n) <= 255)
    : h.includes(":")
    ? /^[0-9A-Fa-f:.]+$/.test(h)
    : /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$/
      .test(h) && !/^[\d.]+$/.test(h);
  if (!valid) {
    throw new InvalidInputError(
      `Invalid --host "${host.slice(0, 100)}": expected an IP address or a host name`,
      "e.g. 127.0.0.1, ::1, 0.0.0.0 or localhost",
    );
  }
}

export function registerServe(program: Command, ctx: Context): void {
  program
    .command("serve")
    .description(
      "Serve the same operations over HTTP: a web console, JSON API, Prometheus metrics, OpenAPI",
    )
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
    .option(
      "--base-path <path>",
      "serve everything under this path prefix, for a reverse proxy (e.g. /seedtask)",
      "",
    )
    .action(async (opts: ServeFlags, cmd: Command) => {
      checkHost(opts.host);
      const port = parseIntFlag(opts.port, "port", 0, 65_535);
      const cacheTtlMs = parseDurationFlag(opts.cacheTtl, "cache-ttl");
      const pool = parseIntFlag(opts.pool, "pool", 1, 100);
      const basePath = normaliseBasePath(opts.basePath);
      const token = opts.token ?? ctx.env.SEEDTASK_TOKEN;
      if (token !== undefined && token.length < 8) {
        throw new InvalidInputError("The token must be at least 8 characters");
      }
      if (token !== undefined && !TOKEN_SYNTAX.test(token)) {
        throw new InvalidInputError(
          "The token must be letters, digits and -._~+/ (optionally ending in =): " +
            "what an Authorization: Bearer header can carry (RFC 6750)",
        );
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
          basePath,
          log,
          logCounters: lines,
        });
        const stop = new AbortController();
        const removeSignalListeners = onStopSignals(() => stop.abort());
        try {
          const server = Deno.serve({
            hostname: opts.host,
            port,
            signal: stop.signal,
            onListen: ({ hostname, port }) => {
              const host = urlHost(hostname);
              log(
                `seedtask serve listening on http://${host}:${port}${basePath} (${
                  opts.allowWrite ? "read-write" : "read-only"
                }, ${db.table} on ${db.target}); console: http://${host}:${port}${basePath}/ui`,
              );
            },
          }, withBasePath(basePath, app.fetch));
          await server.finished;
          log("seedtask serve stopped");
        } catch (err) {
          throw listenError(err, opts.host, port, "--port");
        } finally {
          removeSignalListeners();
          await lines.flush(2000);
          lines.close();
        }
      }, { maxConnections: pool, createEmbedded: true, connect: SERVE_CONNECT_OPTIONS });
    });
}
