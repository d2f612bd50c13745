/**
 * A PostgreSQL cluster owned by one test: initdb into a temporary directory, started on a free
 * loopback port, stopped and started again at will. For tests about outages — the shared server
 * on 5432 is never stopped.
 */

const BIN = Deno.env.get("SEEDTASK_TEST_PG_BIN") ?? "/usr/lib/postgresql/15/bin";

/** Whether initdb and pg_ctl are installed (tests that need them are skipped otherwise). */
export const HAS_PG_BIN = (() => {
  try {
    return Deno.statSync(`${BIN}/initdb`).isFile && Deno.statSync(`${BIN}/pg_ctl`).isFile;
  } catch {
    return false;
  }
})();

/** A private cluster; `await using` stops it and removes its files. */
export interface PrivateCluster extends AsyncDisposable {
  port: number;
  /** `postgres://postgres@127.0.0.1:<port>/postgres` (trust auth). */
  dsn: string;
  /** pg_ctl stop -m fast: connections are terminated, new ones refused. */
  stop(): Promise<void>;
  /** pg_ctl start, returning once the server accepts connections. */
  start(): Promise<void>;
}

const isRoot = Deno.uid() === 0;

/** PostgreSQL refuses to run as root: run its tools as the `postgres` user then. */
async function run(cmd: string, args: string[]): Promise<void> {
  const [program, argv] = isRoot
    ? ["runuser", ["-u", "postgres", "--", `${BIN}/${cmd}`, ...args]]
    : [`${BIN}/${cmd}`, args];
  const out = await new Deno.Command(program, {
    args: argv,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { LC_ALL: "C" },
  }).output();
  if (!out.success) {
    const dec = new TextDecoder();
    throw new Error(
      `${cmd} ${args.join(" ")} failed (${out.code}): ${dec.decode(out.stderr)}${
        dec.decode(out.stdout)
      }`,
    );
  }
}

/** The `postgres` user's uid (`-u`) or gid (`-g`). */
async function idOf(flag: "-u" | "-g"): Promise<number> {
  const out = await new Deno.Command("id", { args: [flag, "postgres"], stderr: "null" }).output();
  if (!out.success) throw new Error("running as root needs a postgres user for initdb");
  return Number(new TextDecoder().decode(out.stdout).trim());
}

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

export async function privateCluster(): Promise<PrivateCluster> {
  const dir = await Deno.makeTempDir({ prefix: "seedtask-pg-" });
  if (isRoot) await Deno.chown(dir, await idOf("-u"), await idOf("-g"));
  const data = `${dir}/data`;
  await run("initdb", ["-D", data, "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8"]);
  let port = 0;
  let running = false;
  const start = async () => {
    await run("pg_ctl", [
      "-D",
      data,
      "-l",
      `${dir}/server.log`,
      "-w",
      "-t",
      "60",
      "-o",
      `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=100`,
      "start",
    ]);
    running = true;
  };
  // Another process may take the port between our probe and the server's bind: try a few.
  for (let attempt = 1;; attempt++) {
    port = freePort();
    try {
      await start();
      break;
    } catch (err) {
      if (attempt >= 3) {
        await Deno.remove(dir, { recursive: true }).catch(() => {});
        throw err;
      }
    }
  }
  const stop = async () => {
    await run("pg_ctl", ["-D", data, "-w", "-t", "60", "-m", "fast", "stop"]);
    running = false;
  };
  return {
    port,
    dsn: `postgres://postgres@127.0.0.1:${port}/postgres`,
    stop,
    start,
    async [Symbol.asyncDispose]() {
      if (running) await stop().catch(() => {});
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}
