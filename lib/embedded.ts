/**
 * The embedded PostgreSQL: PGlite — PostgreSQL compiled to WebAssembly — served on
 * a loopback socket by pglite-socket, so the one postgres.js code path runs against it
 * unchanged. In memory without a directory; persistent with one.
 *
 * What differs from a real server (measured in a spike, see README): every connection shares
 * one backend session, so the pool is kept small (`maxConnections`) and queries serialise;
 * NOTIFY is not delivered to other connections (dispatch falls back to polling); the
 * statement timeout is not enforced; startup parameters are ignored (UTC and the application
 * name are set here instead).
 */
import { PGlite } from "@electric-sql/pglite";
import { pg_trgm } from "@electric-sql/pglite/contrib/pg_trgm";
import { PGLiteSocketServer } from "@electric-sql/pglite-socket";
import { SeedtaskError } from "./errors.ts";
import { hostName } from "./host.ts";

/** A running embedded server. */
export interface EmbeddedServer {
  /** postgres:// URL of the loopback socket. */
  dsn: string;
  /** The data directory, or undefined in memory. */
  dir?: string;
  /** Pool size that is safe against the shared session. */
  maxConnections: number;
  /** Stops the socket server, shuts PostgreSQL down cleanly and releases the directory. */
  close(): Promise<void>;
}

/** The embedded directory is held by another process. */
export class EmbeddedLockedError extends SeedtaskError {
  constructor(dir: string, holder: string) {
    super(
      "embedded_locked",
      `Embedded database directory "${dir}" is in use by another process${
        holder ? ` (${holder})` : ""
      }`,
      { hint: "stop that process, or pass another directory" },
    );
  }
}

/** The hint for a directory whose contents are not a database seedtask can open. */
const MOVE_AWAY = "move it away to start a fresh database there";

/** The embedded directory cannot be opened as a database. */
export class EmbeddedDirError extends SeedtaskError {
  constructor(dir: string, why: string, hint: string = MOVE_AWAY) {
    super("embedded_unusable", `Embedded database directory "${dir}" is not usable: ${why}`, {
      hint,
    });
  }
}

/**
 * No database in the embedded directory (missing or empty), and the command only reads or
 * changes existing tasks: creating one (several seconds of initdb) would only end in "table
 * does not exist". `migrate`, `enqueue`, `serve` and `demo` create it.
 */
export class EmbeddedNotFoundError extends SeedtaskError {
  constructor(dir: string, why: string) {
    const arg = /^[\w./:@%+,=-]+$/.test(dir) ? dir : `'${dir.replaceAll("'", `'\\''`)}'`;
    super("embedded_not_found", `No embedded database in "${dir}": ${why}`, {
      hint: `create one with \`seedtask --embedded ${arg} migrate\``,
    });
  }
}

function parentOf(path: string): string {
  const trimmed = path.replace(/\/+$/, "");
  const i = trimmed.lastIndexOf("/");
  return i < 0 ? "." : i === 0 ? "/" : trimmed.slice(0, i);
}

/** The nearest existing ancestor of `path` when it is not a directory (it blocks the path). */
async function fileAncestor(path: string): Promise<string | null> {
  for (let p = parentOf(path);; p = parentOf(p)) {
    try {
      return (await Deno.stat(p)).isDirectory ? null : p;
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound || err instanceof Deno.errors.NotADirectory)) {
        return null;
      }
    }
    if (p === "/" || p === ".") return null;
  }
}

/**
 * An operating-system failure on the embedded directory, with the hint that fits its cause:
 * moving the directory away helps with foreign contents, not with permissions or a file in
 * the way.
 */
async function osError(dir: string, err: unknown, doing: string): Promise<EmbeddedDirError> {
  if (err instanceof Deno.errors.PermissionDenied) {
    return new EmbeddedDirError(dir, `permission denied ${doing}`, permissionHint(dir));
  }
  if (err instanceof Deno.errors.NotADirectory) {
    const blocker = await fileAncestor(dir);
    if (blocker) return fileInTheWay(dir, blocker);
  }
  return new EmbeddedDirError(
    dir,
    `${(err as Error).message} (${doing})`,
    "pass another directory",
  );
}

/** A file where the path needs a directory: no one can create the database there. */
function fileInTheWay(dir: string, file: string): EmbeddedDirError {
  return new EmbeddedDirError(
    dir,
    `"${file}" is a file, not a directory`,
    "pass a path under a directory",
  );
}

function permissionHint(dir: string): string {
  return `run seedtask as a user who can write "${dir.replace(/\/+$/, "")}" and "${
    parentOf(dir)
  }", or pass another directory`;
}

interface DirLock {
  release(): void;
}

/**
 * Takes an exclusive OS lock on `<dir>.lock` (a sibling, so the data directory stays
 * PostgreSQL's own). PGlite has no lock of its own — a second process would silently lose its
 * writes — and the OS drops this one when the holder dies, even by SIGKILL.
 */
async function lockDir(dir: string, lockPath: string): Promise<DirLock> {
  const file = await Deno.open(lockPath, { read: true, write: true, create: true });
  if (!(await file.tryLock(true))) {
    let holder = "";
    try {
      const info = JSON.parse(await Deno.readTextFile(lockPath));
      holder = `pid ${info.pid} on ${info.host} since ${info.since}`;
    } catch { /* unreadable: say nothing */ }
    file.close();
    throw new EmbeddedLockedError(dir, holder);
  }
  await file.truncate(0);
  const host = hostName() ?? "localhost";
  await file.write(
    new TextEncoder().encode(
      JSON.stringify({ pid: Deno.pid, host, since: new Date().toISOString() }) + "\n",
    ),
  );
  return {
    release() {
      try {
        file.truncateSync(0);
        file.unlockSync();
      } catch { /* closing releases it anyway */ }
      file.close();
    },
  };
}

