/**
 * The embedded PostgreSQL (DESIGN §5): PGlite — PostgreSQL compiled to WebAssembly — served on
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

/** The embedded directory cannot be opened as a database. */
export class EmbeddedDirError extends SeedtaskError {
  constructor(dir: string, why: string) {
    super("embedded_unusable", `Embedded database directory "${dir}" is not usable: ${why}`, {
      hint: "move it away to start a fresh database there",
    });
  }
}

interface DirLock {
  release(): void;
}

/**
 * Takes an exclusive OS lock on `<dir>.lock` (a sibling, so the data directory stays
 * PostgreSQL's own). PGlite has no lock of its own — a second process would silently lose its
 * writes — and the OS drops this one when the holder dies, even by SIGKILL.
 */
async function lockDir(dir: string): Promise<DirLock> {
  const lockPath = `${dir.replace(/\/+$/, "")}.lock`;
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
  let host = "localhost";
  try {
    host = Deno.hostname();
  } catch { /* no --allow-sys */ }
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

/**
 * Refuses a directory PGlite would damage: PGlite runs initdb into any directory without a
 * PG_VERSION, mixing a database into unrelated files (or wiping one whose PG_VERSION was lost).
 */
async function checkDir(dir: string): Promise<void> {
  let stat: Deno.FileInfo;
  try {
    stat = await Deno.stat(dir);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) {
      await Deno.mkdir(dir, { recursive: true });
      return;
    }
    throw new EmbeddedDirError(dir, (err as Error).message);
  }
  if (!stat.isDirectory) throw new EmbeddedDirError(dir, "it is a file, not a directory");
  let empty = true;
  for await (const _ of Deno.readDir(dir)) {
    empty = false;
    break;
  }
  if (empty) return;
  let version = "";
  try {
    version = (await Deno.readTextFile(`${dir}/PG_VERSION`)).trim();
  } catch { /* missing */ }
  if (!/^\d+$/.test(version)) {
    throw new EmbeddedDirError(
      dir,
      version === ""
        ? "it is not empty and is not a database directory (no PG_VERSION)"
        : "its PG_VERSION is corrupt",
    );
  }
}

/**
 * Starts PGlite (in memory, or in `dir`) behind a socket on 127.0.0.1 with a free port.
 *
 * @example
 * const embedded = await startEmbedded({ dir: "./seedtask-data" });
 * const db = connect({ ...resolveConfig({ dsn: embedded.dsn }, {}), maxConnections: embedded.maxConnections });
 * // ...
 * await db.close();
 * await embedded.close();
 */
export async function startEmbedded(options: { dir?: string } = {}): Promise<EmbeddedServer> {
  const dir = options.dir;
  let lock: DirLock | undefined;
  if (dir !== undefined) {
    try {
      await Deno.mkdir(dir.replace(/\/+$/, "").replace(/\/[^/]*$/, "") || ".", { recursive: true });
    } catch { /* the lock open below reports the real problem */ }
    try {
      lock = await lockDir(dir);
    } catch (err) {
      if (err instanceof SeedtaskError) throw err;
      throw new EmbeddedDirError(dir, (err as Error).message);
    }
  }
  const stderr: string[] = [];
  let db: PGlite | undefined;
  try {
    if (dir !== undefined) await checkDir(dir);
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
      const why = stderr.join(" ").replace(/\s+/g, " ").trim() || (err as Error).message;
      throw new EmbeddedDirError(dir ?? "(memory)", why.slice(0, 300));
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
