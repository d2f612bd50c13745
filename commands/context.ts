import type { Command } from "commander";
import { type ConfigFlags, resolveConfig } from "../lib/config.ts";
import { connect, type Db } from "../lib/db.ts";

/** What a command needs from the process, passed in so commands stay testable and thin. */
export interface Context {
  env: Record<string, string | undefined>;
  /** Writes data to stdout. */
  out(text: string): Promise<void>;
  /** Writes diagnostics to stderr. */
  err(text: string): Promise<void>;
  /** stdout is a terminal. */
  isTTY: boolean;
  /** Set by a command that finishes with a non-zero status without throwing. */
  exitCode: number;
}

/** Options every command accepts (declared once on the program). */
export interface GlobalOptions {
  dsn?: string;
  table?: string;
  statementTimeout?: string;
  prepare: boolean;
  color: boolean;
  verbose?: boolean;
}

/** The program-level options merged with the command's own. */
export function globals(cmd: Command): GlobalOptions {
  return cmd.optsWithGlobals() as GlobalOptions;
}

/** Emoji and colour only on a terminal, never with NO_COLOR or --no-color. */
export function useEmoji(ctx: Context, cmd: Command): boolean {
  return ctx.isTTY && !ctx.env.NO_COLOR && globals(cmd).color !== false;
}

/** Resolves the connection settings from flags and environment, opens the pool, runs `fn`. */
export async function withDb<T>(
  ctx: Context,
  cmd: Command,
  fn: (db: Db) => Promise<T>,
  options: { maxConnections?: number } = {},
): Promise<T> {
  const g = globals(cmd);
  const flags: ConfigFlags = {
    dsn: g.dsn,
    table: g.table,
    statementTimeout: g.statementTimeout,
    prepare: g.prepare,
    maxConnections: options.maxConnections,
  };
  const config = resolveConfig(flags, ctx.env);
  const db = connect(config, {
    onNotice: g.verbose ? (m) => void ctx.err(`notice: ${m}\n`) : undefined,
  });
  try {
    return await fn(db);
  } finally {
    await db.close();
  }
}

/** Writes one JSON document (pretty, newline-terminated). */
export function json(ctx: Context, value: unknown): Promise<void> {
  return ctx.out(JSON.stringify(value, null, 2) + "\n");
}

/** Thrown by a command that has already reported its failure; main.ts only exits with the code. */
export class ExitError extends Error {
  readonly exitCode: number;
  /** Printed to stdout by main.ts (a check's UNKNOWN line for a usage error). */
  readonly stdout?: string;
  constructor(exitCode: number, stdout?: string) {
    super(`exit ${exitCode}`);
    this.exitCode = exitCode;
    this.stdout = stdout;
  }
}
