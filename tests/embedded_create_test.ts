/**
 * `--embedded [DIR]`: which commands create a database, and the demo (each creates one: PGlite's
 * initdb, seconds of CPU — so each creation here also carries the checks that need a database:
 * one initdb per command that creates, no more). A file of its own, so that `--parallel` runs it
 * beside embedded_test.ts (which has `serve`'s creation).
 */
import assert from "node:assert/strict";
import { runCli } from "./helpers.ts";
import { runMain } from "./run_main.ts";
import { tempDir, tree } from "./embedded_dirs.ts";

Deno.test("demo --dir and migrate --embedded create their relative DIR, from another directory (no asset read relative to the cwd)", async () => {
  const cwd = await tempDir();
  try {
    // An empty directory is one migrate may create the database in.
    await Deno.mkdir(`${cwd}/data`);
    // Two processes at once (two initdbs, the demo's dispatch waits on its retries' backoff).
    // (The demo in memory, its default, is console_test.ts's demo --serve.)
    const [demo, migrate] = await Promise.all([
      runCli(["demo", "--tasks", "12", "--dir", "demo"], { cwd }),
      runCli(["migrate", "--embedded", "data"], { cwd }),
    ]);
    assert.equal(demo.code, 0, demo.stderr);
    const out = demo.stdout;
    assert.match(out, /^Embedded PostgreSQL \(PGlite\) in demo\n/);
    assert.match(out, /Enqueued 12 tasks/);
    assert.match(out, /\[QueueDispatcher\] Processing task [0-9a-f]{8} \(type=graph_embed/);
    assert.match(out, /\[QueueDispatcher\] Task [0-9a-f]{8} completed successfully/);
    assert.match(
      out,
      /\[QueueDispatcher\] Task [0-9a-f]{8} failed \(attempt 1\/3\), retrying in/,
    );
    assert.match(
      out,
      /\[QueueDispatcher\] Task [0-9a-f]{8} failed permanently after 3\/3 attempts: source document is malformed/,
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
    assert.ok((await Deno.stat(`${cwd}/demo/PG_VERSION`)).isFile, "demo created its DIR");

    assert.equal(migrate.code, 0, migrate.stderr);
    assert.ok((await Deno.stat(`${cwd}/data/PG_VERSION`)).isFile, "relative DIR is the cwd's");
    const entries = [];
    for await (const e of Deno.readDir(cwd)) entries.push(e.name);
    assert.deepEqual(entries.sort(), ["data", "data.lock", "demo", "demo.lock"]);
  } finally {
    await Deno.remove(cwd, { recursive: true });
  }
});

Deno.test("read commands on a DIR with no database exit 1 and create nothing; enqueue creates it, and a DIR persists", async () => {
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
            ? await runMain(["--embedded", dir, ...args])
            : await runMain(args, { env: { SEEDTASK_EMBEDDED: dir } });
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
      const r = await runMain(["--embedded", missing, ...args]);
      assert.equal(r.code, 1, `${args[0]}: ${r.stderr}`);
      assert.match(r.stderr, /^error: no embedded database in /, args[0]);
    }
    assert.deepEqual(await tree(root), ["empty"]);

    // the four commands that may create a database do: demo and migrate into an empty
    // directory (the test above), serve (embedded_test.ts), and enqueue
    const dir = `${root}/e/db`;
    const fresh = await runMain(["--embedded", dir, "enqueue", "--type", "graph_embed"]);
    assert.equal(fresh.code, 1, "the new database has no table yet");
    assert.match(fresh.stderr, /table "tasks" does not exist .* run `seedtask migrate`/);
    assert.ok((await Deno.stat(`${dir}/PG_VERSION`)).isFile, "enqueue created it");

    // --embedded DIR persists: each process sees what the one before wrote
    const migrate = await runMain(["--embedded", dir, "migrate"]);
    assert.equal(migrate.code, 0, migrate.stderr);
    assert.match(migrate.stdout, /applied: create table tasks/);
    assert.match(migrate.stdout, new RegExp(`tasks on embedded database ${dir} is up to date`));
    const enq = await runMain([
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
    const list = await runMain(["--embedded", dir, "list", "--json"]);
    assert.equal(list.code, 0, list.stderr);
    assert.deepEqual(JSON.parse(list.stdout).items.map((t: { id: string }) => t.id), [id]);
    // the environment variable selects the same database
    const viaEnv = await runMain(["list", "--json"], { env: { SEEDTASK_EMBEDDED: dir } });
    assert.equal(viaEnv.code, 0, viaEnv.stderr);
    const doc = JSON.parse(viaEnv.stdout);
    assert.deepEqual(doc.items.map((t: { id: string }) => t.id), [id]);
    assert.deepEqual(doc.items[0].params, { g: 1 });
    const again = await runMain(["--embedded", dir, "migrate"]);
    assert.match(again.stdout, /is up to date: nothing to do/);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
