/** `--embedded [DIR]` and `seedtask demo`: PGlite behind a loopback socket, no server needed. */
import assert from "node:assert/strict";
import { runCli, spawnCli } from "./helpers.ts";

async function tempDir(): Promise<string> {
  return await Deno.makeTempDir({ prefix: "seedtask-embedded-" });
}

Deno.test("--embedded DIR persists: a second process sees what the first wrote", async () => {
  const root = await tempDir();
  const dir = `${root}/data`;
  try {
    const migrate = await runCli(["--embedded", dir, "migrate"]);
    assert.equal(migrate.code, 0, migrate.stderr);
    assert.match(migrate.stdout, /applied: create table tasks/);
    assert.match(migrate.stdout, new RegExp(`tasks on embedded database ${dir} is up to date`));
    const enq = await runCli([
      "enqueue",
      "--embedded",
      dir,
      "--type",
      "graph_embed",
      "--params",
      '{"g": 1}',
    ]);
    assert.equal(enq.code, 0, enq.stderr);
    const id = enq.stdout.trim();
    // the environment variable selects the same database
    const list = await runCli(["list", "--json"], { env: { SEEDTASK_EMBEDDED: dir } });
    assert.equal(list.code, 0, list.stderr);
    const doc = JSON.parse(list.stdout);
    assert.deepEqual(doc.items.map((t: { id: string }) => t.id), [id]);
    assert.deepEqual(doc.items[0].params, { g: 1 });
    const again = await runCli(["--embedded", dir, "migrate"]);
    assert.match(again.stdout, /is up to date: nothing to do/);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("a directory held by another process is a clear error, not a hang", async () => {
  const root = await tempDir();
  const dir = `${root}/data`;
  const port = 20_000 + Math.floor(Math.random() * 20_000);
  const holder = spawnCli(["--embedded", dir, "serve", "--port", String(port)]);
  try {
    await holder.waitFor(/listening on/, 60_000);
    const started = Date.now();
    const r = await runCli(["--embedded", dir, "list"]);
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      new RegExp(
        `^error: embedded database directory "${dir}" is in use by another process \\(pid \\d+ on .* since .*\\) — stop that process, or pass another directory\\n$`,
      ),
    );
    assert.ok(Date.now() - started < 10_000, "answered promptly");
  } finally {
    holder.child.kill("SIGTERM");
    await holder.exit();
  }
  // once the holder is gone the directory opens again
  const after = await runCli(["--embedded", dir, "migrate", "--dry-run"]);
  assert.equal(after.code, 0, after.stderr);
  await Deno.remove(root, { recursive: true });
});

Deno.test("a directory that is not a database, or a corrupt one, is refused with exit 1", async () => {
  const root = await tempDir();
  try {
    await Deno.mkdir(`${root}/notes`);
    await Deno.writeTextFile(`${root}/notes/todo.txt`, "buy milk\n");
    const foreign = await runCli(["--embedded", `${root}/notes`, "list"]);
    assert.equal(foreign.code, 1);
    assert.match(
      foreign.stderr,
      /is not usable: it is not empty and is not a database directory \(no PG_VERSION\) — move it away/,
    );
    assert.equal(
      await Deno.readTextFile(`${root}/notes/todo.txt`),
      "buy milk\n",
      "nothing written into it",
    );

    const db = `${root}/db`;
    assert.equal((await runCli(["--embedded", db, "migrate"])).code, 0);
    await Deno.writeTextFile(`${db}/PG_VERSION`, "garbage\n");
    const corrupt = await runCli(["--embedded", db, "list"]);
    assert.equal(corrupt.code, 1);
    assert.match(corrupt.stderr, /is not usable: its PG_VERSION is corrupt/);

    await Deno.writeTextFile(`${root}/file`, "x");
    const file = await runCli(["--embedded", `${root}/file`, "list"]);
    assert.equal(file.code, 1);
    assert.match(file.stderr, /is not usable: it is a file, not a directory/);

    const both = await runCli([
      "--embedded",
      `${root}/x`,
      "--dsn",
      "postgres://x@127.0.0.1/x",
      "list",
    ]);
    assert.equal(both.code, 2);
    assert.match(both.stderr, /--embedded conflicts with --dsn/);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("demo and migrate --embedded work from another directory (no asset read relative to the cwd)", async () => {
  const cwd = await tempDir();
  try {
    const demo = await runCli(["demo", "--tasks", "12"], { cwd });
    assert.equal(demo.code, 0, demo.stderr);
    const out = demo.stdout;
    assert.match(out, /^Embedded PostgreSQL \(PGlite\) in memory\n/);
    assert.match(out, /Enqueued 12 tasks/);
    assert.match(out, /\[QueueDispatcher\] Processing task [0-9a-f-]{36} \(type=graph_embed/);
    assert.match(out, /\[QueueDispatcher\] Task [0-9a-f-]{36} completed successfully/);
    assert.match(
      out,
      /\[QueueDispatcher\] Task [0-9a-f-]{36} failed \(attempt 1\/3\), retrying in/,
    );
    assert.match(
      out,
      /\[QueueDispatcher\] Task [0-9a-f-]{36} failed permanently after 3\/3 attempts: source document is malformed/,
    );
    assert.match(out, /TASK STATISTICS/);
    assert.match(out, /^ {3}total\s+12$/m);
    assert.match(out, /Latest tasks:\n\nID\s+Status\s+Type/);
    assert.match(out, /A failed task:\n\n=+\nTASK [0-9a-f-]{36}\n/);
    assert.match(out, /ERROR\n {3}Max attempts \(3\) exceeded: source document is malformed/);
    // The failure group of the malformed documents, and the way to it.
    assert.match(out, /Why tasks failed \(seedtask failures\):\n\n\d+ failures? in the last 24h/);
    assert.match(
      out,
      /group [0-9a-f]{12} {2}fact_ingest .*\n {4}source document is malformed: front matter missing '<str>'\n/,
    );
    assert.match(out, /^ {2}seedtask failures +why tasks fail/m);
    assert.equal(demo.stderr, "");

    const migrate = await runCli(["migrate", "--embedded", "data"], { cwd });
    assert.equal(migrate.code, 0, migrate.stderr);
    assert.ok((await Deno.stat(`${cwd}/data/PG_VERSION`)).isFile, "relative DIR is the cwd's");
    const entries = [];
    for await (const e of Deno.readDir(cwd)) entries.push(e.name);
    assert.deepEqual(entries.sort(), ["data", "data.lock"]);
  } finally {
    await Deno.remove(cwd, { recursive: true });
  }
});

/** Names in `dir` (recursively), sorted: what a command left on disk. */
async function tree(dir: string, prefix = ""): Promise<string[]> {
  const names: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    names.push(prefix + e.name);
    if (e.isDirectory) names.push(...await tree(`${dir}/${e.name}`, `${prefix}${e.name}/`));
  }
  return names.sort();
}

Deno.test("a DIR that is a regular file is a one-line error and leaves no DIR.lock beside it", async () => {
  const root = await tempDir();
  try {
    await Deno.writeTextFile(`${root}/data`, "not a database\n");
    for (const args of [["list"], ["migrate"], ["enqueue", "--type", "x"]]) {
      const r = await runCli(["--embedded", `${root}/data`, ...args]);
      assert.equal(r.code, 1, `${args[0]}: ${r.stderr}`);
      assert.equal(r.stdout, "");
      assert.match(
        r.stderr,
        new RegExp(
          `^error: embedded database directory "${root}/data" is not usable: it is a file, not a directory — [^\\n]+\\n$`,
        ),
      );
      assert.deepEqual(await tree(root), ["data"], `${args[0]} left nothing beside it`);
      assert.equal(await Deno.readTextFile(`${root}/data`), "not a database\n");
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

/**
 * Runs the CLI as a user without the power to override file permissions. Tests run as root,
 * which writes anywhere; dropping CAP_DAC_OVERRIDE (and CAP_DAC_READ_SEARCH) from the
 * bounding set makes root subject to file modes like any user, so a read-only directory is
 * a real EACCES from the kernel. As another user, the modes apply anyway.
 */
async function runCliWithoutOverride(args: string[]): Promise<{ code: number; stderr: string }> {
  const deno = [Deno.execPath(), "run", "--allow-all", "--quiet", MAIN, ...args];
  const [cmd, ...rest] = Deno.uid() === 0
    ? ["setpriv", "--bounding-set=-dac_override,-dac_read_search", ...deno]
    : deno;
  const out = await new Deno.Command(cmd!, {
    args: rest,
    env: { NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stdout = new TextDecoder().decode(out.stdout);
  assert.equal(stdout, "", "nothing on stdout");
  return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
}

const MAIN = new URL("../main.ts", import.meta.url).pathname;

Deno.test("a permission problem gets a hint about permissions, not 'move it away'", async () => {
  const root = await tempDir();
  try {
    // a database the user may read but not write (PostgreSQL needs to write its lock file)
    const db = `${root}/db`;
    assert.equal((await runCli(["--embedded", db, "migrate"])).code, 0);
    await new Deno.Command("chmod", { args: ["-R", "a-w", db] }).output();
    const ro = await runCliWithoutOverride(["--embedded", db, "list"]);
    assert.equal(ro.code, 1, ro.stderr);
    assert.match(
      ro.stderr,
      new RegExp(
        `^error: embedded database directory "${db}" is not usable: [^\\n]*permission denied[^\\n]* — run seedtask as a user who can write "${db}" and "${root}", or pass another directory\\n$`,
        "i",
      ),
    );
    await new Deno.Command("chmod", { args: ["-R", "u+w", db] }).output();

    // a new database in a directory the user cannot write
    await Deno.mkdir(`${root}/locked`);
    await Deno.chmod(`${root}/locked`, 0o555);
    const parent = await runCliWithoutOverride(["--embedded", `${root}/locked/db`, "migrate"]);
    assert.equal(parent.code, 1, parent.stderr);
    assert.match(
      parent.stderr,
      new RegExp(
        `^error: embedded database directory "${root}/locked/db" is not usable: permission denied [^\\n]* — run seedtask as a user who can write "${root}/locked/db" and "${root}/locked", or pass another directory\\n$`,
        "i",
      ),
    );
    await Deno.chmod(`${root}/locked`, 0o755);
    assert.deepEqual(await tree(`${root}/locked`), [], "nothing created");

    // a DIR below a regular file: no user can create it; moving DIR away cannot help
    await Deno.writeTextFile(`${root}/notes.txt`, "x");
    const below = await runCli(["--embedded", `${root}/notes.txt/sub/db`, "migrate"]);
    assert.equal(below.code, 1, below.stderr);
    assert.match(
      below.stderr,
      new RegExp(
        `^error: embedded database directory "${root}/notes.txt/sub/db" is not usable: "${root}/notes.txt" is a file, not a directory — pass a path under a directory\\n$`,
      ),
    );
    for (const r of [ro, parent, below]) assert.doesNotMatch(r.stderr, /move it away/);
    assert.deepEqual(
      await tree(root),
      ["db", "db.lock", ...(await tree(db)).map((n) => `db/${n}`), "locked", "notes.txt"].sort(),
    );
  } finally {
    await new Deno.Command("chmod", { args: ["-R", "u+w", root] }).output();
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("read commands on a DIR with no database exit 1 and create nothing; migrate, enqueue, serve and demo create it", async () => {
  const root = await tempDir();
  try {
    const missing = `${root}/nowhere/db`;
    await Deno.mkdir(`${root}/empty`);
    const reads = [
      ["list"],
      ["show", "aaaa1111"],
      ["stats", "--json"],
      ["check"],
      ["doctor"],
    ];
    for (const dir of [missing, `${root}/empty`]) {
      const why = dir === missing ? "the directory does not exist" : "the directory is empty";
      for (const args of reads) {
        for (const how of ["flag", "env"]) {
          const r = how === "flag"
            ? await runCli(["--embedded", dir, ...args])
            : await runCli(args, { env: { SEEDTASK_EMBEDDED: dir } });
          const message = `no embedded database in "${dir}": ${why}`;
          const hint = `create one with \`seedtask --embedded ${dir} migrate\``;
          if (args[0] === "check") {
            // a monitoring check reports every failure as UNKNOWN (3), on stdout
            assert.equal(r.code, 3, `${how}: ${r.stderr}`);
            assert.equal(r.stdout, `SEEDTASK UNKNOWN - N${message.slice(1)} (${hint})\n`);
          } else {
            assert.equal(r.code, 1, `${args[0]} (${how}): ${r.stderr}`);
            assert.equal(r.stdout, "", args[0]);
            assert.equal(r.stderr, `error: ${message} — ${hint}\n`, `${args[0]} (${how})`);
          }
          assert.deepEqual(await tree(root), ["empty"], `${args[0]} (${how}) created nothing`);
        }
      }
    }
    // other commands that only change existing tasks do not create one either
    for (
      const args of [["cancel", "aaaa1111"], ["purge", "--older-than", "1d"], [
        "dispatch",
        "--exec",
        "true",
      ]]
    ) {
      const r = await runCli(["--embedded", missing, ...args]);
      assert.equal(r.code, 1, `${args[0]}: ${r.stderr}`);
      assert.match(r.stderr, /^error: no embedded database in /, args[0]);
    }
    assert.deepEqual(await tree(root), ["empty"]);

    // the four commands that may create a database do
    const fresh = await runCli(["--embedded", `${root}/e/db`, "enqueue", "--type", "graph_embed"]);
    assert.equal(fresh.code, 1, "the new database has no table yet");
    assert.match(fresh.stderr, /table "tasks" does not exist .* run `seedtask migrate`/);
    assert.ok((await Deno.stat(`${root}/e/db/PG_VERSION`)).isFile, "enqueue created it");
    assert.equal((await runCli(["--embedded", `${root}/e/db`, "migrate"])).code, 0);
    const enq = await runCli(["--embedded", `${root}/e/db`, "enqueue", "--type", "graph_embed"]);
    assert.equal(enq.code, 0, enq.stderr);
    const list = await runCli(["--embedded", `${root}/e/db`, "list", "--json"]);
    assert.equal(list.code, 0, list.stderr);
    assert.deepEqual(JSON.parse(list.stdout).items.map((t: { id: string }) => t.id), [
      enq.stdout.trim(),
    ]);

    const migrate = await runCli(["--embedded", `${root}/empty`, "migrate"]);
    assert.equal(migrate.code, 0, migrate.stderr);
    assert.ok((await Deno.stat(`${root}/empty/PG_VERSION`)).isFile);

    const port = 20_000 + Math.floor(Math.random() * 20_000);
    const serve = spawnCli(["--embedded", `${root}/s/db`, "serve", "--port", String(port)]);
    try {
      await serve.waitFor(/listening on/, 60_000);
    } finally {
      serve.child.kill("SIGTERM");
      await serve.exit();
    }
    assert.ok((await Deno.stat(`${root}/s/db/PG_VERSION`)).isFile);

    const demo = await runCli(["demo", "--dir", `${root}/d/db`, "--tasks", "3", "--seconds", "2"]);
    assert.equal(demo.code, 0, demo.stderr);
    assert.ok((await Deno.stat(`${root}/d/db/PG_VERSION`)).isFile);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
