/**
 * `--embedded [DIR]`: PGlite behind a loopback socket, no server needed — a directory held by
 * another process, and the directories that cannot hold a database. (Which commands create one,
 * the demo, and a directory persisting are in embedded_create_test.ts.)
 */
import assert from "node:assert/strict";
import { spawnCli, within } from "./helpers.ts";
import { runMain } from "./run_main.ts";
import { copyOfDatabase, tempDir, tree } from "./embedded_dirs.ts";

// The corrupt and permission tests copy the database the first test's serve created (run
// alone, they make one with migrate).
Deno.test.afterAll(copyOfDatabase.cleanUp);

Deno.test("serve --embedded DIR creates the database; while it holds DIR, another process gets a clear error, not a hang", async () => {
  const root = await tempDir();
  const dir = `${root}/data`;
  const holder = spawnCli(["--embedded", dir, "serve", "--port", "0"]);
  try {
    await holder.waitFor(/listening on/);
    const r = await within(runMain(["--embedded", dir, "list"]), "list of a held directory");
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      new RegExp(
        `^error: embedded database directory "${dir}" is in use by another process \\(pid \\d+ on .* since .*\\) — stop that process, or pass another directory\\n$`,
      ),
    );
  } finally {
    holder.child.kill("SIGTERM");
    await holder.exit();
  }
  assert.ok((await Deno.stat(`${dir}/PG_VERSION`)).isFile, "serve created it");
  // once the holder is gone the directory opens again
  const after = await runMain(["--embedded", dir, "migrate", "--dry-run"]);
  assert.equal(after.code, 0, after.stderr);
  if (!copyOfDatabase.adopt(dir, root)) await Deno.remove(root, { recursive: true });
});

Deno.test("a directory that is not a database, or a corrupt one, is refused with exit 1", async () => {
  const root = await tempDir();
  try {
    await Deno.mkdir(`${root}/notes`);
    await Deno.writeTextFile(`${root}/notes/todo.txt`, "buy milk\n");
    const foreign = await runMain(["--embedded", `${root}/notes`, "list"]);
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
    await copyOfDatabase(db);
    await Deno.writeTextFile(`${db}/PG_VERSION`, "garbage\n");
    const corrupt = await runMain(["--embedded", db, "list"]);
    assert.equal(corrupt.code, 1);
    assert.match(corrupt.stderr, /is not usable: its PG_VERSION is corrupt/);

    await Deno.writeTextFile(`${root}/file`, "x");
    const file = await runMain(["--embedded", `${root}/file`, "list"]);
    assert.equal(file.code, 1);
    assert.match(file.stderr, /is not usable: it is a file, not a directory/);

    const both = await runMain([
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

Deno.test("a DIR that is a regular file is a one-line error and leaves no DIR.lock beside it", async () => {
  const root = await tempDir();
  try {
    await Deno.writeTextFile(`${root}/data`, "not a database\n");
    for (const args of [["list"], ["migrate"], ["enqueue", "--type", "x"]]) {
      const r = await runMain(["--embedded", `${root}/data`, ...args]);
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
    await copyOfDatabase(db);
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
    const below = await runMain(["--embedded", `${root}/notes.txt/sub/db`, "migrate"]);
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
