import type { Command } from "commander";
import { type ConfigFlags, type ConnectionConfig, resolveConfig } from "../lib/config.ts";
import { connect, type ConnectOptions, type Db } from "../lib/db.ts";
import type { EmbeddedServer } from "../lib/embedded.ts";
import type { z } from "zod";
import { InvalidInputError, SeedtaskError } from "../lib/errors.ts";
import { parseFlags } from "./options.ts";

/** What a command needs from the process, passed in so commands stay testable and thin. */
export interface Context {
  env: Record<string, string | undefined>;
  /** Writes data to stdout. */
  out(text: string): Promise<void>;
  /** Writes diagnostics to stderr. */
  err(text: string): Promise<void>;
  /** stdout is a terminal. */
  isTTY: boolean;
  /** The terminal's width in columns, when stdout is one. */
  columns?: number;
  /** Standard input (`enqueue --file -`); the process's when not given. */
  stdin?: ReadableStream<Uint8Array>;
}

/**
 * The width a table must fit: `COLUMNS` when set (as `ls` and `ps` read it), else the
 * terminal's; undefined when stdout is not a terminal (a pipe or file gets every column).
 */
export function outputWidth(ctx: Context): number | undefined {
  const env = Number(ctx.env.COLUMNS);
  if (Number.isInteger(env) && env > 0) return env;
  return ctx.isTTY ? ctx.columns : undefined;
}

/** Options every command accepts (declared once on the program). */
export interface GlobalOptions {
  dsn?: string;
  table?: string;
  statementTimeout?: string;
  prepare: boolean;
  pooler?: boolean;
  color: boolean;
  verbose?: boolean;
  /** `--embedded [DIR]`: "" means in memory. */
  embedded?: string | true;
}

/** The program-level options merged with the command's own. */
export function globals(cmd: Command): GlobalOptions {
  return cmd.optsWithGlobals() as GlobalOptions;
}

/** Emoji and colour only on a terminal, never with NO_COLOR or --no-color. */
export function useEmoji(ctx: Context, cmd: Command): boolean {
  return ctx.isTTY && !ctx.env.NO_COLOR && globals(cmd).color !== false;
}

/**
 * Where the embedded database lives, if one is wanted: `--embedded [DIR]` first, then
 * `--dsn` (a real server), then SEEDTASK_EMBEDDED. `null` means in memory; undefined, none.
 */
export function embeddedChoice(g: GlobalOptions, env: Context["env"]): string | null | undefined {
  if (g.embedded !== undefined) {
    if (g.dsn !== undefined) {
      throw new InvalidInputError("--embedded conflicts with --dsn: choose one");
    }
    return g.embedded === true || g.embedded === "" || g.embedded === ":memory:"
      ? null
      : g.embedded;
  }
  if (g.dsn !== undefined) return undefined;
  const fromEnv = env.SEEDTASK_EMBEDDED;
  if (fromEnv === undefined) return undefined;
  return fromEnv === "" || fromEnv === ":memory:" ? null : fromEnv;
}

/**
 * Resolves the connection settings from flags and environment (starting the embedded server
 * when asked), opens the pool, runs `fn`, and closes everything.
 *
 * `createEmbedded`: the command may create the embedded database when its directory has none
 * (migrate, enqueue, serve). Every other command is refused at once instead of spending
 * seconds on initdb to report a missing table.
 */
export async function withDb<T>(
  ctx: Context,
  cmd: Command,
  fn: (db: Db) => Promise<T>,
  options: {
    maxConnections?: number;
    createEmbedded?: boolean;
    connect?: Pick<ConnectOptions, "connectTimeoutS" | "reconnectBackoffS">;
  } = {},
): Promise<T> {
  const g = globals(cmd);
  const flags: ConfigFlags = {
    dsn: g.dsn,
    table: g.table,
    statementTimeout: g.statementTimeout,
    // commander sets prepare to true unless --no-prepare: only an explicit "no" is a choice
    prepare: g.prepare === false ? false : undefined,
    pooler: g.pooler,
    maxConnections: options.maxConnections,
  };
  const embeddedDir = embeddedChoice(g, ctx.env);
  let config: ConnectionConfig = resolveConfig(flags, ctx.env);
  let embedded: EmbeddedServer | undefined;
  if (embeddedDir !== undefined) {
    // Loaded on demand: PGlite is large and most runs talk to a real server.
    const { startEmbedded } = await import("../lib/embedded.ts");
    embedded = await startEmbedded({
      dir: embeddedDir ?? undefined,
      create: options.createEmbedded ?? false,
    });
    config = {
      ...config,
      dsn: embedded.dsn,
      dsnSource: "embedded",
      // every connection shares PGlite's single session: a small pool, prepared statements on
      maxConnections: Math.min(config.maxConnections, embedded.maxConnections),
      prepare: true,
      pooler: false,
      label: `embedded database ${embeddedDir ?? "(in memory)"}`,
    };
  }
  const db = connect(config, {
    ...options.connect,
    onNotice: g.verbose ? (m) => void ctx.err(`notice: ${m}\n`) : undefined,
  });
  try {
    return await fn(db);
  } finally {
    await db.close();
    await embedded?.close();
  }
}

/** Writes one JSON document (pretty, newline-terminated). */
export function json(ctx: Context, value: unknown): Promise<void> {
  return ctx.out(JSON.stringify(value, null, 2) + "\n");
}

/**
 * The action of a command that reads one report: its flags parsed with the operation's
 * `schema`, the lib `query`, then the report as JSON (`--json`) or in the words of `format`.
 */
export function reportAction<S extends z.ZodType, R>(
  ctx: Context,
  schema: S,
  query: (db: Db, options: z.output<S>) => Promise<R>,
  format: (report: R, flags: { fullId?: boolean }, cmd: Command) => string,
): (opts: { json?: boolean; fullId?: boolean }, cmd: Command) => Promise<void> {
  return async (opts, cmd) => {
    const options = parseFlags(schema, opts);
    await withDb(ctx, cmd, async (db) => {
      const report = await query(db, options);
      if (opts.json) await json(ctx, report);
      else await ctx.out(format(report, opts, cmd));
    });
  };
}

/**
 * How a command that has already reported its outcome ends with a non-zero exit code (a check
 * that is CRITICAL, a doctor that found a problem, a refused transition): like every failure it
 * is thrown, and main.ts exits with its `exitCode`, adding no error line of its own.
 */
export class ExitError extends SeedtaskError {
  override readonly exitCode: number;
  /** Printed to stdout by main.ts (a check's UNKNOWN line for a usage error). */
  readonly stdout?: string;
  constructor(exitCode: number, stdout?: string) {
    super("exit", `exit ${exitCode}`);
    this.exitCode = exitCode;
    this.stdout = stdout;
  }
}
