/**
 * seedtask — operate a PostgreSQL task table. Builds the command tree; the only place that
 * prints errors and chooses the exit code.
 *
 * Exit codes: 0 ok, 1 runtime failure, 2 usage error (check: 0-3 monitoring-plugin codes).
 *
 * @module
 */
import { Command, CommanderError } from "commander";
import { registerCheck } from "./commands/check.ts";
import { type Context, ExitError } from "./commands/context.ts";
import { registerDemo } from "./commands/demo.ts";
import { registerDispatch } from "./commands/dispatch.ts";
import { registerDoctor } from "./commands/doctor.ts";
import { registerEnqueue } from "./commands/enqueue.ts";
import { registerFailures } from "./commands/failures.ts";
import { registerLeases } from "./commands/leases.ts";
import { registerList } from "./commands/list.ts";
import { registerMigrate } from "./commands/migrate.ts";
import { registerPause, registerPaused, registerResume } from "./commands/pauses.ts";
import { registerPurge } from "./commands/purge.ts";
import { registerRequeueStale } from "./commands/requeue_stale.ts";
import { registerServe } from "./commands/serve.ts";
import { registerShow } from "./commands/show.ts";
import { registerStats } from "./commands/stats.ts";
import { registerCancel, registerRelease, registerRetry } from "./commands/transitions.ts";
import { registerWorkers } from "./commands/workers.ts";
import { registerTop } from "./commands/top.ts";
import { dsnSecrets, scrubSecrets } from "./lib/config.ts";
import { oneLine, SeedtaskError, UsageError } from "./lib/errors.ts";
import { VERSION } from "./lib/version.ts";

const encoder = new TextEncoder();

/** Writes all of `text`; a closed pipe (`seedtask list | head`) ends output quietly. */
function writer(file: typeof Deno.stdout | typeof Deno.stderr): (text: string) => Promise<void> {
  let closed = false;
  return async (text: string) => {
    if (closed) return;
    let bytes = encoder.encode(text);
    try {
      while (bytes.length > 0) bytes = bytes.subarray(await file.write(bytes));
    } catch (err) {
      if (err instanceof Deno.errors.BrokenPipe) closed = true;
      else throw err;
    }
  };
}

function writeSync(file: typeof Deno.stdout | typeof Deno.stderr, text: string): void {
  let bytes = encoder.encode(text);
  try {
    while (bytes.length > 0) bytes = bytes.subarray(file.writeSync(bytes));
  } catch (err) {
    if (!(err instanceof Deno.errors.BrokenPipe)) throw err;
  }
}

/**
 * The command tree, wired to `ctx` for its input and output. Commander's own output (help,
 * usage errors) goes to `sync` when given, else straight to the process's stdout/stderr.
 */
export function buildProgram(
  ctx: Context,
  sync?: { out(text: string): void; err(text: string): void },
): Command {
  const program = new Command()
    .name("seedtask")
    .description("Operate a PostgreSQL task table: inspect, alert, manage and run tasks")
    .version(VERSION, "-V, --version", "print the version")
    .option(
      "--dsn <url>",
      "postgres:// URL (default: PG_DSN, then SEEDCORE_PG_DSN, then the seed's)",
    )
    .option("--table <name>", "task table, optionally schema-qualified", "tasks")
    .option("--statement-timeout <duration>", "timeout of every query, e.g. 30s (0 = none)", "30s")
    .option(
      "--pooler",
      "the DSN is a transaction-pooling pooler such as PgBouncer: keep no session state (also SEEDTASK_POOLER=1)",
    )
    .option("--no-prepare", "no prepared statements; implies --pooler")
    .option("--no-color", "no colour or emoji (also NO_COLOR)")
    .option("--verbose", "stack traces and server notices on stderr")
    .option(
      "--embedded [dir]",
      "use an embedded PostgreSQL (PGlite) instead of a server: in DIR, or in memory (also SEEDTASK_EMBEDDED)",
    )
    .exitOverride()
    .configureOutput({
      writeOut: (s) => sync ? sync.out(s) : writeSync(Deno.stdout, s),
      writeErr: (s) => sync ? sync.err(s) : writeSync(Deno.stderr, s),
      // Usage errors stay on one line, with a pointer to --help.
      outputError: (s, write) =>
        write(`${oneLine(s.trimEnd().replace(/\n/g, " "))} (run with --help for usage)\n`),
    });
  registerMigrate(program, ctx);
  registerList(program, ctx);
  registerShow(program, ctx);
  registerStats(program, ctx);
  registerTop(program, ctx);
  registerCheck(program, ctx);
  registerDoctor(program, ctx);
  registerFailures(program, ctx);
  registerLeases(program, ctx);
  registerWorkers(program, ctx);
  registerEnqueue(program, ctx);
  registerCancel(program, ctx);
  registerRetry(program, ctx);
  registerRelease(program, ctx);
  registerPause(program, ctx);
  registerResume(program, ctx);
  registerPaused(program, ctx);
  registerRequeueStale(program, ctx);
  registerPurge(program, ctx);
  registerDispatch(program, ctx);
  registerServe(program, ctx);
  registerDemo(program, ctx);
  return program;
}

