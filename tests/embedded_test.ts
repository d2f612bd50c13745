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