type DirState = "missing" | "empty" | "database";

/**
 * Looks at the directory without changing anything, so a path that cannot hold a database
 * is refused before the lock file or any directory is created. Refuses a directory PGlite
 * would damage: PGlite runs initdb into any directory without a PG_VERSION, mixing a database
 * into unrelated files (or wiping one whose PG_VERSION was lost).
 */
async function inspectDir(dir: string): Promise<DirState> {
  let stat: Deno.FileInfo;
  try {
    stat = await Deno.stat(dir);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) {
      // Missing parents are created with the database; a file among them never lets it be.
      const blocker = await fileAncestor(dir);
      if (blocker) throw fileInTheWay(dir, blocker);
      return "missing";
    }
    throw await osError(dir, err, `reading "${dir}"`);
  }
  if (!stat.isDirectory) throw new EmbeddedDirError(dir, "it is a file, not a directory");
  let empty = true;
  try {
    for await (const _ of Deno.readDir(dir)) {
      empty = false;
      break;
    }
  } catch (err) {
    throw await osError(dir, err, `reading "${dir}"`);
  }
  if (empty) return "empty";
  let version = "";
  try {
    version = (await Deno.readTextFile(`${dir}/PG_VERSION`)).trim();
  } catch (err) {
    if (err instanceof Deno.errors.PermissionDenied) {
      throw await osError(dir, err, `reading "${dir}/PG_VERSION"`);
    } /* missing: reported below */
  }
  if (!/^\d+$/.test(version)) {
    throw new EmbeddedDirError(
      dir,
      version === ""
        ? "it is not empty and is not a database directory (no PG_VERSION)"
        : "its PG_VERSION is corrupt",
    );
  }
  return "database";
}

/** Refuses a directory without a database when the command may not create one. */
function requireDatabase(dir: string, state: DirState): void {
  if (state === "database") return;
  throw new EmbeddedNotFoundError(
    dir,
    state === "missing" ? "the directory does not exist" : "the directory is empty",
  );
}

/** PGlite's stderr without the log line prefix (`2026-01-01 00:00:00.000 UTC [42] `). */
function pgliteReason(lines: string[]): string {
  return lines.join(" ").replace(/\d{4}-\d\d-\d\d [\d:.]+ \w+ \[\d+\] /g, "")
    .replace(/\s+/g, " ").trim();
}

/**
 * Starts PGlite (in memory, or in `dir`) behind a socket on 127.0.0.1 with a free port.
 * With `create: false` a `dir` without a database (missing or empty) is refused with
 * {@link EmbeddedNotFoundError} and nothing is written; default true.
 *
 * @example
 * const embedded = await startEmbedded({ dir: "./seedtask-data" });
 * const db = connect({ ...resolveConfig({ dsn: embedded.dsn }, {}), maxConnections: embedded.maxConnections });
 * // ...
 * await db.close();
 * await embedded.close();
 */
export async function startEmbedded(
  options: { dir?: string; create?: boolean } = {},
): Promise<EmbeddedServer> {
  const dir = options.dir;
  const create = options.create ?? true;
  let lock: DirLock | undefined;
  if (dir !== undefined) {
    // Everything that can be refused is refused here, before anything is written.
    const state = await inspectDir(dir);
    if (!create) requireDatabase(dir, state);
    if (state === "missing") {
      try {
        await Deno.mkdir(parentOf(dir), { recursive: true });
      } catch (err) {
        throw await osError(dir, err, `creating "${parentOf(dir)}"`);
      }
    }
    const lockPath = `${dir.replace(/\/+$/, "")}.lock`;
    try {
      lock = await lockDir(dir, lockPath);
    } catch (err) {
      if (err instanceof SeedtaskError) throw err;
      throw await osError(dir, err, `creating the lock file "${lockPath}"`);
    }
  }
  const stderr: string[] = [];
  let db: PGlite | undefined;
  try {
    if (dir !== undefined) {
      // Again under the lock: another process may have changed it meanwhile.
      const state = await inspectDir(dir);
      if (!create) requireDatabase(dir, state);
      if (state === "missing") {
        try {
          await Deno.mkdir(dir, { recursive: true });
        } catch (err) {
          throw await osError(dir, err, `creating "${dir}"`);
        }
      }
    }
    try {
      db = await PGlite.create({
        dataDir: dir,
        extensions: { pg_trgm },
        onStderr: (text: string) => {
          stderr.push(text);
          return false;
        },
      });
    } catch (err) {
      const why = (pgliteReason(stderr) || (err as Error).message).slice(0, 300);
      throw new EmbeddedDirError(
        dir ?? "(memory)",
        why,
        dir !== undefined && /permission denied/i.test(why) ? permissionHint(dir) : MOVE_AWAY,
      );
    }
    // Startup parameters sent by clients are ignored: set the session defaults once.
    await db.exec("set TimeZone = 'UTC'; set application_name = 'seedtask'");
    const server = new PGLiteSocketServer({ db, host: "127.0.0.1", port: 0, maxConnections: 16 });
    await server.start();
    const port = Number(server.getServerConn().split(":").pop());
    const pg = db;
    let closed = false;
    return {
      dsn: `postgres://postgres@127.0.0.1:${port}/postgres`,
      dir,
      maxConnections: 2,
      async close() {
        if (closed) return;
        closed = true;
        try {
          await server.stop(); // without this the process never exits
          await pg.close(); // a clean PostgreSQL shutdown: the directory stays consistent
        } finally {
          lock?.release();
        }
      },
    };
  } catch (err) {
    await db?.close().catch(() => {});
    lock?.release();
    throw err;
  }
}