function sentence(message: string): string {
  // "Cannot connect" -> "cannot connect", but keep "PostgreSQL ..." as written.
  return /^[A-Z][a-z]/.test(message) ? message[0]!.toLowerCase() + message.slice(1) : message;
}

/**
 * Maps an error to its one-line report and exit code: every non-zero exit of a command is a
 * thrown error, and its exit code is the error's own (`SeedtaskError.exitCode`).
 */
export function reportError(err: unknown, verbose: boolean): { line?: string; code: number } {
  if (err instanceof ExitError) return { code: err.exitCode };
  if (err instanceof CommanderError) return { code: err.exitCode === 0 ? 0 : 2 };
  const e = err as Error & { hint?: string };
  const stack = verbose && e?.stack ? `\n${e.stack}` : "";
  const message = oneLine(String(e?.message ?? err));
  if (err instanceof SeedtaskError) {
    const hint = e.hint ? ` — ${oneLine(e.hint)}` : "";
    const usage = err instanceof UsageError ? " (run with --help for usage)" : "";
    return { line: `error: ${sentence(message)}${hint}${usage}${stack}`, code: err.exitCode };
  }
  return {
    line: `error: unexpected failure: ${message}${
      verbose ? stack : " (run with --verbose for details)"
    }`,
    code: 1,
  };
}

/**
 * Everything secret this run was given: the passwords of every DSN it could use and the bearer
 * token. No error line goes out with one of them in it, whatever produced the message.
 */
export function runSecrets(
  args: readonly string[],
  env: Record<string, string | undefined>,
): string[] {
  const given = (flag: string) =>
    args.flatMap((a, i) =>
      a === flag ? [args[i + 1] ?? ""] : a.startsWith(`${flag}=`) ? [a.slice(flag.length + 1)] : []
    );
  const dsns = [...given("--dsn"), env.PG_DSN ?? "", env.SEEDCORE_PG_DSN ?? ""];
  const tokens = [...given("--token"), env.SEEDTASK_TOKEN ?? ""].filter((t) => t.length >= 4);
  return [...dsns.flatMap(dsnSecrets), ...tokens].sort((a, b) => b.length - a.length);
}

/**
 * `--embedded` takes an optional directory; when what follows it is a command name or another
 * option (`seedtask --embedded list`), it means "in memory", not a directory called "list".
 */
export function normalizeArgs(args: string[], commands: readonly string[]): string[] {
  return args.map((arg, i) => {
    if (arg !== "--embedded") return arg;
    const next = args[i + 1];
    return next === undefined || next.startsWith("-") || commands.includes(next)
      ? "--embedded="
      : arg;
  });
}

/**
 * What `main()` takes from its host instead of the process: tests run seedtask in process with
 * their own environment and capture its output. Anything left out is the real process's.
 */
export interface MainContext {
  /** Environment variables (default: the process environment). */
  env?: Record<string, string | undefined>;
  /** Receives stdout text, in order (default: the process's stdout). */
  stdout?: (text: string) => void | Promise<void>;
  /** Receives stderr text, in order (default: the process's stderr). */
  stderr?: (text: string) => void | Promise<void>;
  /** Whether stdout is a terminal (default: asks the process's stdout; false with `stdout`). */
  isTTY?: boolean;
  /** Width of that terminal in columns (default: the process's, when stdout is a terminal). */
  columns?: number;
  /** Standard input (default: the process's). */
  stdin?: ReadableStream<Uint8Array>;
}

/** The width of the terminal stdout is on, if it is on one. */
function terminalColumns(): number | undefined {
  try {
    return Deno.stdout.isTerminal() ? Deno.consoleSize().columns : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Runs seedtask with `args` and returns the exit code; it never exits the process itself.
 *
 * @example
 * ```ts
 * let out = "";
 * const code = await main(["--version"], { stdout: (t) => void (out += t) });
 * ```
 */
export async function main(rawArgs: string[], context: MainContext = {}): Promise<number> {
  const stdout = context.stdout;
  const stderr = context.stderr;
  const ctx: Context = {
    env: context.env ?? Deno.env.toObject(),
    out: stdout ? async (text) => await stdout(text) : writer(Deno.stdout),
    err: stderr ? async (text) => await stderr(text) : writer(Deno.stderr),
    isTTY: context.isTTY ?? (stdout ? false : Deno.stdout.isTerminal()),
    columns: context.columns ?? (stdout ? undefined : terminalColumns()),
    stdin: context.stdin,
  };
  const program = buildProgram(ctx, {
    out: stdout ? (s) => void stdout(s) : (s) => writeSync(Deno.stdout, s),
    err: stderr ? (s) => void stderr(s) : (s) => writeSync(Deno.stderr, s),
  });
  const args = normalizeArgs(rawArgs, program.commands.map((c) => c.name()));
  try {
    await program.parseAsync(args, { from: "user" });
    return 0;
  } catch (err) {
    const { line, code } = reportError(err, args.includes("--verbose"));
    const secrets = runSecrets(args, ctx.env);
    if (err instanceof ExitError && err.stdout) await ctx.out(scrubSecrets(err.stdout, secrets));
    if (line) await ctx.err(scrubSecrets(line, secrets) + "\n");
    return code;
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
