/**
 * DESIGN §6 / issue 2 point 10: every failure is one line on stderr with the right exit code,
 * no stack trace, never a password, and nothing but JSON (or nothing) on stdout with --json.
 */
import assert from "node:assert/strict";
import { describeDsn } from "../lib/config.ts";
import { VERSION } from "../lib/version.ts";
import { runCli, serverTest, TEST_DSN, testSchema } from "./helpers.ts";
import { runMain } from "./run_main.ts";

function oneLine(stderr: string): void {
  assert.equal(stderr.trimEnd().split("\n").length, 1, `expected one line:\n${stderr}`);
  assert.doesNotMatch(stderr, /\n\s+at /, "no stack trace");
}

Deno.test("an unreachable server is exit 1 with a connection hint and no password", async () => {
  const r = await runCli(["stats", "--json"], {
    env: { PG_DSN: "postgres://admin:s3cr3t-pw@127.0.0.1:1/seedcore" },
  });
  assert.equal(r.code, 1);
  assert.equal(r.stdout, "");
  assert.equal(
    r.stderr,
    "error: cannot connect to 127.0.0.1:1/seedcore: connection refused — set PG_DSN or pass --dsn\n",
  );
  const dns = await runCli([
    "--dsn",
    "postgres://u:s3cr3t-pw@no-such-host.invalid:5432/db",
    "list",
  ]);
  assert.equal(dns.code, 1);
  assert.match(
    dns.stderr,
    /^error: cannot connect to no-such-host\.invalid:5432\/db: host "no-such-host\.invalid" not found/,
  );
  oneLine(dns.stderr);
  assert.doesNotMatch(dns.stderr + dns.stdout, /s3cr3t/);
});

Deno.test("the seed's default DSN is used when nothing is configured, and said so", async () => {
  const r = await runMain(["list"]);
  assert.equal(r.code, 1);
  assert.match(
    r.stderr,
    /^error: cannot connect to postgresql:5432\/seedcore: .*no DSN configured/,
  );
  assert.doesNotMatch(r.stderr, /postgres:postgres/);
});

serverTest(
  "authentication failure and a missing database are exit 1, one line",
  "PGlite has no roles or databases to refuse",
  async () => {
    const url = new URL(TEST_DSN);
    const auth = await runMain([
      "--dsn",
      `postgres://no_such_role_x:topsecret@${url.host}${url.pathname}`,
      "list",
    ]);
    assert.equal(auth.code, 1);
    assert.match(
      auth.stderr,
      /^error: authentication failed on .*: role "no_such_role_x" does not exist — check the user and password/,
    );
    assert.doesNotMatch(auth.stderr, /topsecret/);
    oneLine(auth.stderr);

    const db = await runMain([
      "--dsn",
      `postgres://postgres@${url.host}/no_such_db_x`,
      "show",
      "abcd",
    ]);
    assert.equal(db.code, 1);
    assert.match(
      db.stderr,
      /^error: cannot connect to .*\/no_such_db_x: database "no_such_db_x" does not exist — check the database name/,
    );
    oneLine(db.stderr);
  },
);

Deno.test("a missing table is exit 1 with the migrate hint, for every read command", async () => {
  await using t = await testSchema({ migrated: false });
  for (const cmd of [["list"], ["show", "abcd"], ["stats"], ["stats", "--json"]]) {
    const r = await runMain([...t.args, ...cmd]);
    assert.equal(r.code, 1, cmd.join(" "));
    assert.equal(r.stdout, "");
    assert.equal(
      r.stderr,
      `error: table "${t.table}" does not exist in ${
        describeDsn(TEST_DSN)
      } — run \`seedtask migrate\` to create it\n`,
    );
  }
});

Deno.test("usage errors are exit 2 with the help hint; -h is exit 0 on stdout", async () => {
  const cases: Array<[string[], RegExp]> = [
    [["list", "--status", "finished"], /^error: unknown status "finished"/],
    [["show", "zz-top"], /^error: invalid task id "zz-top"/],
    [["list", "--limit", "-1"], /^error: invalid --limit "-1"/],
    [["--statement-timeout", "fast", "list"], /^error: invalid statement timeout "fast"/],
    [["stats", "--long-running", "5"], /^error: invalid --long-running "5"/],
    [["list", "--after", "%%%"], /^error: invalid cursor "%%%"/],
    [["--table", "bad;name", "list"], /^error: invalid table name "bad;name"/],
    [["--dsn", "mysql://x", "list"], /^error: invalid DSN from --dsn/],
    [["frobnicate"], /^error: unknown command 'frobnicate'/],
    [["list", "--bogus"], /^error: unknown option '--bogus'/],
  ];
  for (const [args, message] of cases) {
    const r = await runMain(args, { env: { PG_DSN: "postgres://postgres@127.0.0.1:1/x" } });
    assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
    assert.equal(r.stdout, "");
    assert.match(r.stderr, message);
    assert.match(r.stderr, /\(run with --help for usage\)\n$/);
    oneLine(r.stderr);
  }
  const help = await runCli(["list", "-h"]); // a real process: commander writes help itself
  assert.equal(help.code, 0);
  assert.match(help.stdout, /^Usage: seedtask list \[options\]/);
  assert.equal(help.stderr, "");
  const version = await runCli(["--version"]);
  assert.equal(version.code, 0);
  assert.equal(version.stdout, `${VERSION}\n`);
});

Deno.test("--verbose adds the stack trace; without it there is none", async () => {
  const env = { PG_DSN: "postgres://postgres@127.0.0.1:1/x" };
  const plain = await runMain(["list"], { env });
  oneLine(plain.stderr);
  const verbose = await runMain(["list", "--verbose"], { env });
  assert.equal(verbose.code, 1);
  assert.match(verbose.stderr, /\n\s+at /);
});

serverTest(
  "the statement timeout cancels a slow query with a clear error",
  "needs a second real session holding a lock; PGlite enforces no statement timeout",
  async () => {
    await using t = await testSchema();
    // A lock held by another session makes the read wait until the timeout cancels it.
    const reserved = await t.sql.reserve();
    await reserved`begin`;
    await reserved`lock table ${t.sql(t.table)} in access exclusive mode`;
    try {
      const r = await runMain([...t.args, "--statement-timeout", "300ms", "list"]);
      assert.equal(r.code, 1);
      assert.equal(
        r.stderr,
        "error: query cancelled after the statement timeout (300ms) — raise it with --statement-timeout\n",
      );
    } finally {
      await reserved`rollback`;
      reserved.release();
    }
  },
);
